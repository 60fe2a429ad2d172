"""``ppl-kernels``: the command line.

``ppl-kernels demo``
    The research notes' study in two or three minutes: the Bayesian MLP on
    scikit-learn's digits at T = 1, 0.1, 0.01 under plain and norm-adjusting
    SGHMC, with progress bars, a comparison table and a run folder.
``ppl-kernels sweep --model M ...``
    Any model of :mod:`ppl_kernels.models` at the temperatures and kernel
    settings given (every combination of them), into a run folder.
``ppl-kernels report DIR``
    Reads a run folder back and re-draws its table and figures.
``ppl-kernels bench ...``
    The benchmarks: runs ``benchmarks/run.py`` of the source checkout with the
    same arguments (they are not part of the installed package).

A run folder holds ``runs/*.nc`` (one NetCDF per run, the layout of
:func:`ppl_kernels.to_inference_data`), ``comparison.csv``, ``figures/*.png``
and ``run.json`` (what was run, and which runs are finished).  Each run's
NetCDF is made final as the run completes and ``run.json`` is marked
``"complete": true`` last, so a failed or interrupted sweep keeps its finished
runs (``--resume DIR`` runs the rest) and ``report`` refuses a folder that is
not complete.

Bad arguments print one line, ``ppl-kernels: error: ...``, and exit with
status 2 before anything runs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import re
import sys
import time
import warnings
from pathlib import Path

from .models import MODELS
from .runner import BACKENDS

__all__ = ["main", "DEMO_TEMPERATURES", "NORM_ADJUSTING"]

#: The demo's temperatures and the research notes' norm-adjusting settings.
DEMO_TEMPERATURES = (1.0, 0.1, 0.01)
NORM_ADJUSTING = {"boost": 3.0, "friction_scale": 1e-3, "resample_scale": 1e-3}

#: Columns of the printed table (those present in a comparison, in this order).
TABLE_COLUMNS = ("temperature", "boost", "friction_scale", "resample_scale", "test_accuracy", "test_nll", "elpd_loo",
                 "se", "theta_sq_mean", "kinetic_temperature_mean", "ess_theta_sq", "ess_test_log_density", "rhat_max")
#: Metrics drawn against T, when the comparison has them.
CURVE_METRICS = ("test_nll", "test_accuracy", "elpd_loo", "theta_sq_mean")

RUN_FILE = "run.json"
FORMAT_VERSION = 1


class UsageError(ValueError):
    """A bad command-line argument (reported in one line, exit status 2)."""


class _Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors are one line and exit with status 2."""

    def error(self, message):
        raise UsageError(f"{self.prog}: error: {message}")


# -- argument types ------------------------------------------------------------------------------------------


def _number(kind: str, *, minimum=None, strict=False):
    def parse(text):
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a number, got {text!r}") from None
        if not math.isfinite(v) or (minimum is not None and (v < minimum or (strict and v == minimum))):
            op = ">" if strict else ">="
            raise argparse.ArgumentTypeError(f"{kind} must be a finite number {op} {minimum}, got {text!r}")
        return v

    return parse


def _count(kind: str, minimum: int = 1):
    def parse(text):
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be an integer, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"{kind} must be >= {minimum}, got {text!r}")
        return v

    return parse


def _resample(text):
    if text.lower() == "none":
        return None
    return _number("--resample-scale", minimum=0.0)(text)


def _schedule(text):
    """``constant`` or ``cyclical:CYCLE_LENGTH:EXPLORE_FRACTION[:MIN]``."""
    from . import schedules

    if text == "constant":
        return None
    m = re.fullmatch(r"cyclical:([^:]+):([^:]+)(?::([^:]+))?", text)
    if not m:
        raise argparse.ArgumentTypeError(
            f"--schedule must be 'constant' or 'cyclical:CYCLE_LENGTH:EXPLORE_FRACTION[:MIN]', got {text!r}")
    try:
        length, frac = int(m.group(1)), float(m.group(2))
        v_min = 1e-3 if m.group(3) is None else float(m.group(3))
        schedules.cyclical(1.0, v_min, cycle_length=length, explore_fraction=frac)  # validates
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"--schedule {text!r}: {e}") from None
    return {"cycle_length": length, "explore_fraction": frac, "v_min": v_min}


# -- the parser ----------------------------------------------------------------------------------------------


