"""Timing harness: methods, interleaved rounds, one child process per backend and code copy.

A *method* is one row of the report: ``make(units)`` returns a call that does
``units`` integrator steps (or gradients) and blocks until they are done.
Each method runs at two sizes, ``U`` and ``3U`` steps, and its cost per step
is the slope between them, so that the fixed cost of one call (NumPyro's
``MCMC.run`` re-traces its loop and re-initialises the kernel at every call;
Pyro's sets the kernel up) is reported apart as ``overhead_ms_per_call``.
The first call at each size (compilation, tracing, setup) is reported as
``compile_s`` and is not timed.

The methods of one section (a workload, or the N-scaling rows) are timed in
interleaved rounds, so that a machine whose load drifts slows them all alike.
With a baseline copy of the package, a second child process times the kernel
rows with that copy, and the two processes take turns round by round (the
first of each round alternating).  Every call is timed on the wall clock and
on the process CPU clock; peak RSS is the process peak during the method.
"""

from __future__ import annotations

import importlib.util
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import workloads

__all__ = ["METHOD_ERRORS", "Method", "Session", "WorkerFailed", "per_step", "run_benchmark", "summarize"]

#: What a method that cannot run raises (a missing feature, a compile error, memory):
#: it is reported as an error row and must not sink the rest of the run.
METHOD_ERRORS = (ArithmeticError, AssertionError, AttributeError, ImportError, LookupError, MemoryError, OSError,
                 RuntimeError, TypeError, ValueError)

#: Install hints for the packages a row may miss.
INSTALL_HINTS = {
    "blackjax": "pip install blackjax",
    "posteriors": "pip install posteriors  (check with `pip install --dry-run posteriors` that it keeps your torch)",
    "numpyro": "pip install 'ppl-kernels[numpyro]'",
    "pyro": "pip install 'ppl-kernels[pyro]'",
}


@dataclass
class Method:
    """One measured row.

    Attributes
    ----------
    key : str
        Stable name within its group, e.g. ``"kernel"``, ``"floor"``, ``"hmc"``.
    label : str
        What the report shows.
    role : {"limit", "floor", "anchor", "kernel", "variant"}
    make : callable or None
        ``make(units) -> call``; ``call()`` runs ``units`` steps and blocks.
    units : int
        Steps (or gradients) of the small timed call.
    group : str
        The workload (``"W1"``) or the scaling point (``"W3-N1000"``); the row
        id is ``"{backend}/{group}/{key}"``.
    uses_kernel : bool
        Driven by ``ppl_kernels``' SGHMC: measured with the baseline copy too.
    check : callable or None
        Run once after the timing; returns a dict of sanity figures.
    info : dict
        Figures known when the row is built (e.g. the model's log density).
    """

    key: str
    label: str
    role: str
    make: Callable[[int], Callable[[], Any]] | None = None
    units: int = 0
    group: str = ""
    unit: str = "step"
    note: str = ""
    status: str = "ok"
    hint: str = ""
    uses_kernel: bool = False
    check: Callable[[], dict] | None = None
    info: dict = field(default_factory=dict)
    n: int | None = None


def skipped(key: str, label: str, role: str, package: str, group: str) -> Method:
    """A row whose package is not installed: kept in the report with its install hint."""
    return Method(key, label, role, group=group, status="skipped", hint=INSTALL_HINTS[package],
                  note=f"{package} is not installed")


def have(module: str) -> bool:
    """Whether ``module`` can be imported (without importing it)."""
    return importlib.util.find_spec(module) is not None


def integrator_variants(kernel_class) -> list[str]:
    """The kernel's integrators other than its default, each a ``kernel-<name>`` row (none for
    a ``--baseline`` copy of the package that has no ``integrator`` argument)."""
    import inspect

    param = inspect.signature(kernel_class).parameters.get("integrator")
    if param is None:
        return []
    from ppl_kernels.dynamics import INTEGRATORS

    return [name for name in INTEGRATORS if name != param.default]


def log(msg: str) -> None:
    """One progress line on stderr (stdout carries the report), so a run cut short still leaves its figures."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- process clocks and memory ---------------------------------------------------------


def _rss_reset() -> None:
    # resets VmHWM, so that each method's peak is its own (Linux only; else the process peak)
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def rss_peak_mb() -> float:
    """Peak resident memory of this process since the last reset, in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def reset_rss() -> float:
    """Reset the peak and return the current resident memory in MB."""
    _rss_reset()
    return rss_peak_mb()


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


