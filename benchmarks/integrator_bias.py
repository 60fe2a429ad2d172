"""Integrator bias: how far each ``integrator=`` lands from the exact target, against step size.

Usage: ``python benchmarks/integrator_bias.py [--quick] [--out DIR] [--seed S]``; writes
``DIR/integrator_bias.md`` and ``DIR/integrator_bias.json`` (default
``benchmarks/results/``; ``--quick`` writes ``integrator_bias-quick.*``) and prints the
markdown tables.  NumPyro backend only (the two backends agree to 1e-10 in float64,
``tests/test_exact_cross_backend.py``), CPU, one process; every integrator in
``ppl_kernels.dynamics.INTEGRATORS``.  The full run takes 15-25 minutes on two shared cores,
``--quick`` one to five.

**Conjugate linear regression** (N = 1024 rows, d = 4 standardised features, noise sd 1,
prior N(0, 1) on the weights, the likelihood in a plate subsampled to B = N/4, N/16, N/64, and
B = N: full-data gradients, the discretisation bias alone).
The tempered posterior ``(p(D|w) p(w))^(1/T)`` is Gaussian with the untempered mean and
T times the untempered covariance, computed in closed form.  Each cell runs SGHMC with the
warmup adaptation off (``tests/targets.HAND_TUNED``), ``mass`` the diagonal of the
posterior precision (whitened coordinates, unit frequency) and ``friction = 2 * mass``
(critical damping), so ``step_size = h`` is a whitened step; ``h`` runs over
``geomspace(0.01, 1, 5)``, with ``round(1 / h)`` steps per draw (about one unit of
whitened time) and the same number of minibatch gradients in every cell.  Two chains start
at independent exact draws of the tempered posterior; the first 20 time units are dropped.
Reported: the largest |mean - exact mean| / exact sd over the coordinates and the signed
sd / exact sd - 1 of largest size, each with its Monte Carlo standard error (ArviZ ESS,
``tests/targets.mc_mean`` / ``mc_var``), and the mean kinetic temperature over T next to
its expectation with exact gradients (``dynamics.expected_kinetic``).  A cell the kernel
refuses (``"euler"`` needs step_size * friction / mass < 2, i.e. h < 1 here) is marked.
NUTS (NumPyro, full data, the whole log density scaled by 1/T) is the reference, with as
many sampling-phase gradients as one SGHMC cell; its gradients touch N rows, SGHMC's B.

**Double well** of the SGNHT literature, U(x) = (x+4)(x+1)(x-1)(x-3)/14 + 0.5, with the
N(0, 4) gradient noise of the SGHMC paper's toy (the ``double-well`` model's mechanism in
``ppl_kernels.models``: a subsampled plate of zero-sum linear terms, one point per step),
M = 1, C = 3, T = 1.  For step sizes ``geomspace(1e-3, 0.3, 6)`` and the same number of
integrator steps each (so a small step covers less time), the symmetric KL divergence
between the histogram (0.1-wide bins over [-6, 6], floored at 1e-10) and the exact bin
probabilities (quadrature of exp(-U)), next to the same divergence between the two chains'
histograms (a noise scale: Monte Carlo error alone makes the first about a quarter of it),
and the share of draws left of the barrier with its Monte Carlo error.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from targets import HAND_TUNED, mc_mean, mc_var  # noqa: E402

# -- settings ------------------------------------------------------------------------------------
N, D, NOISE, PRIOR, DATA_SEED = 1024, 4, 1.0, 1.0, 0
BATCHES = (N, N // 4, N // 16, N // 64)  # B = N: the full data, no minibatch noise
TEMPERATURES = (1.0, 0.1)
STEP_GRID = tuple(float(h) for h in np.geomspace(0.01, 1.0, 5))
NUM_CHAINS = 2
BURN_TIME = 20.0  # whitened time units dropped at the start of every chain
NUTS_WARMUP = 500

WELL_STEPS = tuple(float(e) for e in np.geomspace(1e-3, 0.3, 6))
WELL_NOISE_SIGMA = 2.0  # gradient noise sd: N(0, 4), Chen, Fox & Guestrin (2014), Fig. 1
WELL_MASS, WELL_FRICTION, WELL_STEPS_PER_DRAW = 1.0, 3.0, 10
WELL_EDGES = np.linspace(-6.0, 6.0, 121)
KL_FLOOR = 1e-10

FULL = dict(budget=300_000, well_budget=800_000, steps=STEP_GRID, batches=BATCHES, temperatures=TEMPERATURES,
            well_steps=WELL_STEPS)
QUICK = dict(budget=20_000, well_budget=40_000, steps=(STEP_GRID[2], STEP_GRID[4]), batches=(N // 16,),
             temperatures=(0.1,), well_steps=(WELL_STEPS[5],))


def source_version() -> str:
    """The checkout's commit, with ``+dirty`` when ``ppl_kernels/`` has uncommitted changes."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "ppl_kernels"], cwd=ROOT, capture_output=True,
                               text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def _memory_maps() -> int:
    try:
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)
    except OSError:
        return 1 << 30  # unknown: clear every time


