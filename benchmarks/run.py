"""The ppl-kernels benchmark: the cost of one SGHMC integrator step, side by side.

Usage: ``python benchmarks/run.py [--quick] [--baseline PATH] ...`` from a
checkout (``ppl-kernels bench ...`` runs this file); ``--help`` lists the
options.

Each kernel is measured in one run against

- the physical limit, one bare jitted (JAX) or eager (PyTorch) gradient of the
  same minibatch potential in a loop, alone and with the ``d`` Gaussian draws
  the injected noise needs (``bare gradient + noise draw``, the floor);
- what users would pick instead: BlackJAX ``sghmc`` and NumPyro ``HMC`` for
  JAX, the ``posteriors`` library's SGHMC and Pyro ``HMC`` for PyTorch.  The
  HMC rows run the full-data model (both hosts' HMC refuse subsampled plates)
  and are reported per gradient.

on the workloads of ``workloads.py``, with the timing of ``harness.py`` (rows
of ``jax_rows.py`` and ``torch_rows.py``); ``report.py`` writes
``bench.json`` and ``bench.md``.  Extra sections: ms/step against N at fixed
B (the kernels' epoch permutation makes a step O(B), the hosts' plates permute
all N), memory per stored draw, and the JAX noise under the ``rbg`` /
``unsafe_rbg`` PRNG implementations.

``--baseline PATH`` times every kernel row a second time with the copy of the
``ppl_kernels`` package in ``PATH`` (e.g. ``git worktree add /tmp/base HEAD``)
first on ``sys.path``, in its own child process and turn about with the
current code, and adds a table of new/old ratios.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import harness
import report
from workloads import WORKLOADS

BACKENDS = ("numpyro", "pyro")


def parser() -> argparse.ArgumentParser:
    """The command line (the same options as ``ppl-kernels bench``)."""
    p = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run in seconds (W3, few steps): checks that every row runs; its figures are "
                        "not meaningful and no targets are evaluated")
    p.add_argument("--workloads", nargs="+", metavar="W", help=f"among {sorted(WORKLOADS)} (default W1 W2 W3)")
    p.add_argument("--backends", nargs="+", metavar="B", help="numpyro and/or pyro (default both)")
    p.add_argument("--num-steps", type=int, default=10, help="integrator steps per draw (default 10)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per method (default 3, quick 2)")
    p.add_argument("--steps", type=int, default=None,
                   help="integrator steps in the small timed call of every workload (default: per workload, "
                        "sized for ~0.3 s on two CPU cores; raise it on a GPU)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="which clock the ratios use")
    p.add_argument("--no-scaling", action="store_true", help="skip the ms/step-against-N section")
    p.add_argument("--no-storage", action="store_true", help="skip the memory-per-draw section")
    p.add_argument("--no-prng", action="store_true", help="skip the rbg / unsafe_rbg rows")
    p.add_argument("--no-isolate", action="store_true",
                   help="run the current code's backends in this process (a baseline always has its own)")
    p.add_argument("--baseline", metavar="PATH", default=None,
                   help="folder holding another copy of the ppl_kernels package (e.g. a git worktree of an older "
                        "commit): every kernel row is also timed with it, and the report gets new/old ratios")
    p.add_argument("--out", default="bench-results", help="folder for bench.json and bench.md")
    return p


def _baseline_path(path: str) -> str:
    """The folder to put first on ``sys.path``: ``PATH`` if it holds ``ppl_kernels/``,
    its parent if ``PATH`` is the package itself."""
    p = Path(path).expanduser().resolve()
    if (p / "ppl_kernels" / "__init__.py").is_file():
        return str(p)
    if p.name == "ppl_kernels" and (p / "__init__.py").is_file():
        return str(p.parent)
    raise ValueError(f"--baseline: {path} holds no copy of the package (no ppl_kernels/__init__.py)")


def _commit(path: str) -> str | None:
    """The commit of a baseline that is the top of a git checkout or worktree, for the report (read only)."""

    def git(*args):
        try:
            res = subprocess.run(["git", "-C", path, *args], capture_output=True, text=True, timeout=10,
                                 check=False)
        except (OSError, subprocess.SubprocessError):
            return None
        return res.stdout.strip() if res.returncode == 0 else None

    # a plain copy inside some other repository must not borrow that repository's commit
    top = git("rev-parse", "--show-toplevel")
    if top is None or Path(top).resolve() != Path(path).resolve():
        return None
    return git("rev-parse", "--short", "HEAD") or None


def options(args: argparse.Namespace) -> dict:
    """The run's options from the parsed arguments.

    Raises
    ------
    ValueError
        Naming the bad argument.
    """
    quick = args.quick
    workloads = args.workloads or (["W3"] if quick else ["W1", "W2", "W3"])
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ValueError(f"--workloads must be among {sorted(WORKLOADS)}, got {unknown}")
    backends = args.backends or list(BACKENDS)
    bad = [b for b in backends if b not in BACKENDS]
    if bad:
        raise ValueError(f"--backends must be among {BACKENDS}, got {bad}")
    if args.num_steps < 1:
        raise ValueError(f"--num-steps (num_steps) must be a positive integer, got {args.num_steps}")
    repeats = args.repeats if args.repeats is not None else (2 if quick else 3)
    if repeats < 1:
        raise ValueError(f"--repeats must be a positive integer, got {repeats}")
    if args.steps is not None and args.steps < args.num_steps:
        raise ValueError(f"--steps must be at least num_steps={args.num_steps}, got {args.steps}")
    baseline = None if args.baseline is None else _baseline_path(args.baseline)
    # steps in the small timed call (the large one has 3x): ~0.3 s on two idle cores
    # ("pyro:W1": Pyro's calls have no re-jit jitter to outlast, so they can be shorter)
    steps = {"default": 40, "scaling": 40} if quick else {
        "W1": 500, "W2": 50, "W3": 2000, "W4": 100, "pyro:W1": 250, "pyro:W3": 500, "default": 200, "scaling": 400}
    if args.steps is not None:
        steps = {"default": args.steps, "scaling": steps["scaling"]}
    return {
        "quick": quick, "workloads": workloads, "backends": backends, "num_steps": args.num_steps,
        "repeats": repeats, "steps": steps,
        "scaling": [] if args.no_scaling else ([1_000, 10_000] if quick else [1_000, 10_000, 100_000, 1_000_000]),
        "storage": None if args.no_storage else {"workload": "W3" if quick else "W2", "draws": 20 if quick else 100},
        "prng": [] if args.no_prng else (["rbg"] if quick else ["rbg", "unsafe_rbg"]),
        "prng_workloads": workloads if quick else ["W1", "W4"],
        "baseline": baseline, "baseline_commit": None if baseline is None else _commit(baseline),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write ``bench.json`` and ``bench.md``; returns the exit status.

    Bad arguments exit with status 2 and one line naming them, before anything runs.
    """
    p = parser()
    args = p.parse_args(argv)
    try:
        opts = options(args)
    except ValueError as e:
        p.error(str(e))
    clock = "ms_per_step" if args.clock == "wall" else "cpu_ms_per_step"
    raw = harness.run_benchmark(opts, isolate=not args.no_isolate)
    rep = report.build(raw, opts, clock)
    json_path, md_path, md = report.write(rep, args.out)
    print(md)
    print(f"\nwritten: {json_path}, {md_path} ({rep['meta']['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