# -- per-step figures ------------------------------------------------------------------


def per_step(times: dict, units: int) -> tuple[list, float]:
    """Per-step times (ms) of each round and the fixed cost of one call (ms).

    Parameters
    ----------
    times : dict
        ``{units: [seconds per round]}``, and ``{3 * units: [...]}`` when the
        method ran at two sizes.
    units : int

    Returns
    -------
    per : list of float
        One figure per round: the slope ``(t(3U) - t(U)) / 2U``, or ``t(U) / U``
        for a single size.
    overhead : float
        The intercept, ``median t(U) - U * median slope`` (0 for a single size).
    """
    if 3 * units not in times:
        return [1e3 * t / units for t in times[units]], 0.0
    small, large = times[units], times[3 * units]
    per = [1e3 * (tl - ts) / (2 * units) for ts, tl in zip(small, large)]
    return per, 1e3 * statistics.median(small) - units * statistics.median(per)


def _stats(per: list) -> dict:
    if not per:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "rounds": []}
    return {"median": statistics.median(per), "min": min(per), "max": max(per), "rounds": list(per)}


def summarize(raw: dict) -> dict:
    """A report row from a raw row: the per-step figures of both clocks.

    ``ms_per_step`` and ``cpu_ms_per_step`` hold ``median``, ``min``, ``max``
    and the figure of each round (``rounds``, in timing order).
    """
    rec = {k: v for k, v in raw.items() if k not in ("wall", "cpu")}
    if raw["status"] == "ok":
        units = raw["units_per_call"]
        wall, overhead = per_step({int(k): v for k, v in raw["wall"].items()}, units)
        cpu, cpu_overhead = per_step({int(k): v for k, v in raw["cpu"].items()}, units)
        rec.update(ms_per_step=_stats(wall), cpu_ms_per_step=_stats(cpu), overhead_ms_per_call=overhead,
                   cpu_overhead_ms_per_call=cpu_overhead)
    return rec


# -- one backend with one copy of the code ---------------------------------------------


