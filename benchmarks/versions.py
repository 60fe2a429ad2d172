"""Kernel ms/step of this checkout against another copy of the package, one process at a time.

``run.py --baseline`` interleaves the two copies round by round inside one run, but
their child processes are alive at the same time; on a 2-core machine their idle
threads disturb each other's timings.  This script measures one (copy, backend,
workload) per fresh process, strictly one after the other, alternating the copies,
and prints the medians and the ratio new/old::

    git archive OLD_COMMIT ppl_kernels | tar -x -C /tmp/old
    python benchmarks/versions.py /tmp/old --workloads W1 W3 --rounds 3

A measurement is the slope between ``MCMC.run`` calls of two lengths (the fixed
cost of a call cancels), the median of three such pairs; only the public
constructors and ``MCMC`` are used, so any copy of the package can be measured.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: (short call, long call) in draws of 10 steps: long enough to rise above MCMC.run's jitter.
CALLS = {("numpyro", "W3"): (2000, 20000), ("numpyro", "W1"): (100, 400), ("pyro", "W3"): (20, 80),
         ("pyro", "W1"): (20, 80), ("pyro-jit", "W3"): (20, 80), ("pyro-jit", "W1"): (20, 80)}


def _child(workload: str, backend: str) -> None:
    sys.path.insert(0, str(HERE))
    import workloads as W

    wl = W.WORKLOADS[workload]
    X, Y = W.make_data(wl)
    model = W.model(wl, backend.split("-")[0])
    short, long = CALLS[(backend, workload)]
    if backend == "numpyro":
        import jax
        import jax.numpy as jnp
        from numpyro.infer import MCMC

        from ppl_kernels.numpyro import SGHMC

        Xj, Yj = jnp.asarray(X), jnp.asarray(Y)

        def run(n):
            m = MCMC(SGHMC(model, step_size=wl.step_size, num_steps=10), num_warmup=0, num_samples=n,
                     progress_bar=False, jit_model_args=True)
            m.run(jax.random.PRNGKey(0), Xj, Yj)
            jax.block_until_ready(m.get_samples())
    else:
        import pyro
        import torch
        from pyro.infer import MCMC

        from ppl_kernels.pyro import SGHMC

        torch.set_num_threads(1)
        Xt = torch.as_tensor(X, dtype=torch.float32)
        Yt = torch.as_tensor(Y, dtype=torch.float32 if wl.kind == "logistic" else torch.int64)

        def run(n):
            pyro.set_rng_seed(0)
            kernel = SGHMC(model, step_size=wl.step_size, num_steps=10, jit_compile=backend == "pyro-jit",
                           ignore_jit_warnings=True)
            MCMC(kernel, num_samples=n, warmup_steps=0, disable_progbar=True).run(Xt, Yt)

    run(short)  # compile, trace, warm caches
    slopes = []
    for _ in range(3):
        t0 = time.perf_counter()
        run(short)
        t1 = time.perf_counter()
        run(long)
        t2 = time.perf_counter()
        slopes.append(((t2 - t1) - (t1 - t0)) / ((long - short) * 10) * 1e3)
    print(statistics.median(slopes))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("baseline", type=Path, help="folder holding the other copy of the ppl_kernels package")
    p.add_argument("--workloads", nargs="+", default=["W1", "W3"], choices=["W1", "W3"])
    p.add_argument("--backends", nargs="+", default=["numpyro", "pyro", "pyro-jit"], choices=["numpyro", "pyro", "pyro-jit"])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    if not (args.baseline / "ppl_kernels" / "__init__.py").is_file():
        p.error(f"baseline {str(args.baseline)!r} holds no ppl_kernels package")
    copies = {"new": str(HERE.parent), "old": str(args.baseline.resolve())}
    results: dict = {}
    for _ in range(args.rounds):
        for w in args.workloads:
            for b in args.backends:
                for name, path in copies.items():
                    env = dict(os.environ, PYTHONPATH=path, OMP_NUM_THREADS="1")
                    out = subprocess.run([sys.executable, __file__, "--child", w, b], env=env, capture_output=True,
                                         text=True, check=True)
                    results.setdefault((w, b), {}).setdefault(name, []).append(float(out.stdout.split()[-1]))
    print("| workload | backend | new ms/step (median) | old ms/step (median) | new/old |")
    print("|---|---|---|---|---|")
    for (w, b), r in results.items():
        new, old = statistics.median(r["new"]), statistics.median(r["old"])
        print(f"| {w} | {b} | {new:.4g} | {old:.4g} | {new / old:.3f} |")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        _child(sys.argv[2], sys.argv[3])
    else:
        sys.exit(main())