def _add_run_options(p, *, samples: int, burn_in_help: str):
    p.add_argument("--backend", choices=BACKENDS, default="numpyro", help="default: numpyro (fastest on CPU)")
    p.add_argument("--samples", type=_count("--samples"), default=samples, help=f"draws per chain (default {samples})")
    p.add_argument("--warmup", type=_count("--warmup", 0), default=0, help="draws run and discarded first (default 0)")
    p.add_argument("--burn-in", type=_count("--burn-in", 0), default=None, help=burn_in_help)
    p.add_argument("--chains", type=_count("--chains"), default=1, help="chains per run (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed, the same for every run (default 0)")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder to create (must not exist; default ./runs/<command>-<date>-<time>)")
    p.add_argument("--resume", type=Path, default=None, metavar="DIR",
                   help="finish an interrupted run folder: with the same arguments, run only the runs it lacks")


def _parser() -> _Parser:
    p = _Parser(prog="ppl-kernels", description="Tempered, norm-adjusting SGHMC for Pyro and NumPyro.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser, metavar="{demo,sweep,report,bench}")

    d = sub.add_parser("demo", help="Bayesian MLP on digits: plain against norm-adjusting SGHMC at three temperatures",
                       description=f"Sample the digits MLP at T = {', '.join(map(str, DEMO_TEMPERATURES))} with plain "
                                   f"SGHMC and with the research notes' norm-adjusting settings {NORM_ADJUSTING}.")
    _add_run_options(d, samples=300, burn_in_help="leading draws left out of the table (default: samples / 5)")

    s = sub.add_parser("sweep", help="one model at several temperatures and kernel settings",
                       description="Runs every combination of --temperatures, --boost, --friction-scale and "
                                   "--resample-scale.")
    s.add_argument("--model", choices=MODELS, required=True)
    s.add_argument("--temperatures", type=_number("--temperatures", minimum=0.0), nargs="+", default=[1.0],
                   metavar="T", help="default: 1")
    s.add_argument("--boost", type=_number("--boost", minimum=0.0, strict=True), nargs="+", default=[1.0],
                   metavar="ALPHA", help="mass factor α (default 1)")
    s.add_argument("--friction-scale", type=_number("--friction-scale", minimum=0.0, strict=True), nargs="+",
                   default=[1.0], metavar="GAMMA", help="friction factor γ (default 1)")
    s.add_argument("--resample-scale", type=_resample, nargs="+", default=[None], metavar="BETA",
                   help="momentum resampling r ~ N(0, βM) every draw; 'none' never resamples (default)")
    s.add_argument("--schedule", type=_schedule, default=None,
                   help="'constant' (default) or 'cyclical:CYCLE_LENGTH:EXPLORE_FRACTION[:MIN]': β then cycles "
                        "from each --resample-scale value down to MIN (default 0.001) over CYCLE_LENGTH draws")
    s.add_argument("--step-size", type=_number("--step-size", minimum=0.0, strict=True), default=None,
                   help="integrator step ε (default: the model's)")
    s.add_argument("--num-steps", type=_count("--num-steps"), default=None, help="steps per draw (default: the model's)")
    s.add_argument("--friction", type=_number("--friction", minimum=0.0, strict=True), default=None,
                   help="base friction C (default: the model's)")
    s.add_argument("--subsample-size", type=_count("--subsample-size"), default=None,
                   help="minibatch size (default: the model's)")
    _add_run_options(s, samples=200, burn_in_help="leading draws left out of the table (default: samples / 5)")

    r = sub.add_parser("report", help="re-draw the table and figures of a run folder")
    r.add_argument("folder", type=Path)

    b = sub.add_parser("bench", help="benchmarks/run.py of the source checkout (ppl-kernels bench --help)",
                       add_help=False)
    b.add_argument("args", nargs=argparse.REMAINDER)
    return p


# -- planning runs --------------------------------------------------------------------------------------------


def _label(t, boost, friction_scale, beta, schedule) -> str:
    parts = [f"T={t:g}"]
    if boost != 1.0 or friction_scale != 1.0:
        parts.append(f"α={boost:g} γ={friction_scale:g}")
    if beta is not None:
        parts.append(f"β={beta:g}" if schedule is None else f"β cyclical {beta:g}→{schedule['v_min']:g}")
    return " ".join(parts)


def _plan(*, temperatures, settings, base, schedule):
    """``[(label, kernel_kwargs)]`` for every combination, each validated now."""
    from . import schedules
    from .config import SGHMCConfig

    plan = []
    for t, (boost, gamma, beta) in itertools.product(temperatures, settings):
        if schedule is not None and beta is None:
            raise UsageError("--schedule cyclical needs a --resample-scale value (the top of the cycle), not 'none'")
        rs = beta if schedule is None or beta is None else schedules.cyclical(
            beta, schedule["v_min"], cycle_length=schedule["cycle_length"], explore_fraction=schedule["explore_fraction"])
        kw = {**base, "temperature": t, "boost": boost, "friction_scale": gamma, "resample_scale": rs}
        try:
            SGHMCConfig(**{k: v for k, v in kw.items() if k != "init_strategy"})
        except ValueError as e:  # names the kernel argument and its value
            raise UsageError(str(e)) from None
        plan.append((_label(t, boost, gamma, beta, schedule), kw))
    labels = [label for label, _ in plan]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise UsageError(f"the arguments repeat runs {dupes}")
    return plan


def _check_out(out: Path) -> Path:
    out = out.expanduser().absolute()
    if out.exists():
        raise UsageError(f"--out {str(out)!r} exists; give a new folder (run folders are never overwritten)")
    if not out.parent.is_dir():
        raise UsageError(f"--out {str(out)!r}: the parent folder does not exist")
    if not os.access(out.parent, os.W_OK):
        raise UsageError(f"--out {str(out)!r}: the parent folder is not writable")
    return out


def _out_of(args, prefix: str):
    """``(folder, resume)`` from ``--out`` / ``--resume``."""
    if args.resume is not None:
        if args.out is not None:
            raise UsageError("give --out or --resume, not both")
        folder = args.resume.expanduser().absolute()
        if not folder.is_dir():
            raise UsageError(f"--resume {str(folder)!r} is not a folder")
        return folder, True
    return _check_out(args.out or _default_out(prefix)), False


def _default_out(prefix: str) -> Path:
    """``./runs/<prefix>-<date>-<time>`` (``runs/`` is created when missing)."""
    runs = Path.cwd() / "runs"
    runs.mkdir(exist_ok=True)
    return runs / f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"


# -- running and writing ---------------------------------------------------------------------------------------


def _slug(label: str) -> str:
    """A file-name-safe form of a run label or setting."""
    text = label.replace("α", "a").replace("γ", "g").replace("β", "b").replace("→", "-")
    return re.sub(r"[^A-Za-z0-9.=-]+", "_", text).strip("_")


def _write_json(path: Path, data: dict) -> None:
    """Write ``data`` as JSON in one step (a reader never sees half a file)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


def _open_run_folder(out: Path, resume: bool, meta: dict) -> list:
    """Create ``out`` (or, resuming, check it holds the same plan); return the finished entries.

    Creating the folder is the lock: ``mkdir`` fails if another sweep made it first.
    """
    if not resume:
        try:
            out.mkdir()
        except FileExistsError:
            raise UsageError(f"--out {str(out)!r} exists (another sweep writing it?); give a new folder") from None
        (out / "runs").mkdir()
        _write_json(out / RUN_FILE, {**meta, "runs": []})
        return []
    try:
        old = json.loads((out / RUN_FILE).read_text())
    except (OSError, ValueError):
        raise UsageError(f"--resume {str(out)!r} is not a run folder of ppl-kernels (no readable {RUN_FILE})") from None
    keys = ("format", "model", "backend", "samples", "warmup", "chains", "seed", "burn_in", "plan")
    differ = [k for k in keys if old.get(k) != meta[k]]
    if differ:
        raise UsageError(f"--resume {str(out)!r} was made with other arguments ({', '.join(differ)} differ): "
                         "give the command that made it")
    return [e for e in old.get("runs", []) if (out / e["file"]).is_file()]


def _execute(spec, plan, *, samples, warmup, chains, seed, burn_in, out: Path, command: str, resume: bool = False):
    """Run the plan into ``out``, each run's NetCDF written and made final as it completes.

    ``run.json`` lists the finished runs after every run and is marked complete
    last; a failure or an interrupt leaves every finished run in place, and
    ``resume`` runs only the missing ones.
    """
    from .arviz import to_inference_data
    from .runner import sample

    meta = {
        "format": FORMAT_VERSION, "complete": False, "command": command, "model": spec.name,
        "backend": spec.backend, "description": spec.description, "samples": samples, "warmup": warmup,
        "chains": chains, "seed": seed, "burn_in": burn_in, "plan": [label for label, _ in plan],
    }
    entries = _open_run_folder(out, resume, meta)
    done = {e["label"] for e in entries}
    try:
        for i, (label, kw) in enumerate(plan):
            if label in done:
                print(f"[{i + 1}/{len(plan)}] {label}: already in {out}", flush=True)
                continue
            print(f"[{i + 1}/{len(plan)}] {spec.name} ({spec.backend}): {label}", flush=True)
            mcmc = sample(spec.backend, model=spec.model, model_args=spec.model_args, kernel_kwargs=kw,
                          num_samples=samples, num_warmup=warmup, num_chains=chains, seed=seed, progress_bar=True)
            idata = to_inference_data(mcmc, log_likelihood=spec.test_data is not None, predictions=spec.predictions())
            for group in idata.groups():
                idata[group].attrs["label"] = label
            name = f"runs/{i:02d}_{_slug(label)}.nc"
            idata.to_netcdf(str(out / f"{name}.partial"))
            os.replace(out / f"{name}.partial", out / name)
            entries.append({"label": label, "file": name})
            _write_json(out / RUN_FILE, {**meta, "runs": entries})
    except BaseException as e:
        for partial in (out / "runs").glob("*.partial"):
            partial.unlink()
        what = "interrupted" if isinstance(e, KeyboardInterrupt) else f"stopped by {type(e).__name__}"
        print(f"ppl-kernels: {what}; {len(entries)} of {len(plan)} runs are finished in {out}; the same command "
              f"with --resume {out} runs the rest", file=sys.stderr, flush=True)
        raise
    import arviz as az

    by_label = {e["label"]: e for e in entries}
    idatas = {label: az.from_netcdf(str(out / by_label[label]["file"])) for label, _ in plan}
    table = _write_outputs(out, idatas, meta)
    _write_json(out / RUN_FILE, {**meta, "runs": [by_label[label] for label, _ in plan], "complete": True})
    return table


def _write_outputs(folder: Path, idatas: dict, meta: dict):
    """``comparison.csv`` and ``figures/*.png`` from the runs; returns the table."""
    from .compare import compare_temperatures
    from .plots import plot_cold_posterior, plot_kinetic_temperature, plot_norm_trajectories

    burn = meta["burn_in"]
    kept = {k: v.sel(draw=slice(burn, None)) for k, v in idatas.items()}
    table = compare_temperatures(kept)
    table.to_csv(folder / "comparison.csv")
    figures = folder / "figures"
    figures.mkdir(exist_ok=True)
    for old in figures.glob("*.png"):
        old.unlink()

    def save(fig, name):
        fig.savefig(figures / name, dpi=90, bbox_inches="tight")

    groups: dict[str, dict] = {}
    for label, idata in idatas.items():
        setting = label.split(" ", 1)[1] if " " in label else "SGHMC"
        groups.setdefault(setting, {})[label] = idata
    for setting, runs in groups.items():
        fig = plot_norm_trajectories(runs, logy=True)
        fig.axes[0].set_title(f"{meta['model']}: {setting}", fontsize="medium")
        save(fig, f"norm_trajectories_{_slug(setting)}.png")
    for metric in CURVE_METRICS:
        if metric in table and table[metric].notna().any() and (table["temperature"].astype(float) > 0).any():
            save(plot_cold_posterior(table, metric), f"cold_posterior_{metric}.png")
    save(plot_kinetic_temperature(kept), "kinetic_temperature.png")
    return table


def _print_table(table, folder: Path):
    import pandas as pd

    cols = [c for c in TABLE_COLUMNS if c in table and table[c].notna().any()]
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(table[cols].to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"\nResults in {folder}:")
    print(f"  {folder / 'comparison.csv'}")
    print(f"  {folder / 'runs'}/*.nc          (arviz.from_netcdf)")
    print(f"  {folder / 'figures'}/*.png")


# -- commands -----------------------------------------------------------------------------------------------------


def _burn_in(args) -> int:
    burn = args.samples // 5 if args.burn_in is None else args.burn_in
    if burn >= args.samples:
        raise UsageError(f"--burn-in must be smaller than --samples ({args.samples}), got {burn}")
    if args.samples - burn < 2:  # checked before sampling: PSIS-LOO of the table needs two kept draws
        raise UsageError(f"--samples minus --burn-in must leave at least 2 draws for ELPD-LOO, got "
                         f"--samples {args.samples} with --burn-in {burn}")
    return burn


def _cmd_demo(args, command):
    from .models import get_model

    spec = get_model("bnn-digits", args.backend)
    settings = [(1.0, 1.0, None), (NORM_ADJUSTING["boost"], NORM_ADJUSTING["friction_scale"],
                                   NORM_ADJUSTING["resample_scale"])]
    plan = _plan(temperatures=DEMO_TEMPERATURES, settings=settings, base=spec.kernel_kwargs, schedule=None)
    burn = _burn_in(args)
    out, resume = _out_of(args, "demo")
    print(f"{spec.description}; {len(plan)} runs of {args.samples} draws ({burn} burn-in), backend {spec.backend}")
    start = time.perf_counter()
    table = _execute(spec, plan, samples=args.samples, warmup=args.warmup, chains=args.chains, seed=args.seed,
                     burn_in=burn, out=out, command=command, resume=resume)
    print(f"\nwall time {time.perf_counter() - start:.0f} s\n")
    _print_table(table, out)
    return 0


def _cmd_sweep(args, command):
    from .models import get_model

    try:
        spec = get_model(args.model, args.backend, subsample_size=args.subsample_size)
    except ValueError as e:
        raise UsageError(f"--subsample-size: {e}") from None
    base = dict(spec.kernel_kwargs)
    for key in ("step_size", "num_steps", "friction"):
        if getattr(args, key) is not None:
            base[key] = getattr(args, key)
    settings = list(itertools.product(args.boost, args.friction_scale, args.resample_scale))
    plan = _plan(temperatures=args.temperatures, settings=settings, base=base, schedule=args.schedule)
    burn = _burn_in(args)
    out, resume = _out_of(args, f"sweep-{args.model}")
    table = _execute(spec, plan, samples=args.samples, warmup=args.warmup, chains=args.chains, seed=args.seed,
                     burn_in=burn, out=out, command=command, resume=resume)
    print()
    _print_table(table, out)
    return 0


def _read_run_folder(folder: Path):
    """``(meta, {label: InferenceData})`` of a complete run folder; ``UsageError`` otherwise."""
    import arviz as az

    path = folder / RUN_FILE
    if not folder.is_dir():
        raise UsageError(f"{str(folder)!r} is not a folder")
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        raise UsageError(f"{str(folder)!r} is not a run folder of ppl-kernels (no readable {RUN_FILE})") from None
    if meta.get("complete") is not True or meta.get("format") != FORMAT_VERSION:
        raise UsageError(f"{str(folder)!r} holds an incomplete run ({len(meta.get('runs', []))} of "
                         f"{len(meta.get('plan', [])) or '?'} runs finished): give the command that made it "
                         f"--resume {folder}")
    missing = [e["file"] for e in meta["runs"] if not (folder / e["file"]).is_file()]
    if missing:
        raise UsageError(f"{str(folder)!r} lacks the run files {missing}")
    return meta, {e["label"]: az.from_netcdf(str(folder / e["file"])) for e in meta["runs"]}


def _cmd_report(args, command):
    folder = args.folder.expanduser().absolute()
    meta, idatas = _read_run_folder(folder)
    print(f"{meta['description']} ({meta['backend']}): {len(idatas)} runs, command: {meta['command']}")
    table = _write_outputs(folder, idatas, meta)
    _print_table(table, folder)
    return 0


#: The benchmarks live beside the package in a checkout (or an editable install), not in it.
_BENCH_SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "run.py"


def _cmd_bench(args, command):
    if not _BENCH_SCRIPT.is_file():
        print(f"ppl-kernels: error: the benchmarks live in the source checkout (benchmarks/run.py); {_BENCH_SCRIPT} "
              "does not exist: run them from a clone of the repository", file=sys.stderr)
        return 2
    import subprocess

    # a fresh interpreter: run.py puts its own folder on sys.path and spawns a process per backend
    return subprocess.run([sys.executable, str(_BENCH_SCRIPT), *args.args], check=False).returncode


_COMMANDS = {"demo": _cmd_demo, "sweep": _cmd_sweep, "report": _cmd_report, "bench": _cmd_bench}


def _quiet_arviz() -> None:
    """Import ArviZ once with its daily refactor notice (a FutureWarning about ArviZ's own
    API, nothing the user can act on) silenced, before any progress line: the notice is
    then stamped as shown for today, so the sweep's worker processes stay quiet too."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz  # noqa: F401


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ppl-kernels``; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for bad arguments (after one line on stderr).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    os.environ.setdefault("MPLBACKEND", "Agg")
    try:
        if argv[:1] == ["bench"]:  # every further argument, --help included, is the benchmarks'
            return _cmd_bench(argparse.Namespace(args=argv[1:]), "")
        args = _parser().parse_args(argv)
        _quiet_arviz()
        return _COMMANDS[args.command](args, " ".join(["ppl-kernels", *argv]))
    except UsageError as e:
        msg = str(e)
        print(msg if msg.startswith("ppl-kernels") else f"ppl-kernels: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the run folder's state was reported where it was interrupted
        return 130


if __name__ == "__main__":
    sys.exit(main())