class Session:
    """Builds, compiles and times the methods of one backend in this process.

    Parameters
    ----------
    backend : {"numpyro", "pyro"}
    opts : dict
        The run's options (see ``run.py``).
    baseline : str or None
        A folder holding another copy of the ``ppl_kernels`` package: it is put
        first on ``sys.path`` before anything imports ``ppl_kernels``, and only
        the rows that use the kernel are timed.
    """

    def __init__(self, backend: str, opts: dict, baseline: str | None = None):
        self.backend, self.opts, self.baseline = backend, opts, baseline
        self.code = "current" if baseline is None else "baseline"
        if baseline is not None:
            if "ppl_kernels" in sys.modules:
                raise RuntimeError("a baseline session needs a process that has not imported ppl_kernels")
            sys.path.insert(0, baseline)
        self.methods: list[Method] = []
        self.restore = lambda: None
        self.info = {"backend": backend, "code": self.code, "versions": {}, "status": "ok", "note": ""}
        try:
            if backend == "numpyro":
                import jax_rows as rows
            else:
                import torch_rows as rows
            self.rows = rows
            self.info["versions"], self.restore = rows.prepare_process(opts)
        except ImportError as e:
            self.rows = None
            self.info.update(status="skipped", note=str(e), hint=INSTALL_HINTS[backend])
            return
        import ppl_kernels

        package = str(Path(ppl_kernels.__file__).resolve().parent)
        if baseline is not None and not package.startswith(str(Path(baseline).resolve())):
            raise RuntimeError(f"the baseline run imported ppl_kernels from {package}, not from {baseline}")
        self.info["package"] = package

    def describe(self) -> dict:
        """Backend, code copy, versions, package folder, and whether the backend could be imported."""
        return self.info

    def _tag(self, m: Method) -> str:
        return f"{self.code} {self.backend}/{m.group}/{m.key}"

    def prepare(self, section: str) -> int:
        """Build the methods of ``section`` (a workload name or ``"scaling"``) and
        make the first call at each size; returns how many can be timed."""
        if self.rows is None:
            return 0
        if section == "scaling":
            methods = self.rows.scaling_methods(workloads.WORKLOADS["W3"], self.opts)
        else:
            methods = self.rows.workload_methods(workloads.WORKLOADS[section], self.opts)
        if self.baseline is not None:
            # the older copy shares only the public constructor and MCMC with this one
            methods = [m for m in methods if m.uses_kernel]
            for m in methods:
                m.check = None
        for m in methods:
            m.wall, m.cpu, m.calls, m.compile_s, m.peak_rss_mb = {}, {}, {}, math.nan, math.nan
            if m.status != "ok":
                continue
            _rss_reset()
            try:
                for u in self._sizes(m):
                    m.calls[u] = m.make(u)
                    m.wall[u], m.cpu[u] = [], []
                    first = _timed(m.calls[u])[0]
                    if u == m.units:
                        m.compile_s = first
            except METHOD_ERRORS as e:
                self._fail(m, e)
                continue
            m.peak_rss_mb = rss_peak_mb()
            log(f"{self._tag(m)}: first calls {m.compile_s:.1f} s")
        self.methods = methods
        return sum(m.status == "ok" for m in methods)

    def _sizes(self, m: Method) -> tuple:
        return (m.units,) if self.opts["quick"] else (m.units, 3 * m.units)

    def _fail(self, m: Method, e: BaseException) -> None:
        m.status, m.note, m.calls = "error", f"{type(e).__name__}: {e}"[:300], {}
        log(f"{self._tag(m)}: {m.note}")

    def round(self, r: int) -> None:
        """Time every live method once at each size (round ``r``, for the log)."""
        for m in self.methods:
            if m.status != "ok":
                continue
            try:
                for u in self._sizes(m):
                    _rss_reset()
                    w, c = _timed(m.calls[u])
                    m.peak_rss_mb = max(m.peak_rss_mb, rss_peak_mb())
                    m.wall[u].append(w)
                    m.cpu[u].append(c)
            except METHOD_ERRORS as e:
                self._fail(m, e)
                continue
            last = per_step({u: t[-1:] for u, t in m.wall.items()}, m.units)[0][-1]
            log(f"round {r + 1}/{self.opts['repeats']} {self._tag(m)}: {last:.4g} ms/{m.unit}")

    def finish(self) -> list[dict]:
        """The raw rows of the section (times of every call), after running the checks."""
        out = []
        for m in self.methods:
            rec = {
                "id": f"{self.backend}/{m.group}/{m.key}", "workload": m.group.split("-N")[0], "group": m.group,
                "backend": self.backend, "code": self.code, "key": m.key, "method": m.label, "role": m.role,
                "unit": m.unit, "uses_kernel": m.uses_kernel, "status": m.status, "note": m.note, "hint": m.hint,
                "units_per_call": m.units, "calls": sum(len(v) for v in m.wall.values()), "info": m.info,
                "compile_s": m.compile_s, "peak_rss_mb": m.peak_rss_mb, "wall": m.wall, "cpu": m.cpu,
            }
            if m.n is not None:
                rec["n"] = m.n
            if m.status == "ok":
                # the first call ran the same work as the timed ones, plus compilation
                rec["compile_s"] = max(m.compile_s - statistics.median(m.wall[m.units]), 0.0)
                if m.check is not None:
                    rec["check"] = m.check()
            out.append(rec)
        self.methods = []  # frees the compiled loops and their data
        return out

    def storage(self) -> list[dict]:
        """Memory per stored draw (current code only)."""
        if self.rows is None:
            return []
        return self.rows.storage_rows(workloads.WORKLOADS[self.opts["storage"]["workload"]], self.opts)

    def close(self) -> None:
        self.restore()


# -- workers: a session in this process or in a child ---------------------------------


class WorkerFailed(RuntimeError):
    """A child process died (its traceback is on stderr above)."""


class _Local:
    def __init__(self, backend, opts, baseline):
        self.session = Session(backend, opts, baseline)

    def call(self, name, *args):
        return getattr(self.session, name)(*args)


def _serve(conn, backend, opts, baseline):
    """Child process: run the parent's calls on one session until told to stop.

    An exception ends the process with its traceback on stderr; the parent
    sees the pipe close and reports the rows of this process as failed.
    """
    session = Session(backend, opts, baseline)
    conn.send(None)
    while True:
        name, args = conn.recv()
        conn.send(getattr(session, name)(*args))
        if name == "close":
            return


