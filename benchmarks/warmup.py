"""What the self-tuning warmup buys: effective samples per gradient evaluation.

Usage: ``python benchmarks/warmup.py [--out DIR]`` (default ``/tmp/warmup_bench``);
writes ``DIR/warmup.json`` and prints a markdown table.  NumPyro only, CPU, a few
minutes on two cores.

Everything is counted, not timed, so that the figures hold on a busy machine and
on any hardware: the cost of a run is its number of gradient evaluations, and its
worth the effective sample size (ArviZ bulk ESS) of its worst-mixing latent
coordinate and of ‖θ‖².  ``SGHMC(model)`` runs with every default (only the
temperature given) against NumPyro's ``NUTS(model)``, both with 400 warmup draws
and 2 chains (``chain_method="sequential"``).

- **Full-batch models** (1000 draws): the Gaussians of ``tests/warmup_cases.py``
  (scales 0.01 .. 100 and a correlated pair), eight schools non-centred and the
  logistic regression of ``tests/targets.py``.
- **Subsampled model** (2000 draws): the conjugate linear regression of
  ``tests/warmup_cases.py`` (N = 400, B = N/8) at T = 1, 0.1, 0.01; cost in
  epochs (N/B minibatch gradients, or one full-data gradient), and NUTS on the
  full data at T = 1.

Gradient counts.  SGHMC: ``num_steps`` per draw while sampling; a warmup draw adds
the adaptation's measurements (``_probe`` in ``ppl_kernels/numpyro/integrator.py``):
one curvature-probe gradient (full batch; the probe's base gradient is the draw's
last one), or a fresh minibatch gradient plus the probe on it (subsampled plate:
``num_steps + 2``).  NUTS: the ``num_steps`` extra field (leapfrog steps, one
gradient each) of every warmup and sampling draw (``NUTS``'s default
``find_heuristic_step_size=False`` spends no others).  Both add the initial
gradient of each chain to the warmup.  A host-callback counter in the model
agreed with these counts (SGHMC's constraining of each draw adds one forward
pass of the model per draw, no gradient).

ESS.  Per coordinate of the constrained draws with ``tau`` on the log scale
(which for these models are exactly the unconstrained coordinates), and
‖θ‖² as the sum of squares of those coordinates, for both methods alike; for
SGHMC this ‖θ‖² is its ``theta_sq_norm`` statistic, which the JSON checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np

NUM_WARMUP, NUM_CHAINS, SEED = 400, 2, 0

# -- the models: the warmup tests' own (the tests directory is not a package) -------------------
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from targets import as_array, logistic_data  # noqa: E402
from targets import logistic_model as _logistic_model  # noqa: E402
from warmup_cases import N, regression_data  # noqa: E402
from warmup_cases import gaussian_model as _gaussian_model  # noqa: E402
from warmup_cases import regression_model as _regression_model  # noqa: E402
from warmup_cases import schools_model as _schools_model  # noqa: E402

BATCH = N // 8


def _f(x):
    return as_array("numpyro", x)


def gaussian_model():
    return _gaussian_model("numpyro")


def schools_model():
    return _schools_model("numpyro")


def logistic_model():
    return _logistic_model("numpyro")


def regression_model(subsample_size=BATCH):
    """``subsample_size=None``: the full-data copy for NUTS."""
    return _regression_model("numpyro", subsample_size)


def coordinates(draws: dict) -> dict:
    """``{name: (chain, draw)}`` per latent coordinate, ``tau`` logged."""
    out = {}
    for site in sorted(draws):
        x = np.log(draws[site]) if site == "tau" else draws[site]
        x = np.asarray(x, dtype=float).reshape(x.shape[:2] + (-1,))
        for i in range(x.shape[-1]):
            out[site if x.shape[-1] == 1 and draws[site].ndim == 2 else f"{site}[{i}]"] = x[..., i]
    return out


def quality(draws: dict) -> dict:
    import arviz as az

    coords = coordinates(draws)
    ess = {k: float(az.ess(v)) for k, v in coords.items()}
    rhat = {k: float(az.rhat(v)) for k, v in coords.items()}
    sq = sum(v**2 for v in coords.values())
    worst = min(ess, key=ess.get)
    return {"ess_bulk": ess, "rhat": rhat, "min_ess": ess[worst], "worst_coordinate": worst,
            "max_rhat": max(rhat.values()), "ess_sq_norm": float(az.ess(sq)), "sq_norm": sq}


def run_sghmc(model, args, num_samples, temperature, subsampled):
    import arviz as az

    from ppl_kernels import runner
    from ppl_kernels._host import get_adaptation, get_draws, get_stats, kernel_of

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mcmc = runner.sample("numpyro", model=model, model_args=args, kernel_kwargs={"temperature": temperature},
                             num_warmup=NUM_WARMUP, num_samples=num_samples, num_chains=NUM_CHAINS, seed=SEED)
    cfg = kernel_of(mcmc).config
    stats, adapted = get_stats(mcmc), get_adaptation(mcmc)
    q = quality(get_draws(mcmc))
    # the warmup's extra gradients per draw, as _probe spends them
    extra = int(cfg.adapt_mass_matrix) + int(subsampled and (cfg.adapt_mass_matrix or cfg.adapt_step_size))
    draws_w, draws_s = NUM_WARMUP * cfg.thinning, num_samples * cfg.thinning
    grads_w = NUM_CHAINS * (draws_w * (cfg.num_steps + extra) + 1)
    grads_s = NUM_CHAINS * draws_s * cfg.num_steps
    sq_stat = np.asarray(stats["theta_sq_norm"], dtype=float)
    out = {
        "method": "SGHMC", "temperature": temperature, "num_steps": cfg.num_steps, "warmup_extra_per_draw": extra,
        "grads_warmup": grads_w, "grads_sampling": grads_s,
        "divergences_sampling": int(np.asarray(stats["diverging"]).sum()),
        "step_size": [float(c["step_size"]) for c in adapted],
        "ess_theta_sq_norm_stat": float(az.ess(sq_stat)),
        "theta_sq_norm_stat_rel_diff": float(np.max(np.abs(sq_stat - q["sq_norm"]) / np.maximum(q["sq_norm"], 1e-30))),
        "warnings": [str(w.message) for w in caught],
    }
    return out, q


def run_nuts(model, args, num_samples):
    import jax
    from numpyro.infer import MCMC, NUTS

    from ppl_kernels._host import get_draws

    fields = ("num_steps", "diverging")
    mcmc = MCMC(NUTS(model), num_warmup=NUM_WARMUP, num_samples=num_samples, num_chains=NUM_CHAINS,
                chain_method="sequential", progress_bar=False)
    mcmc.warmup(jax.random.PRNGKey(SEED), *args, collect_warmup=True, extra_fields=fields)
    steps_w = np.asarray(mcmc.get_extra_fields(group_by_chain=True)["num_steps"])
    mcmc.run(mcmc.post_warmup_state.rng_key, *args, extra_fields=fields)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    steps_s = np.asarray(extra["num_steps"])
    assert steps_w.shape == (NUM_CHAINS, NUM_WARMUP) and steps_s.shape == (NUM_CHAINS, num_samples)
    out = {"method": "NUTS", "temperature": 1.0, "grads_warmup": int(steps_w.sum()) + NUM_CHAINS,
           "grads_sampling": int(steps_s.sum()), "mean_tree_size_sampling": float(steps_s.mean()),
           "divergences_sampling": int(np.asarray(extra["diverging"]).sum())}
    return out, quality(get_draws(mcmc))


def finish(row, q, unit):
    """Add the quality and the per-cost figures; ``unit`` gradients make one cost unit
    (1000 for full batch: per 1000 gradients; N/B minibatch gradients: per epoch)."""
    cost_w, cost_s = row["grads_warmup"] / unit, row["grads_sampling"] / unit
    row.update({k: v for k, v in q.items() if k != "sq_norm"})
    row.update({"cost_warmup": cost_w, "cost_sampling": cost_s, "warmup_share": cost_w / (cost_w + cost_s),
                "min_ess_per_cost_sampling": q["min_ess"] / cost_s,
                "min_ess_per_cost_total": q["min_ess"] / (cost_w + cost_s),
                "ess_sq_norm_per_cost_total": q["ess_sq_norm"] / (cost_w + cost_s)})
    return row


def full_batch_cases():
    X, y = logistic_data()
    return [("gaussian", gaussian_model(), ()), ("schools", schools_model(), ()),
            ("logistic", logistic_model(), (_f(X), _f(y)))]


def measure() -> dict:
    rows_full, rows_sub = [], []
    for name, model, args in full_batch_cases():
        for method in ("SGHMC", "NUTS"):
            t0 = time.perf_counter()
            row, q = (run_sghmc(model, args, 1000, 1.0, False) if method == "SGHMC" else run_nuts(model, args, 1000))
            row = finish({"model": name, **row}, q, 1000.0)
            row["wall_s"] = time.perf_counter() - t0
            rows_full.append(row)
            print(f"# {name} {method}: min ESS {row['min_ess']:.0f}, {row['wall_s']:.0f} s", file=sys.stderr)
    X, y = regression_data()
    args = (_f(X), _f(y))
    epoch = N // BATCH
    for temperature in (1.0, 0.1, 0.01):
        t0 = time.perf_counter()
        row, q = run_sghmc(regression_model(), args, 2000, temperature, True)
        row = finish({"model": "regression", **row}, q, float(epoch))
        row["wall_s"] = time.perf_counter() - t0
        rows_sub.append(row)
        print(f"# regression SGHMC T={temperature}: min ESS {row['min_ess']:.0f}", file=sys.stderr)
    t0 = time.perf_counter()
    row, q = run_nuts(regression_model(None), args, 2000)
    row = finish({"model": "regression (full data)", **row}, q, 1.0)  # a full gradient = one epoch
    row["wall_s"] = time.perf_counter() - t0
    rows_sub.append(row)
    return {"settings": {"num_warmup": NUM_WARMUP, "num_chains": NUM_CHAINS, "seed": SEED,
                         "full_batch_num_samples": 1000, "subsampled_num_samples": 2000, "N": N, "B": BATCH,
                         "cost_unit_full_batch": "1000 gradients", "cost_unit_subsampled": "epoch"},
            "full_batch": rows_full, "subsampled": rows_sub}


# -- the report -----------------------------------------------------------------------------------
def markdown(res: dict) -> str:
    lines = ["### Full-batch models (1000 draws; cost per 1000 gradients)", "",
             "| model | method | min ESS (coord) | ESS ‖θ‖² | max R̂ | grads warmup | grads sampling "
             "| min ESS / 1k grads (sampling) | min ESS / 1k grads (total) | warmup share |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["full_batch"]:
        lines.append(f"| {r['model']} | {r['method']} | {r['min_ess']:.0f} ({r['worst_coordinate']}) "
                     f"| {r['ess_sq_norm']:.0f} | {r['max_rhat']:.3f} | {r['grads_warmup']:,} | {r['grads_sampling']:,} "
                     f"| {r['min_ess_per_cost_sampling']:.1f} | {r['min_ess_per_cost_total']:.1f} "
                     f"| {100 * r['warmup_share']:.0f} % |")
    lines += ["", f"### Subsampled linear regression (N = {N}, B = {BATCH}, 2000 draws; cost in epochs)", "",
              "| T | method | min ESS (coord) | ESS ‖θ‖² | max R̂ | step size (per chain) | epochs warmup "
              "| epochs sampling | min ESS / epoch (sampling) | min ESS / epoch (total) | warmup share |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in res["subsampled"]:
        step = " / ".join(f"{s:.3g}" for s in r.get("step_size", [])) or "NUTS (full data)"
        lines.append(f"| {r['temperature']:g} | {r['method']} | {r['min_ess']:.0f} ({r['worst_coordinate']}) "
                     f"| {r['ess_sq_norm']:.0f} | {r['max_rhat']:.3f} | {step} | {r['cost_warmup']:.0f} "
                     f"| {r['cost_sampling']:.0f} | {r['min_ess_per_cost_sampling']:.3g} "
                     f"| {r['min_ess_per_cost_total']:.3g} | {100 * r['warmup_share']:.0f} % |")
    notes = [r for r in res["full_batch"] + res["subsampled"] if r.get("warnings") or r["divergences_sampling"]]
    for r in notes:
        lines.append(f"\n{r['model']} {r['method']} T={r['temperature']:g}: {r['divergences_sampling']} divergences; "
                     + "; ".join(r.get("warnings", [])))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="benchmarks/warmup.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="/tmp/warmup_bench", help="folder for warmup.json (default /tmp/warmup_bench)")
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    res = measure()
    res["elapsed_s"] = time.perf_counter() - t0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "warmup.json"
    path.write_text(json.dumps(res, indent=1, default=float))
    print(markdown(res))
    print(f"\nwritten: {path} ({res['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
