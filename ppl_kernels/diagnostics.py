"""Thermodynamic diagnostics of SGHMC runs: temperatures and moment relations.

Two sources of data:

- an :class:`arviz.InferenceData` from :func:`ppl_kernels.to_inference_data`,
  whose ``sample_stats`` hold the per-draw statistics (overall values only);
- a per-step record from :func:`record_steps`, which drives the kernels' pure
  draw functions one integrator step at a time and keeps, per latent site,
  the scalars the temperature estimators and the moment relations need.

Kinetic temperature (theory notes §3.3, §7): ``T_K = rᵀM'⁻¹r / d``.  At the
stationary law ``d T_K / T ~ χ²_d``, so the equal-tailed ``(1 - a)`` band is
``[T χ²_{d,a/2} / d, T χ²_{d,1-a/2} / d]``.  The default integrator's finite
step biases the mean to ``T / (1 - a/2)`` with ``a = ε C' / M'`` (free
particle; ``docs/theory.rst``), so the band is centred on that value.  The band
describes the dynamics' own stationary law: it holds without momentum
resampling or with ``resample_scale = boost · T``.

Configurational temperature: ``T_C = θᵀ∇Ũ(θ) / d``, whose mean is ``T`` for a
confining potential (unbiased under minibatch noise).

Moment relations (research notes; theory notes §8c, §10): per integrator step
the measured changes of ‖θ‖², θᵀr and ‖r‖² per unit time are compared with
the continuous right-hand sides and with the exact discrete ones:

.. code-block:: none

    Δ‖θ‖²/ε  = 2 θᵀM'⁻¹r + ε ‖M'⁻¹r‖²                      (exact)
    E Δ(θᵀr)/ε = rᵀM'⁻¹r − θ'ᵀh                            h = ∇Ũ(θ') + C'M'⁻¹r
    E Δ‖r‖²/ε = −2 rᵀh + ε ‖h‖² + 2 T tr C'

with θ' the position after the drift.  Steps that begin with a momentum
resampling are left out.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import _host
from .config import SGHMCConfig, positive_int

__all__ = [
    "kinetic_temperature_band",
    "expected_kinetic_temperature",
    "kinetic_temperature_series",
    "kinetic_temperature_check",
    "configurational_temperature_check",
    "record_steps",
    "moment_check",
    "RELATIONS",
]

#: The three moment relations, by the name of the measured quantity.
RELATIONS = ("theta_sq", "theta_dot_r", "r_sq")


# -- kinetic temperature: expectation and band ----------------------------------------------------------
def kinetic_temperature_band(temperature, dim, *, level: float = 0.99):
    """Equal-tailed band of ``T_K = rᵀM'⁻¹r / d`` when ``d T_K / T ~ χ²_d``.

    Parameters
    ----------
    temperature : float or array
        The band's centre (use :func:`expected_kinetic_temperature` for the
        discretisation-corrected value).
    dim : int or array
        Degrees of freedom ``d``.
    level : float
        Coverage, in (0, 1).

    Returns
    -------
    (lower, upper) : tuple of arrays
    """
    from scipy.stats import chi2

    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie in (0, 1), got {level!r}")
    dim = np.asarray(dim, dtype=float)
    if np.any(dim < 1):
        raise ValueError(f"dim must be >= 1, got {dim!r}")
    t = np.asarray(temperature, dtype=float)
    a = 1.0 - level
    return t * chi2.ppf(a / 2, dim) / dim, t * chi2.ppf(1 - a / 2, dim) / dim


def expected_kinetic_temperature(temperature, step_size, *, mass=1.0, friction=1.0, boost=1.0, friction_scale=1.0,
                                 integrator="euler"):
    """Mean kinetic temperature of the default integrator: ``T / (1 - a/2)``, ``a = ε γC / (αM)``;
    of ``integrator="baoab"`` and ``"sgnht"`` (whose statistic is that of the half-step
    momentum): ``T``.

    The free-particle value (``docs/theory.rst``); on a Gaussian of variance ``s²``
    the exact value has a further ``- ε²/(4 M s²)`` in the denominator.

    Parameters
    ----------
    temperature : float
        The noise temperature (1 with likelihood tempering).
    step_size : float or array
        ε; an array gives one value per entry (e.g. per draw of a schedule).
    mass, friction : float or array
        Base mass M and friction C, arrays with one entry per coordinate.
    boost, friction_scale : float
        α and γ.
    integrator : {"euler", "baoab", "sgnht"}
        The kernel's ``integrator``.

    Returns
    -------
    float or array
        The mean over coordinates, one value per ``step_size`` entry.
    """
    a = np.asarray(step_size, dtype=float)[..., None] * friction_scale * np.ravel(friction) / (boost * np.ravel(mass))
    if integrator != "euler":
        return np.asarray(temperature, dtype=float) + 0.0 * a.mean(axis=-1)
    if np.any(a >= 2):
        raise ValueError(f"step_size * friction' / mass' must be < 2 for a stable integrator, got up to {a.max()!r}")
    return np.asarray(temperature, dtype=float) * np.mean(1.0 / (1.0 - a / 2), axis=-1)


def _per_coordinate(spec, shapes: dict) -> np.ndarray:
    """A scalar or per-site mass / friction as one value per unconstrained coordinate."""
    parts = []
    for site, shape in shapes.items():
        v = spec.get(site, 1.0) if isinstance(spec, dict) else spec
        parts.append(np.broadcast_to(np.asarray(v, dtype=float), shape).ravel())
    return np.concatenate(parts) if parts else np.ones(1)


def _flat(per_site: dict, shapes: dict) -> np.ndarray:
    """Per-site lists (``adapted_json``) as one flat vector in ``shapes``' order."""
    parts = [np.asarray(per_site[site], dtype=float).ravel() for site in shapes]
    return np.concatenate(parts) if parts else np.ones(1)


