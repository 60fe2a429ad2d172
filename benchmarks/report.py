"""The report: ratios, targets, the baseline comparison, markdown and JSON.

Rows are found by their id, ``"{backend}/{group}/{key}"`` (e.g.
``"numpyro/W1/kernel"``, ``"pyro/W3-N100000/host-plate"``); the labels are
for display only, and every figure is taken from the numbers measured, never
read back from a string.
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics

from workloads import WORKLOADS

__all__ = ["TARGETS", "add_ratios", "baseline_ratios", "build", "render_markdown", "targets", "write"]

#: The issue's targets: ``(text, backend, numerator key, denominator key, limit)``,
#: each checked per workload as ``median(numerator) / median(denominator) <= limit``.
TARGETS = (
    ("NumPyro kernel <= 1.15 x (bare gradient + noise draw)", "numpyro", "kernel", "floor", 1.15),
    ("NumPyro kernel no slower than BlackJAX sghmc", "numpyro", "kernel", "blackjax", 1.0),
    ("Pyro kernel <= 1.5 x bare PyTorch gradient", "pyro", "kernel", "limit", 1.5),
    ("Pyro kernel no slower than posteriors", "pyro", "kernel", "posteriors", 1.0),
    ("Pyro kernel, jit_compile=True <= 1.5 x bare PyTorch gradient", "pyro", "kernel-jit", "limit", 1.5),
    ("Pyro kernel, jit_compile=True no slower than posteriors", "pyro", "kernel-jit", "posteriors", 1.0),
)

SMOKE_NOTE = ("Smoke run (`--quick`): every call is far too short to measure a step, so these figures are not "
              "meaningful and the targets are not evaluated.")

#: Relative difference of the models' log densities above which the two code copies
#: did not run the same model.
SAME_MODEL_RTOL = 1e-5


def _ok(recs: list[dict]) -> dict:
    return {r["id"]: r for r in recs if r.get("status") == "ok"}


def add_ratios(recs: list[dict], clock: str = "ms_per_step") -> None:
    """Ratios of each row's median to the limit, the floor and the fastest anchor
    of the same workload and backend (in place).

    Parameters
    ----------
    recs : list of dict
    clock : {"ms_per_step", "cpu_ms_per_step"}
    """
    groups: dict[tuple, list] = {}
    for r in recs:
        if r.get("status") == "ok":
            groups.setdefault((r["group"], r["backend"]), []).append(r)
    for group in groups.values():
        by_role: dict[str, list] = {}
        for r in group:
            by_role.setdefault(r["role"], []).append(r[clock]["median"])
        for r in group:
            m = r[clock]["median"]
            r["ratio_to_bare_gradient"] = m / by_role["limit"][0] if "limit" in by_role else None
            r["ratio_to_gradient_plus_noise"] = m / by_role["floor"][0] if "floor" in by_role else None
            r["ratio_to_best_anchor"] = m / min(by_role["anchor"]) if "anchor" in by_role else None


def targets(recs: list[dict], workloads: list[str], clock: str) -> list[dict]:
    """Each of :data:`TARGETS` on each workload; ``ratio`` and ``met`` are ``None``
    where a row is missing or failed, or its slope is not positive (calls too short
    for the timer's jitter: no verdict from a figure that measured nothing)."""
    ok = {k: r for k, r in _ok(recs).items() if r[clock]["median"] > 0}
    out = []
    for w in workloads:
        for text, backend, num, den, limit in TARGETS:
            a, b = ok.get(f"{backend}/{w}/{num}"), ok.get(f"{backend}/{w}/{den}")
            ratio = None if a is None or b is None else a[clock]["median"] / b[clock]["median"]
            out.append({"workload": w, "target": text, "numerator": f"{backend}/{w}/{num}",
                        "denominator": f"{backend}/{w}/{den}", "limit": limit, "ratio": ratio,
                        "met": None if ratio is None else bool(ratio <= limit)})
    return out


def baseline_ratios(current: list[dict], baseline: list[dict], clock: str = "ms_per_step") -> list[dict]:
    """New/old per row id: the ratio of the medians, and the range of the per-round
    ratios (the two copies ran turn about, so round ``r`` of one pairs with round
    ``r`` of the other).

    Returns
    -------
    list of dict
        One entry per baseline row: ``id``, ``new`` and ``old`` (median, min,
        max), ``ratio`` (of the medians), ``round_ratio_min`` / ``_max``,
        ``same_model`` (the two copies' models gave the same log density), or
        ``status`` and ``note`` where either side has no figure.
    """
    cur = {r["id"]: r for r in current}
    out = []
    for old in baseline:
        new = cur.get(old["id"])
        row = {"id": old["id"], "workload": old["workload"], "group": old["group"], "backend": old["backend"],
               "method": old["method"], "n": old.get("n")}
        if old["status"] != "ok" or new is None or new["status"] != "ok":
            bad = old if old["status"] != "ok" else new
            row.update(status="error", note="baseline: " + old["note"] if bad is old else
                       "current: " + (new["note"] if new else "no such row"))
            out.append(row)
            continue
        a, b = new[clock], old[clock]
        rounds = [x / y for x, y in zip(a["rounds"], b["rounds"])]
        lp_new, lp_old = new["info"].get("model_log_density"), old["info"].get("model_log_density")
        same = None if lp_new is None or lp_old is None else bool(
            abs(lp_new - lp_old) <= SAME_MODEL_RTOL * max(abs(lp_old), 1.0))
        row.update(status="ok", new={k: a[k] for k in ("median", "min", "max")},
                   old={k: b[k] for k in ("median", "min", "max")}, ratio=a["median"] / b["median"],
                   round_ratio_min=min(rounds), round_ratio_max=max(rounds), same_model=same,
                   note="" if same is not False else "the two copies' models differ")
        out.append(row)
    return out


def build(raw: dict, opts: dict, clock: str, meta_extra: dict | None = None) -> dict:
    """The report dict from :func:`harness.run_benchmark`'s output."""
    meta = {
        "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
        "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a",
        "python": platform.python_version(), "num_steps": opts["num_steps"], "repeats": opts["repeats"],
        "quick": opts["quick"], "workloads": opts["workloads"], "backends": opts["backends"], "clock": clock,
        "versions": {}, "packages": {}, "elapsed_s": raw["elapsed_s"], **(meta_extra or {}),
    }
    if opts["quick"]:
        meta["note"] = SMOKE_NOTE
    report = {"meta": meta, "results": [], "scaling": [], "storage": [], "targets": [], "baseline": None}
    old = []
    for backend, res in raw["backends"].items():
        for code, info in res["info"].items():
            if code == "current":
                meta["versions"].update(info["versions"])
            if "package" in info:
                meta["packages"][f"{code}/{backend}"] = info["package"]
        for r in res["results"]:
            (report["scaling"] if "n" in r else report["results"]).append(r)
        report["storage"] += res["storage"]
        old += res["baseline"]
    add_ratios(report["results"], clock)
    add_ratios(report["scaling"], clock)
    if not opts["quick"]:
        report["targets"] = targets(report["results"], opts["workloads"], clock)
    if opts.get("baseline"):
        report["baseline"] = {
            "path": opts["baseline"], "commit": opts.get("baseline_commit"), "results": old,
            "ratios": baseline_ratios(report["results"] + report["scaling"], old, clock),
        }
    return report


# -- markdown --------------------------------------------------------------------------


def _fmt(x, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _range(s: dict) -> str:
    return f"{_fmt(s['median'])} [{_fmt(s['min'])}, {_fmt(s['max'])}]"


def _result_lines(rows: list[dict]) -> list[str]:
    lines = [("| row id | method | ms/step median [min, max] | CPU ms/step | × bare grad | × grad+noise "
             "| × best anchor | compile s | peak RSS MB | note |"), "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "ok":
            lines.append(f"| `{r['id']}` | {r['method']} | {r['status']} | | | | | | | {r['note']}; {r['hint']} |")
            continue
        unit = " (per gradient)" if r["unit"] == "gradient" and "per gradient" not in r["method"] else ""
        checks = ", ".join(f"{k}={_fmt(v)}" for k, v in r.get("check", {}).items())
        note = "; ".join(x for x in (r["note"], checks) if x)
        lines.append(
            f"| `{r['id']}` | {r['method']}{unit} | {_range(r['ms_per_step'])} | {_fmt(r['cpu_ms_per_step']['median'])} "
            f"| {_fmt(r.get('ratio_to_bare_gradient'))} | {_fmt(r.get('ratio_to_gradient_plus_noise'))} "
            f"| {_fmt(r.get('ratio_to_best_anchor'))} | {_fmt(r['compile_s'])} | {_fmt(r['peak_rss_mb'], 4)} | {note} |")
    return lines


def render_markdown(report: dict) -> str:
    """The report as markdown tables."""
    meta = report["meta"]
    lines = ["# ppl-kernels benchmark", ""]
    if meta["quick"]:
        lines += [f"**{SMOKE_NOTE}**", ""]
    lines += [
        (f"{meta['cpu']}; {meta['cpus']} CPUs; load average at start {meta['loadavg']}; "
        f"num_steps = {meta['num_steps']}; ratios on the {meta['clock'].replace('_', ' ')} medians; "
        f"{meta['repeats']} timed round{'s' if meta['repeats'] != 1 else ''} per method after one compile/warm-up call."),
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(meta["versions"].items())),
        "",
    ]
    for w in meta["workloads"]:
        wl = WORKLOADS[w]
        rows = [r for r in report["results"] if r.get("group") == w]
        lines += [f"## {w}: {wl.title} (N={wl.n}, B={wl.batch}, d={wl.dim})", "", *_result_lines(rows), ""]
    failed = [r for r in report["results"] if r.get("group") not in meta["workloads"]]
    if failed:  # a backend that could not start or a child that died: shown, never dropped
        lines += ["## Runs that failed", "", *_result_lines(failed), ""]
    if report["targets"]:
        lines += ["## Targets", "", "| workload | target | ratio | met |", "|---|---|---|---|"]
        for t in report["targets"]:
            met = "–" if t["met"] is None else ("yes" if t["met"] else "no")
            lines.append(f"| {t['workload']} | {t['target']} | {_fmt(t['ratio'])} | {met} |")
        lines.append("")
    if report["baseline"]:
        lines += _baseline_lines(report["baseline"])
    if report["scaling"]:
        lines += [f"## ms/step against N (W3 model, B={WORKLOADS['W3'].batch})", "",
                  "| row id | method | N | ms/step median [min, max] | CPU ms/step |", "|---|---|---|---|---|"]
        for r in sorted(report["scaling"], key=lambda r: (r["backend"], r["role"], r["n"])):
            if r["status"] != "ok":  # a failed row is shown, never dropped
                lines.append(f"| `{r['id']}` | {r['method']} | {r['n']:.0e} | {r['status']}: {r['note'][:120]} | |")
                continue
            lines.append(f"| `{r['id']}` | {r['method']} | {r['n']:.0e} | {_range(r['ms_per_step'])} "
                         f"| {_fmt(r['cpu_ms_per_step']['median'])} |")
        lines.append("")
    if report["storage"]:
        lines += ["## Memory per stored draw", "",
                  ("| row id | storage | draws run / kept | bytes per kept draw | bytes per draw run "
                  "| peak RSS growth MB |"), "|---|---|---|---|---|---|"]
        for r in report["storage"]:
            lines.append(f"| `{r['id']}` | {r['storage']} | {r['draws_run']} / {r['draws_kept']} "
                         f"| {_fmt(r['bytes_per_kept_draw'], 6)} | {_fmt(r['bytes_per_draw_run'], 6)} "
                         f"| {_fmt(r['peak_rss_growth_mb'])} |")
        lines.append("")
    return "\n".join(lines)


def _baseline_lines(base: dict) -> list[str]:
    commit = f" at {base['commit']}" if base.get("commit") else ""
    lines = [f"## New / old: this code against `{base['path']}`{commit}", "",
             ("Kernel rows only, the two copies timed turn about in each round. `new/old` is the ratio of the "
             "medians; the range is that of the per-round ratios."), "",
             ("| workload | backend | row id | new ms/step median [min, max] | old ms/step median [min, max] "
             "| new/old | per-round new/old [min, max] | note |"), "|---|---|---|---|---|---|---|---|"]
    rows = sorted(base["ratios"], key=lambda r: (r["workload"], r["backend"], r.get("n") or 0, r["id"]))
    for r in rows:
        head = f"| {r['group']} | {r['backend']} | `{r['id']}` "
        if r["status"] != "ok":
            lines.append(head + f"| {r['status']} | | | | {r['note'][:200]} |")
            continue
        lines.append(head + f"| {_range(r['new'])} | {_range(r['old'])} | {_fmt(r['ratio'])} "
                     f"| [{_fmt(r['round_ratio_min'])}, {_fmt(r['round_ratio_max'])}] | {r['note']} |")
    per = {}
    for r in rows:
        if r["status"] == "ok":
            section = r["workload"] if r.get("n") is None else f"{r['workload']}, all N"
            per.setdefault((section, r["backend"]), []).append(r["ratio"])
    if per:
        lines += ["", "| workload | backend | rows | new/old median [min, max] |", "|---|---|---|---|"]
        for (w, b), ratios in sorted(per.items()):
            lines.append(f"| {w} | {b} | {len(ratios)} | {_fmt(statistics.median(ratios))} "
                         f"[{_fmt(min(ratios))}, {_fmt(max(ratios))}] |")
    return [*lines, ""]


def write(report: dict, out: str) -> tuple[str, str, str]:
    """Write ``bench.json`` and ``bench.md`` under ``out``; returns their paths and the markdown."""
    os.makedirs(out, exist_ok=True)
    json_path, md_path = os.path.join(out, "bench.json"), os.path.join(out, "bench.md")
    with open(json_path, "w") as f:
        json.dump(report, f, indent=1, default=float)
    md = render_markdown(report)
    with open(md_path, "w") as f:
        f.write(md + "\n")
    return json_path, md_path, md