class _Child:
    """A session in a fresh interpreter (spawned: nothing of this process is inherited)."""

    def __init__(self, backend, opts, baseline):
        import multiprocessing as mp

        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.proc = ctx.Process(target=_serve, args=(child, backend, opts, baseline), daemon=True)
        self.proc.start()
        child.close()
        self._recv()

    def _recv(self):
        try:
            return self.conn.recv()
        except EOFError:
            self.proc.join(5)
            raise WorkerFailed(f"the child process exited with code {self.proc.exitcode} (its traceback is on stderr)") from None

    def call(self, name, *args):
        try:
            self.conn.send((name, args))
        except OSError:  # the child is gone; _recv says how it ended
            pass
        out = self._recv()
        if name == "close":
            self.proc.join(30)
        return out


def _worker(backend: str, opts: dict, baseline: str | None, isolate: bool):
    return _Child(backend, opts, baseline) if isolate or baseline is not None else _Local(backend, opts, baseline)


class _Workers:
    """The live sessions of one backend, by code copy; a child that dies leaves one error row."""

    def __init__(self, backend: str):
        self.backend, self.live, self.rows = backend, {}, {"current": [], "baseline": []}

    def start(self, code: str, opts: dict, path: str | None, isolate: bool) -> None:
        try:
            w = _worker(self.backend, opts, path, isolate)
            info = w.call("describe")
        except WorkerFailed as e:
            self.error(code, "setup", str(e))
            return
        self.rows[code + "_info"] = info
        if info["status"] == "ok":
            self.live[code] = w
        else:  # the backend's packages are missing: one row says so, with the install hint
            self.rows[code].append({**self._row(code, "all", info["note"]), "status": info["status"],
                                    "hint": info.get("hint", "")})
            w.call("close")

    def _row(self, code: str, section: str, note: str) -> dict:
        return {"id": f"{self.backend}/{section}/all", "workload": section, "group": section,
                "backend": self.backend, "code": code, "key": "all", "method": "all", "role": "",
                "status": "error", "note": note, "hint": ""}

    def error(self, code: str, section: str, note: str) -> None:
        self.rows[code].append(self._row(code, section, note))
        self.live.pop(code, None)

    def call(self, code: str, section: str, name: str, *args):
        """``name(*args)`` on the session ``code``; ``None`` once it has died."""
        try:
            return self.live[code].call(name, *args)
        except WorkerFailed as e:
            self.error(code, section, str(e))
            return None


def _section(ws: _Workers, section: str, repeats: int) -> None:
    """Prepare, time in interleaved rounds, and collect one section in every session."""
    for code in list(ws.live):
        ws.call(code, section, "prepare", section)
    for r in range(repeats):
        # the first session of a round alternates, so that neither always runs on a fresher machine
        order = list(ws.live) if r % 2 == 0 else list(ws.live)[::-1]
        for code in order:
            ws.call(code, section, "round", r)
    for code in list(ws.live):
        raw = ws.call(code, section, "finish")
        ws.rows[code] += [summarize(r) for r in raw or []]


def run_backend(backend: str, opts: dict, isolate: bool = True) -> dict:
    """Every section of one backend, with the current code and, if asked, the baseline.

    Returns
    -------
    dict
        ``info`` per code copy (versions, package folder), ``results`` and
        ``baseline`` (summarised rows), ``storage`` rows.
    """
    ws = _Workers(backend)
    ws.start("current", opts, None, isolate)
    if opts.get("baseline"):
        ws.start("baseline", opts, opts["baseline"], isolate)
    for section in list(opts["workloads"]) + (["scaling"] if opts["scaling"] else []):
        if "current" in ws.live:
            _section(ws, section, opts["repeats"])
    storage = ws.call("current", "storage", "storage") if opts["storage"] and "current" in ws.live else None
    for code in list(ws.live):
        ws.call(code, "close", "close")
    info = {code: ws.rows[code + "_info"] for code in ("current", "baseline") if code + "_info" in ws.rows}
    return {"info": info, "results": ws.rows["current"], "baseline": ws.rows["baseline"], "storage": storage or []}


def run_benchmark(opts: dict, isolate: bool = True) -> dict:
    """Run every backend of ``opts``; returns the raw report (see ``report.build``)."""
    t0 = time.perf_counter()
    backends = {}
    for backend in opts["backends"]:
        backends[backend] = run_backend(backend, opts, isolate)
    return {"backends": backends, "elapsed_s": time.perf_counter() - t0}


def jax_cache_dir() -> str:
    """A fresh folder for JAX's persistent compilation cache (one per process)."""
    return tempfile.mkdtemp(prefix="ppl-bench-jax-")


def cpu_count() -> int:
    """CPUs this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1