def _mcse(x: np.ndarray) -> float:
    """Monte Carlo standard error of the mean of ``x`` (chain, draw), from ArviZ's ESS."""
    import arviz as az

    x = np.atleast_2d(np.asarray(x, dtype=float))  # a single series is one chain
    ess = float(az.ess(x, method="mean")) if x.shape[-1] >= 4 else np.nan
    return float(np.std(x) / np.sqrt(ess)) if np.isfinite(ess) and ess > 0 else np.nan


def _is_steps(data) -> bool:
    return hasattr(data, "dims") and "step" in data.dims


def _check_row(name, values, expected, dim, temperature, level):
    """One row of a temperature check: observed mean and MC error against expectation and band."""
    lo, hi = kinetic_temperature_band(expected, dim, level=level)
    mean, se = float(np.mean(values)), _mcse(values)
    return {
        "site": name, "dim": int(dim), "temperature": temperature, "expected": float(np.mean(expected)),
        "lower": float(np.mean(lo)), "upper": float(np.mean(hi)), "mean": mean, "mcse": se,
        "z": (mean - float(np.mean(expected))) / se if se and np.isfinite(se) else np.nan,
        "fraction_inside": float(np.mean((values >= lo) & (values <= hi))), "level": level,
    }


def _usable_steps(steps, burn_in):
    steps = steps.isel(step=slice(burn_in, None))
    return steps.isel(step=np.flatnonzero(~steps["diverging"].values))