def release(res=None, path=None, max_maps=30_000):
    """Save the results so far to ``path`` (a run cut short keeps them), and drop JAX's
    compiled programs once the process holds ``max_maps`` memory mappings: every cell
    compiles its own sampling loop and keeps ~850 mappings, so ~75 cells reach Linux's
    default ``vm.max_map_count`` (65530) and LLVM aborts ("Cannot allocate memory").
    Clearing costs the next cell ~6 s of recompiling, so it is not done every cell."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(res, indent=1, default=float))
    if _memory_maps() > max_maps:
        import gc

        import jax

        jax.clear_caches()
        gc.collect()
        log(f"cleared JAX's caches ({_memory_maps()} memory maps now)")


# -- the regression --------------------------------------------------------------------------------
def regression_data():
    """Standardised features, weights and responses from :data:`DATA_SEED`."""
    rng = np.random.default_rng(DATA_SEED)
    X = rng.standard_normal((N, D))
    X = (X - X.mean(0)) / X.std(0)
    w = rng.standard_normal(D)
    return X, X @ w + NOISE * rng.standard_normal(N)


def regression_truth(X, y):
    """Mean, covariance and precision of the untempered posterior (temper: covariance times T)."""
    precision = X.T @ X / NOISE**2 + np.eye(D) / PRIOR**2
    cov = np.linalg.inv(precision)
    return cov @ (X.T @ y) / NOISE**2, cov, precision


def regression_model(X, y, subsample_size=None):
    """``w ~ N(0, PRIOR² I)``, ``y_i ~ N(x_iᵀw, NOISE²)``; ``subsample_size=None``: full data."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    w = numpyro.sample("w", dist.Normal(jnp.zeros(X.shape[1]), PRIOR).to_event(1))
    with numpyro.plate("data", X.shape[0], subsample_size=subsample_size) as idx:
        numpyro.sample("y", dist.Normal(X[idx] @ w, NOISE), obs=y[idx])


def exact_starts(mean, cov, temperature, seed):
    """One exact draw of the tempered posterior per chain, ``(chain, d)``."""
    rng = np.random.default_rng([seed, int(round(1000 * temperature))])
    return mean + rng.standard_normal((NUM_CHAINS, len(mean))) @ np.linalg.cholesky(temperature * cov).T


def moment_errors(w, mean, sd):
    """Largest |mean error| and signed sd error of largest size, in exact sds, with MC errors."""
    rows = []
    for j in range(w.shape[-1]):
        m, se_m = mc_mean(w[..., j])
        v, se_v = mc_var(w[..., j])
        s = math.sqrt(v)
        rows.append((abs(m - mean[j]) / sd[j], se_m / sd[j], s / sd[j] - 1.0, se_v / (2.0 * s * sd[j])))
    jm = max(range(len(rows)), key=lambda j: rows[j][0])
    js = max(range(len(rows)), key=lambda j: abs(rows[j][2]))
    return {"mean_bias": rows[jm][0], "mean_bias_se": rows[jm][1], "mean_bias_coord": jm,
            "sd_bias": rows[js][2], "sd_bias_se": rows[js][3], "sd_bias_coord": js}