def kinetic_temperature_series(data, *, site: str | None = None, burn_in: int = 0):
    """Kinetic temperature per draw (or step) with its expected value.

    Parameters
    ----------
    data : arviz.InferenceData or xarray.Dataset
        A run (per draw, the whole state) or a :func:`record_steps` record
        (per step; one ``site`` or the whole state).
    site : str, optional
        Only with a step record.
    burn_in : int
        Leading draws (or steps) to leave out.

    Returns
    -------
    values, expected : arrays
        ``(chain, draw)`` for a run, ``(step,)`` for a record.
    dim : int
        Degrees of freedom.
    temperature : float
        The noise temperature.
    """
    if _is_steps(data):
        steps = _usable_steps(data, burn_in)
        if site is not None:
            if site not in steps.site.values:
                raise ValueError(f"site must be one of {list(steps.site.values)}, got {site!r}")
            steps = steps.sel(site=[site])
        dim = int(steps["size"].values.sum())
        values = steps["kinetic"].values.sum(-1) / dim
        expected = steps["kinetic_expected"].values.sum(-1) / dim
        return values, expected, dim, float(steps.attrs["noise_temperature"])
    if site is not None:
        raise ValueError("site needs a per-step record from record_steps (a run keeps the whole state only)")
    attrs = data.posterior.attrs
    stats = data.sample_stats.isel(draw=slice(burn_in, None))
    shapes = json.loads(attrs["unconstrained_shapes"])
    cfg = SGHMCConfig.from_json(attrs["kernel_json"])
    dim = sum(int(np.prod(s)) for s in shapes.values())
    t = cfg.noise_temperature
    eps = stats["step_size"].values
    if "adapted_json" in attrs:  # the values each chain sampled with (adapted during warmup)
        chains = json.loads(attrs["adapted_json"])
        expected = np.stack([expected_kinetic_temperature(
            t, eps[c], mass=_flat(chains[c]["mass"], shapes), friction=_flat(chains[c]["friction"], shapes),
            boost=cfg.boost, friction_scale=cfg.friction_scale, integrator=cfg.integrator) for c in range(eps.shape[0])])
    else:
        expected = expected_kinetic_temperature(
            t, eps, mass=_per_coordinate(cfg.mass, shapes),
            friction=_per_coordinate(cfg.friction, shapes), boost=cfg.boost, friction_scale=cfg.friction_scale,
            integrator=cfg.integrator,
        )
    return stats["kinetic_temperature"].values, expected, dim, t


def kinetic_temperature_check(data, *, level: float = 0.99, burn_in: int = 0):
    """Kinetic temperature against its discretisation-corrected mean and χ² band.

    Parameters
    ----------
    data : arviz.InferenceData or xarray.Dataset
        A run from :func:`ppl_kernels.to_inference_data` (one ``overall`` row,
        per draw) or a record from :func:`record_steps` (one row per site and
        ``overall``, per integrator step).
    level : float
        Coverage of the band.
    burn_in : int
        Leading draws (or steps) to leave out.

    Returns
    -------
    pandas.DataFrame
        Per row: ``dim``, noise ``temperature``, ``expected`` mean
        ``T/(1 - a/2)``, the band's ``lower`` / ``upper`` limits, the observed
        ``mean`` with its Monte Carlo standard error ``mcse`` (ESS-based), the
        standardised difference ``z``, and the ``fraction_inside`` the band
        (expect about ``level`` when the draws are stationary).
    """
    import pandas as pd

    names = [*(str(s) for s in data.site.values), None] if _is_steps(data) else [None]
    rows = []
    for name in names:
        values, expected, dim, t = kinetic_temperature_series(data, site=name, burn_in=burn_in)
        rows.append(_check_row(name or "overall", values, expected, dim, t, level))
    return pd.DataFrame(rows).set_index("site")


def configurational_temperature_check(data, *, burn_in: int = 0):
    """Configurational temperature ``θᵀ∇Ũ(θ)/d`` against the noise temperature.

    Same inputs as :func:`kinetic_temperature_check`; returns per row ``dim``,
    ``temperature``, observed ``mean``, ``mcse`` and ``z``.
    """
    import pandas as pd

    if _is_steps(data):
        steps = _usable_steps(data, burn_in)
        t = float(steps.attrs["noise_temperature"])
        pairs = [(str(s), steps["virial"].sel(site=s).values / int(steps["size"].sel(site=s)))
                 for s in steps.site.values]
        pairs.append(("overall", steps["virial"].values.sum(-1) / int(steps["size"].values.sum())))
        dims = [*(int(n) for n in steps["size"].values), int(steps["size"].values.sum())]
    else:
        attrs = data.posterior.attrs
        t = SGHMCConfig.from_json(attrs["kernel_json"]).noise_temperature
        values = data.sample_stats["configurational_temperature"].isel(draw=slice(burn_in, None)).values
        pairs = [("overall", values)]
        dims = [sum(int(np.prod(s)) for s in json.loads(attrs["unconstrained_shapes"]).values())]
    rows = []
    for (name, v), d in zip(pairs, dims):
        mean, se = float(np.mean(v)), _mcse(v)
        z = (mean - t) / se if se else np.nan
        rows.append({"site": name, "dim": d, "temperature": t, "mean": mean, "mcse": se, "z": z})
    return pd.DataFrame(rows).set_index("site")


# -- the per-step record ----------------------------------------------------------------------------------
#: Per-site scalars recorded at every integrator step (see :func:`record_steps`).
STEP_TERMS = (
    "theta_sq", "theta_dot_r", "r_sq", "kinetic", "kinetic_expected", "virial", "grad_sq",
    "measured_theta_sq", "measured_theta_dot_r", "measured_r_sq",
    "continuous_theta_sq", "continuous_theta_dot_r", "continuous_r_sq",
    "discrete_theta_sq", "discrete_theta_dot_r", "discrete_r_sq",
    "variance_theta_dot_r", "variance_r_sq",
)


def _step_terms(before, after, inv_mass, friction, eps, noise_t) -> dict:
    """Per-site scalars of one integrator step from ``before = (θ, r, ∇Ũ)`` to ``after``.

    Operators and ``.sum()`` only, so it runs on torch tensors and inside
    ``jax.jit`` alike.  Differences are formed before the products (e.g.
    ``Δ‖θ‖² = Δθ·(θ' + θ)``) to avoid cancellation in single precision.
    """
    th0, r0, g0 = before
    th1, r1, g1 = after
    out = {name: {} for name in STEP_TERMS}
    for k in th0:
        ones = 1.0 + 0.0 * th0[k]
        im, c = inv_mass[k] * ones, friction[k] * ones
        v0 = im * r0[k]  # M'⁻¹ r
        cv0 = c * v0  # C'M'⁻¹ r
        h = g1[k] + cv0
        sig2 = 2.0 * eps * c * noise_t  # injected noise variance per coordinate
        dth, dr = th1[k] - th0[k], r1[k] - r0[k]
        two_t_trc = 2.0 * noise_t * c.sum()
        terms = {
            "theta_sq": (th1[k] * th1[k]).sum(),
            "theta_dot_r": (th1[k] * r1[k]).sum(),
            "r_sq": (r1[k] * r1[k]).sum(),
            "kinetic": (im * r1[k] * r1[k]).sum(),
            "kinetic_expected": (noise_t / (1.0 - 0.5 * eps * c * im)).sum(),
            "virial": (th1[k] * g1[k]).sum(),
            "grad_sq": (g1[k] * g1[k]).sum(),
            "measured_theta_sq": (dth * (th1[k] + th0[k])).sum() / eps,
            "measured_theta_dot_r": ((dth * r1[k]).sum() + (th0[k] * dr).sum()) / eps,
            "measured_r_sq": (dr * (r1[k] + r0[k])).sum() / eps,
            "continuous_theta_sq": 2.0 * (th0[k] * v0).sum(),
            "continuous_theta_dot_r": (r0[k] * v0).sum() - (th0[k] * g0[k]).sum() - (th0[k] * cv0).sum(),
            "continuous_r_sq": -2.0 * (r0[k] * (g0[k] + cv0)).sum() + two_t_trc,
            "discrete_theta_sq": 2.0 * (th0[k] * v0).sum() + eps * (v0 * v0).sum(),
            "discrete_theta_dot_r": (r0[k] * v0).sum() - (th1[k] * h).sum(),
            "discrete_r_sq": -2.0 * (r0[k] * h).sum() + eps * (h * h).sum() + two_t_trc,
            "variance_theta_dot_r": (th1[k] * th1[k] * sig2).sum() / (eps * eps),
            "variance_r_sq": (4.0 * ((r0[k] - eps * h) ** 2 * sig2).sum() + 2.0 * (sig2 * sig2).sum()) / (eps * eps),
        }
        for name, v in terms.items():
            out[name][k] = v
    return out


def _on_step(before, after, coefficients, eps, noise_t) -> dict:
    """:func:`_step_terms` in the form the backends' ``host.record_steps`` calls."""
    inv_mass, friction = coefficients
    return _step_terms(before, after, inv_mass, friction, eps, noise_t)