def min_ess(w):
    import arviz as az

    return float(min(az.ess(np.asarray(w[..., j], dtype=float), method="mean") for j in range(w.shape[-1])))


def regression_cell(integrator, h, batch, temperature, budget, data, truth, seed):
    """One SGHMC run; the row of the table (``status`` "refused" with the kernel's message)."""
    import jax.numpy as jnp

    from ppl_kernels import dynamics, runner
    from ppl_kernels._host import get_draws, get_stats

    X, y = data
    mean, cov, precision = truth
    sd = np.sqrt(temperature * np.diag(cov))
    mass = np.diag(precision)
    k = max(1, int(round(1.0 / h)))
    draws = budget // (NUM_CHAINS * k)
    burn = min(int(math.ceil(BURN_TIME / (k * h))), draws // 4)
    row = {"integrator": integrator, "h": h, "num_steps": k, "B": batch, "T": temperature, "draws_per_chain": draws,
           "burn_in_draws": burn, "gradients": NUM_CHAINS * draws * k, "rows_touched": NUM_CHAINS * draws * k * batch,
           "whitened_time_per_chain": draws * k * h}
    kwargs = dict(HAND_TUNED, step_size=h, num_steps=k, temperature=temperature, integrator=integrator,
                  mass={"w": mass}, friction={"w": 2.0 * mass})
    init = {"w": jnp.asarray(exact_starts(mean, cov, temperature, seed), dtype=jnp.result_type(float))}
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the kernels' kinetic warning: minibatch noise heats these chains
            mcmc = runner.sample("numpyro", model=regression_model,
                                 model_args=(jnp.asarray(X, dtype=jnp.result_type(float)),
                                             jnp.asarray(y, dtype=jnp.result_type(float)), batch),
                                 init_params=init, kernel_kwargs=kwargs, num_samples=draws, num_chains=NUM_CHAINS,
                                 seed=seed, warn=False)
    except ValueError as err:
        row.update(status="refused", message=str(err), gradients=0, rows_touched=0)
        return row
    w = np.asarray(get_draws(mcmc)["w"], dtype=float)[:, burn:]
    stats = get_stats(mcmc)
    expected = float(dynamics.expected_kinetic(temperature, h, 1.0 / mass, 2.0 * mass, np.zeros(D), integrator))
    row.update(status="ok", seconds=time.perf_counter() - t0, **moment_errors(w, mean, sd), min_ess=min_ess(w),
               kinetic_ratio=float(stats["kinetic_temperature"][:, burn:].mean()) / temperature,
               kinetic_ratio_exact_gradients=expected / temperature,
               divergences=int(stats["diverging"].sum()))
    if "thermostat" in stats:  # the thermostat's friction rate ξ, mean over coordinates
        row["thermostat_mean"] = float(stats["thermostat"][:, burn:].mean())
    return row


def nuts_row(temperature, budget, data, truth, seed):
    """NUTS on the full data at T, with about ``budget`` sampling-phase gradients."""
    import jax
    import jax.numpy as jnp
    from numpyro.handlers import scale
    from numpyro.infer import MCMC, NUTS

    X, y = data
    mean, cov, _ = truth
    sd = np.sqrt(temperature * np.diag(cov))
    args = (jnp.asarray(X, dtype=jnp.result_type(float)), jnp.asarray(y, dtype=jnp.result_type(float)))
    model = scale(regression_model, scale=1.0 / temperature)  # the whole log density over T
    init = {"w": jnp.asarray(exact_starts(mean, cov, temperature, seed), dtype=jnp.result_type(float))}
    t0 = time.perf_counter()
    kernel = NUTS(model)
    fields = ("num_steps", "diverging")
    warm = MCMC(kernel, num_warmup=NUTS_WARMUP, num_samples=1, num_chains=NUM_CHAINS, chain_method="sequential",
                progress_bar=False)
    warm.warmup(jax.random.PRNGKey(seed), *args, init_params=init, collect_warmup=True, extra_fields=fields)
    steps_w = np.asarray(warm.get_extra_fields(group_by_chain=True)["num_steps"])
    per_draw = float(steps_w[:, NUTS_WARMUP // 2:].mean())
    draws = max(10, int(round(budget / (NUM_CHAINS * per_draw))))
    mcmc = MCMC(kernel, num_warmup=NUTS_WARMUP, num_samples=draws, num_chains=NUM_CHAINS, chain_method="sequential",
                progress_bar=False)
    mcmc.post_warmup_state = warm.post_warmup_state
    mcmc.run(warm.post_warmup_state.rng_key, *args, extra_fields=fields)
    extra = mcmc.get_extra_fields(group_by_chain=True)
    w = np.asarray(mcmc.get_samples(group_by_chain=True)["w"], dtype=float)
    grads = int(np.asarray(extra["num_steps"]).sum())
    return {"integrator": "NUTS (full data)", "T": temperature, "B": N, "status": "ok", "draws_per_chain": draws,
            "gradients": grads, "rows_touched": grads * N, "warmup_gradients": int(steps_w.sum()),
            "mean_steps_per_draw": float(np.asarray(extra["num_steps"]).mean()),
            "divergences": int(np.asarray(extra["diverging"]).sum()), "seconds": time.perf_counter() - t0,
            **moment_errors(w, mean, sd), "min_ess": min_ess(w)}


# -- the double well -------------------------------------------------------------------------------
def well_potential(x, xp=np):
    """U(x) = (x+4)(x+1)(x-1)(x-3)/14 + 0.5; ``xp`` the array namespace (unused: polynomial)."""
    return (x + 4.0) * (x + 1.0) * (x - 1.0) * (x - 3.0) / 14.0 + 0.5


def well_model(coef, subsample_size=1):
    """x ∈ R¹ with potential :func:`well_potential` and the zero-sum noise plate of
    ``ppl_kernels.models`` (its double-well model's construction, another potential)."""
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from ppl_kernels import models

    models._potential_model(numpyro, dist, jnp, well_potential, coef, subsample_size)


def well_exact(fine=200):
    """Exact bin probabilities of exp(-U) on :data:`WELL_EDGES` (midpoint rule), the grid's
    points and their CDF (for exact draws), and the barrier's position."""
    x = np.linspace(WELL_EDGES[0], WELL_EDGES[-1], (len(WELL_EDGES) - 1) * fine + 1)
    mid = 0.5 * (x[1:] + x[:-1])
    u = well_potential(mid)
    w = np.exp(-(u - u.min()))
    q = w.reshape(len(WELL_EDGES) - 1, fine).sum(1)
    inner = (mid > -2.5) & (mid < 2.0)
    barrier = float(mid[inner][np.argmax(u[inner])])
    return q / q.sum(), mid, np.cumsum(w) / w.sum(), barrier


def symmetric_kl(counts, q):
    """KL(p‖q) + KL(q‖p) of the histogram ``counts`` and bin probabilities ``q``, both
    floored at :data:`KL_FLOOR` and renormalised."""
    p = counts / counts.sum()
    p = (p + KL_FLOOR) / (1.0 + KL_FLOOR * p.size)
    qq = (q + KL_FLOOR) / (1.0 + KL_FLOOR * q.size)
    return float(np.sum((p - qq) * np.log(p / qq)))


def well_cell(integrator, eps, budget, coef, exact, seed):
    import arviz as az
    import jax.numpy as jnp

    from ppl_kernels import runner
    from ppl_kernels._host import get_draws, get_stats

    q, grid, cdf, barrier = exact
    rng = np.random.default_rng(seed)
    starts = np.interp(rng.uniform(size=NUM_CHAINS), cdf, grid)
    draws = budget // (NUM_CHAINS * WELL_STEPS_PER_DRAW)
    burn = draws // 100
    kwargs = dict(HAND_TUNED, step_size=eps, num_steps=WELL_STEPS_PER_DRAW, friction=WELL_FRICTION, mass=WELL_MASS,
                  integrator=integrator)
    row = {"integrator": integrator, "eps": eps, "num_steps": WELL_STEPS_PER_DRAW, "draws_per_chain": draws,
           "burn_in_draws": burn, "steps": NUM_CHAINS * draws * WELL_STEPS_PER_DRAW,
           "time_per_chain": draws * WELL_STEPS_PER_DRAW * eps}
    t0 = time.perf_counter()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mcmc = runner.sample("numpyro", model=well_model, model_args=(jnp.asarray(coef), 1),
                                 init_params={"theta": jnp.asarray(starts[:, None], dtype=jnp.result_type(float))},
                                 kernel_kwargs=kwargs, num_samples=draws, num_chains=NUM_CHAINS, seed=seed, warn=False)
    except ValueError as err:
        row.update(status="refused", message=str(err))
        return row
    x = np.asarray(get_draws(mcmc)["theta"], dtype=float)[:, burn:, 0]
    stats = get_stats(mcmc)
    counts, _ = np.histogram(x, bins=WELL_EDGES)
    per_chain = [np.histogram(c, bins=WELL_EDGES)[0].astype(float) for c in x]
    left, left_se = mc_mean((x < barrier).astype(float))
    left_q = float(q[0.5 * (WELL_EDGES[1:] + WELL_EDGES[:-1]) < barrier].sum())
    row.update(status="ok", seconds=time.perf_counter() - t0, sym_kl=symmetric_kl(counts.astype(float), q),
               chain_kl=symmetric_kl(per_chain[0], per_chain[1] / per_chain[1].sum()),
               ess=float(az.ess(x, method="mean")), outside_bins=int(x.size - counts.sum()),
               left_share=left, left_share_se=left_se, left_share_exact=left_q,
               kinetic_temperature=float(stats["kinetic_temperature"][:, burn:].mean()),
               divergences=int(stats["diverging"].sum()))
    return row


# -- the report --------------------------------------------------------------------------------------
def _pm(v, se, signed=False):
    return f"{v:+.3f} ± {se:.3f}" if signed else f"{v:.3f} ± {se:.3f}"


def _bname(b):
    return "B = N" if b == N else f"B = N/{N // b}"


def tables(res) -> str:
    s = res["settings"]
    out = [f"# Integrator bias ({'quick' if s['quick'] else 'full'} run)", "",
           f"ppl_kernels {s.get('source', 'unknown')}, NumPyro {s['numpyro']}, JAX {s['jax']}, float32, CPU; "
           f"seed {s['seed']}; integrators "
           f"{', '.join(s['integrators'])}; wall time {res['wall_seconds']:.0f} s.", "",
           "## Conjugate linear regression", "",
           f"N = {N}, d = {D} standardised features (data seed {DATA_SEED}), noise sd {NOISE}, prior N(0, {PRIOR}²); "
           f"mass = diag of the posterior precision, friction = 2·mass, step_size = h (whitened), round(1/h) steps "
           f"per draw; {s['budget']:,} minibatch gradients per cell ({NUM_CHAINS} chains from exact draws, the "
           f"first {BURN_TIME:g} time units dropped). Mean: max over coordinates of |mean − exact| / exact sd. "
           f"SD: the signed sd / exact sd − 1 of largest size. ± one Monte Carlo standard error (ESS).", ""]
    cells = [r for r in res["regression"]]
    for T in s["temperatures"]:
        out += [f"### T = {T:g}", "",
                "| integrator | h | " + " | ".join(f"{_bname(b)}: mean | SD" for b in s["batches"]) + " |",
                "|---|---|" + "---|---|" * len(s["batches"])]
        for integ in s["integrators"]:
            for h in s["steps"]:
                line = [integ, f"{h:.3g}"]
                for b in s["batches"]:
                    r = next(c for c in cells if c["integrator"] == integ and c["h"] == h and c["B"] == b and c["T"] == T)
                    if r["status"] != "ok":
                        line += ["refused", "refused"]
                    else:
                        line += [_pm(r["mean_bias"], r["mean_bias_se"]), _pm(r["sd_bias"], r["sd_bias_se"], True)]
                out.append("| " + " | ".join(line) + " |")
        out.append("")
    out += ["### NUTS reference (full data, the same number of gradients as one SGHMC cell)", "",
            "| T | mean | SD | gradient evaluations | data rows touched | draws per chain | gradients per draw | "
            "warmup gradients | min ESS |", "|---|---|---|---|---|---|---|---|---|"]
    for r in res["nuts"]:
        out.append(f"| {r['T']:g} | {_pm(r['mean_bias'], r['mean_bias_se'])} | "
                   f"{_pm(r['sd_bias'], r['sd_bias_se'], True)} | {r['gradients']:,} | {r['rows_touched']:,} | "
                   f"{r['draws_per_chain']:,} | {r['mean_steps_per_draw']:.2f} | {r['warmup_gradients']:,} | "
                   f"{r['min_ess']:.0f} |")
    out.append("")
    out += ["### Kinetic temperature / T (measured; in brackets the kernels' expected value for exact gradients, "
            "``dynamics.expected_kinetic``, the free-particle formula)", "",
            "| T | integrator | h | " + " | ".join(_bname(b) for b in s["batches"]) + " |",
            "|---|---|---|" + "---|" * len(s["batches"])]
    for T in s["temperatures"]:
        for integ in s["integrators"]:
            for h in s["steps"]:
                line = [f"{T:g}", integ, f"{h:.3g}"]
                for b in s["batches"]:
                    r = next(c for c in cells if c["integrator"] == integ and c["h"] == h and c["B"] == b and c["T"] == T)
                    line.append("refused" if r["status"] != "ok" else
                                f"{r['kinetic_ratio']:.3g} ({r['kinetic_ratio_exact_gradients']:.3g})")
                out.append("| " + " | ".join(line) + " |")
    ok = [c for c in cells if c["status"] == "ok"]
    out += ["", "### Cost of one SGHMC cell", "",
            f"Every cell: {s['budget']:,} minibatch gradients, {s['budget'] // NUM_CHAINS:,}·h units of whitened "
            f"time per chain.", "",
            "| B | gradient evaluations | data rows touched | min ESS (mean) over the cells |", "|---|---|---|---|"]
    for b in s["batches"]:
        ess = [c["min_ess"] for c in ok if c["B"] == b]
        out.append(f"| {_bname(b)} = {b} | {s['budget']:,} | {s['budget'] * b:,} | {min(ess):.0f} – {max(ess):.0f} |")
    refused = [c for c in cells if c["status"] != "ok"]
    if refused:
        out += ["", f"Refused cells: {', '.join(sorted({c['integrator'] + ' h=' + format(c['h'], '.3g') for c in refused}))}"
                f" — {refused[0]['message']}"]
    out += ["", "## Double well", "",
            f"U(x) = (x+4)(x+1)(x−1)(x−3)/14 + 0.5, T = 1, gradient noise N(0, {WELL_NOISE_SIGMA ** 2:g}), M = "
            f"{WELL_MASS:g}, C = {WELL_FRICTION:g}, {WELL_STEPS_PER_DRAW} steps per draw, {s['well_budget']:,} "
            f"integrator steps per run ({NUM_CHAINS} chains from exact draws, 1% burn-in): a small step covers less "
            f"time. KL: symmetric KL of the pooled histogram (0.1 bins on [−6, 6]) against the exact bin probabilities; "
            f"chain to chain: the same between the two chains' histograms (Monte Carlo noise alone makes the first "
            f"about a quarter of this); ESS of the mean of x; left share: the fraction left of the barrier ± its "
            f"Monte Carlo error (exact {res['double_well'][0].get('left_share_exact', float('nan')):.3f}).", "",
            "| integrator | ε | time per chain | sym. KL | chain to chain | ESS | left share | T_kin |",
            "|---|---|---|---|---|---|---|---|"]
    for r in res["double_well"]:
        if r["status"] != "ok":
            out.append(f"| {r['integrator']} | {r['eps']:.3g} | {r['time_per_chain']:.3g} | refused | | | | |")
            continue
        out.append(f"| {r['integrator']} | {r['eps']:.3g} | {r['time_per_chain']:,.0f} | {r['sym_kl']:.4f} | "
                   f"{r['chain_kl']:.4f} | {r['ess']:.0f} | {_pm(r['left_share'], r['left_share_se'])} | "
                   f"{r['kinetic_temperature']:.3f} |")
    return "\n".join(out) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a few cells with small budgets (under two minutes)")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results",
                   help="folder for integrator_bias.md and .json (default benchmarks/results)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--integrators", nargs="+", metavar="NAME", default=None,
                   help="a subset of ppl_kernels.dynamics.INTEGRATORS (default: all of them)")
    args = p.parse_args(argv)

    import jax
    import numpyro

    from ppl_kernels import dynamics, models

    plan = QUICK if args.quick else FULL
    stem = "integrator_bias-quick" if args.quick else "integrator_bias"
    partial = args.out / f"{stem}.partial.json"
    integrators = tuple(dynamics.INTEGRATORS)
    if args.integrators:
        unknown = sorted(set(args.integrators) - set(integrators))
        if unknown:
            p.error(f"--integrators: {unknown} not in ppl_kernels.dynamics.INTEGRATORS = {integrators}")
        integrators = tuple(i for i in integrators if i in args.integrators)
    t_start = time.perf_counter()
    data = regression_data()
    truth = regression_truth(*data)
    res = {"settings": {"quick": args.quick, "seed": args.seed, "integrators": integrators, "N": N, "d": D,
                        "noise_sd": NOISE, "prior_sd": PRIOR, "data_seed": DATA_SEED, "chains": NUM_CHAINS,
                        "budget": plan["budget"], "well_budget": plan["well_budget"], "steps": list(plan["steps"]),
                        "batches": list(plan["batches"]), "temperatures": list(plan["temperatures"]),
                        "well_steps": list(plan["well_steps"]), "burn_time": BURN_TIME, "nuts_warmup": NUTS_WARMUP,
                        "well": {"noise_sd": WELL_NOISE_SIGMA, "mass": WELL_MASS, "friction": WELL_FRICTION,
                                 "steps_per_draw": WELL_STEPS_PER_DRAW, "kl_floor_eps": KL_FLOOR},
                        "numpyro": numpyro.__version__, "jax": jax.__version__, "source": source_version(),
                        "python": platform.python_version()},
           "regression": [], "nuts": [], "double_well": []}
    for T in plan["temperatures"]:
        for integ in integrators:
            for h in plan["steps"]:
                for b in plan["batches"]:
                    r = regression_cell(integ, h, b, T, plan["budget"], data, truth, args.seed)
                    res["regression"].append(r)
                    release(res, partial)
                    log(f"regression T={T:g} {integ} h={h:.3g} B={b}: " + (
                        f"mean {r['mean_bias']:.3f}±{r['mean_bias_se']:.3f} sd {r['sd_bias']:+.3f}±{r['sd_bias_se']:.3f}"
                        f" Tkin/T {r['kinetic_ratio']:.3f} ({r['seconds']:.1f} s)" if r["status"] == "ok" else "refused"))
        r = nuts_row(T, plan["budget"], data, truth, args.seed)
        res["nuts"].append(r)
        release(res, partial)
        log(f"NUTS T={T:g}: mean {r['mean_bias']:.3f}±{r['mean_bias_se']:.3f} sd {r['sd_bias']:+.3f}±"
            f"{r['sd_bias_se']:.3f} grads {r['gradients']} ({r['seconds']:.1f} s)")
    coef = models.gradient_noise_coefficients(WELL_NOISE_SIGMA, 1)
    exact = well_exact()
    for integ in integrators:
        for eps in plan["well_steps"]:
            r = well_cell(integ, eps, plan["well_budget"], coef, exact, args.seed)
            res["double_well"].append(r)
            release(res, partial)
            log(f"double well {integ} eps={eps:.3g}: " + (
                f"KL {r['sym_kl']:.4f} chains {r['chain_kl']:.4f} left {r['left_share']:.3f}±{r['left_share_se']:.3f} "
                f"({r['seconds']:.1f} s)"
                if r["status"] == "ok" else "refused"))
    res["wall_seconds"] = time.perf_counter() - t_start
    text = tables(res)
    print(text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{stem}.md").write_text(text)
    (args.out / f"{stem}.json").write_text(json.dumps(res, indent=1, default=float))
    partial.unlink(missing_ok=True)
    log(f"wrote {args.out / stem}.md and .json")
    return res


if __name__ == "__main__":
    main()