def record_steps(
    backend: str,
    model=None,
    *,
    potential_fn=None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
    init_params: dict | None = None,
    kernel_kwargs: dict[str, Any] | None = None,
    num_draws: int = 100,
    seed: int = 0,
    keep_state: bool = False,
):
    """Run SGHMC one integrator step at a time and record per-step, per-site scalars.

    ``MCMC`` keeps one state per draw; the temperature per site and the moment
    relations need every step.  This drives the kernel's pure draw function
    with one integrator step per call (``num_draws * num_steps`` calls; the
    momentum resampling, when configured, happens at the first step of every
    draw exactly as in a run), so the dynamics are those of
    ``MCMC(SGHMC(**kernel_kwargs))``.

    Parameters
    ----------
    backend : {"pyro", "numpyro"}
    model, potential_fn : callable
        Exactly one, as for the kernel.
    model_args, model_kwargs, init_params
        As for :func:`ppl_kernels.runner.sample` (``init_params`` without a
        chain dimension).
    kernel_kwargs : dict
        Keyword arguments of ``SGHMC``.
    num_draws : int
        Draws to run (each ``num_steps`` integrator steps).
    seed : int
    keep_state : bool
        Also keep θ, r and ∇Ũ per step (``theta_<site>``, ``r_<site>``,
        ``grad_<site>``): memory ``3 d`` numbers per step.

    Returns
    -------
    xarray.Dataset
        Dims ``step`` and ``site``.  Per step and site: ``theta_sq``,
        ``theta_dot_r``, ``r_sq``, ``kinetic`` (rᵀM'⁻¹r), ``kinetic_expected``
        (its discretisation-corrected mean), ``virial`` (θᵀ∇Ũ), ``grad_sq``,
        and for each relation in :data:`RELATIONS` the ``measured_*``,
        ``continuous_*`` and ``discrete_*`` rates and the injected noise's
        ``variance_*`` (see the module docstring).  Per step: ``draw``,
        ``step_size``, ``phase``, ``noise_temperature``, ``resampled`` (the
        step began with a momentum resampling), ``diverging``.  Per site:
        ``size`` (unconstrained coordinates).  Sum over ``site`` for the
        whole state.
    """
    import xarray as xr

    host = _host.host_for(backend)
    num_draws = positive_int("num_draws", num_draws)
    integrator = dict(kernel_kwargs or {}).get("integrator", "euler")
    if integrator != "euler":  # the relations below are the drift-kick scheme's
        raise ValueError(f"record_steps records the integrator='euler' relations, got integrator={integrator!r}")
    if dict(kernel_kwargs or {}).get("trajectory_length") is not None:  # the record's layout is num_steps a draw
        raise ValueError("record_steps records num_steps steps a draw; give num_steps, not trajectory_length="
                         f"{kernel_kwargs['trajectory_length']!r}")
    cfg, recs, sizes = host.record_steps(
        model=model, potential_fn=potential_fn, model_args=tuple(model_args), model_kwargs=dict(model_kwargs or {}),
        init_params=init_params, kernel_kwargs=dict(kernel_kwargs or {}), num_draws=num_draws, seed=seed,
        on_step=_on_step, keep_state=keep_state,
    )
    num_steps = cfg.num_steps
    sites = list(recs["terms"]["theta_sq"])
    n = num_draws * num_steps
    data = {name: (("step", "site"), np.stack([np.asarray(recs["terms"][name][s], float) for s in sites], -1))
            for name in STEP_TERMS}
    data.update({
        "size": (("site",), np.array([sizes[s] for s in sites])),
        "draw": (("step",), np.repeat(np.arange(num_draws), num_steps)),
        "step_size": (("step",), np.asarray(recs["step_size"], float)),
        "phase": (("step",), np.asarray(recs["phase"], np.int64)),
        "noise_temperature": (("step",), np.asarray(recs["noise_temperature"], float)),
        "resampled": (("step",), (np.arange(n) % num_steps == 0) & (cfg.resample_scale is not None)),
        "diverging": (("step",), np.asarray(recs["diverging"], bool)),
    })
    if keep_state:
        for part, per_site in recs["state"].items():
            for s, arr in per_site.items():
                arr = np.asarray(arr)
                data[f"{part}_{s}"] = (("step", *(f"{s}_dim_{i}" for i in range(arr.ndim - 1))), arr)
    attrs = {"backend": backend, **cfg.to_attrs(), "kernel_json": cfg.to_json(),
             "noise_temperature": cfg.noise_temperature, "seed": seed}
    return xr.Dataset(data, coords={"step": np.arange(n), "site": sites}, attrs=attrs)


# -- the moment check ------------------------------------------------------------------------------------
def _batch_means_se(x: np.ndarray, num_batches: int = 20) -> float:
    n = len(x) // num_batches * num_batches
    if n < num_batches * 2:
        return float(np.std(x) / np.sqrt(max(len(x), 1)))
    means = x[:n].reshape(num_batches, -1).mean(1)
    return float(np.std(means, ddof=1) / np.sqrt(num_batches))


def moment_check(steps, *, window: int | None = None, burn_in: int = 0, site: str | None = None):
    """Compare the measured changes of ‖θ‖², θᵀr, ‖r‖² with the moment relations.

    Parameters
    ----------
    steps : xarray.Dataset
        A record from :func:`record_steps`.
    window : int, optional
        Steps per window (one row per relation and window); default one window.
    burn_in : int
        Leading steps to leave out.
    site : str, optional
        One latent site instead of the whole state.

    Returns
    -------
    pandas.DataFrame
        One row per relation (and window), over the steps that neither begin
        with a momentum resampling nor diverge: ``n_steps``; the means of the
        ``measured`` rate, the ``discrete`` and ``continuous`` right-hand
        sides; ``residual_mean`` (measured − discrete); ``z_discrete``, the
        residuals' sum over the square root of the summed exact noise
        variances (≈ N(0, 1) when the relation holds; NaN for ‖θ‖², which has
        no noise: see ``rel_residual``); ``z_continuous``, the mean of
        measured − continuous over its batch-means standard error;
        ``rel_residual``, the mean absolute residual over the mean absolute measured rate; and the per-step
        correlations ``corr_discrete`` / ``corr_continuous`` of the measured
        rate with each right-hand side.
    """
    import pandas as pd

    if not _is_steps(steps):
        raise ValueError("steps must be a record from record_steps (an xarray.Dataset with a 'step' dimension)")
    if window is not None and positive_int("window", window) < 2:
        raise ValueError(f"window must be an integer >= 2, got {window!r}")
    if site is not None and site not in steps.site.values:
        raise ValueError(f"site must be one of {list(steps.site.values)}, got {site!r}")
    part = steps if site is None else steps.sel(site=[site])
    keep = ~(part["resampled"].values | part["diverging"].values)
    keep[:burn_in] = False
    step_ids = np.flatnonzero(keep)
    total = len(part.step)
    edges = [(burn_in, total)] if window is None else [(a, min(a + window, total)) for a in range(burn_in, total, window)]
    rows = []
    for w, (a, b) in enumerate(edges):
        sel = step_ids[(step_ids >= a) & (step_ids < b)]
        if len(sel) < 2:
            continue
        for rel in RELATIONS:
            def get(name, rel=rel, sel=sel):
                return part[f"{name}_{rel}"].values[sel].sum(-1)

            meas, disc, cont = get("measured"), get("discrete"), get("continuous")
            res = meas - disc
            var = get("variance") if rel != "theta_sq" else None
            z_disc = res.sum() / np.sqrt(var.sum()) if var is not None and var.sum() > 0 else np.nan
            diff = meas - cont
            se_c = _batch_means_se(diff)
            rows.append({
                "relation": rel, "window": w, "first_step": a, "n_steps": len(sel),
                "measured": meas.mean(), "discrete": disc.mean(), "continuous": cont.mean(),
                "residual_mean": res.mean(), "z_discrete": z_disc,
                "z_continuous": diff.mean() / se_c if se_c > 0 else np.nan,
                "rel_residual": np.abs(res).mean() / max(np.abs(meas).mean(), np.finfo(float).tiny),
                "corr_discrete": _corr(meas, disc), "corr_continuous": _corr(meas, cont),
            })
    return pd.DataFrame(rows)


def _corr(x, y) -> float:
    if np.std(x) == 0 or np.std(y) == 0:
        return np.nan
    return float(np.corrcoef(x, y)[0, 1])
