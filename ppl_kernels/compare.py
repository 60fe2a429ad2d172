"""Temperature sweeps and their comparison table.

:func:`temperature_sweep` runs one model at several temperatures and/or kernel
settings, each run in its own process (or on a Ray cluster), and returns
``{label: InferenceData}``; :func:`compare_temperatures` turns such a mapping
into a pandas table (ELPD-LOO, norms, temperatures, convergence, held-out
accuracy / NLL).  Plots of both live in :mod:`ppl_kernels.plots`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import traceback
import warnings
from numbers import Real
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .config import SGHMCConfig
from .runner import BACKENDS

__all__ = ["temperature_sweep", "compare_temperatures", "SweepResult", "EXECUTORS", "SETTING_COLUMNS"]

#: Where the runs of a sweep go.
EXECUTORS = ("process", "ray", "serial")

#: Kernel settings reported per run (from the InferenceData attrs).
SETTING_COLUMNS = ("temperature", "tempering", "step_size", "num_steps", "mass", "friction", "boost",
                   "friction_scale", "resample_scale", "explore_noise")

_CONFIG_FIELDS = {f.name for f in dataclasses.fields(SGHMCConfig)}


class SweepResult(dict):
    """``{label: InferenceData}`` of the runs that succeeded, in sweep order.

    Attributes
    ----------
    failures : dict
        ``{label: error text}`` (the worker's traceback) of the runs that failed.
    """

    def __init__(self, runs=(), failures=None):
        super().__init__(runs)
        self.failures: dict[str, str] = dict(failures or {})


def _configurations(temperatures, kernel_kwargs) -> list[tuple[str, dict]]:
    """``[(label, kernel_kwargs)]`` from numbers and ``(label, T, kernel_kwargs)`` triples,
    validated early (the kernel arguments through :class:`SGHMCConfig`)."""
    if isinstance(temperatures, (Real, str)) or not isinstance(temperatures, Iterable):
        raise ValueError(
            f"temperatures must be a list of numbers or (label, T, kernel_kwargs) triples, got {temperatures!r}")
    configs = []
    for item in temperatures:
        if isinstance(item, Real) and not isinstance(item, bool):
            label, t, extra = f"T={float(item):g}", item, {}
        elif (isinstance(item, (tuple, list)) and len(item) == 3 and isinstance(item[0], str)
              and isinstance(item[2], Mapping)):
            label, t, extra = item
        else:
            raise ValueError(f"temperatures entries must be numbers or (label, T, kernel_kwargs) triples, got {item!r}")
        if "temperature" in extra:
            raise ValueError(f"run {label!r}: give the temperature as the triple's T, not in kernel_kwargs")
        kwargs = {**kernel_kwargs, **extra, "temperature": t}
        try:
            SGHMCConfig(**{k: v for k, v in kwargs.items() if k in _CONFIG_FIELDS})
        except ValueError as e:
            raise ValueError(f"run {label!r}: {e}") from None
        configs.append((label, kwargs))
    labels = [c[0] for c in configs]
    if not configs:
        raise ValueError("temperatures must name at least one run, got an empty list")
    dupes = sorted({label for label in labels if labels.count(label) > 1})
    if dupes:
        raise ValueError(f"temperatures give duplicate labels {dupes}")
    return configs


def _run_one(spec: dict):
    """One run of a sweep (top-level so that it pickles into worker processes)."""
    from .arviz import to_inference_data
    from .runner import sample

    mcmc = sample(spec["backend"], **spec["sample"])
    idata = to_inference_data(mcmc, **spec["export"])
    for group in idata.groups():
        idata[group].attrs["label"] = spec["label"]
    return idata


def _error_text(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).strip()


def _run_serial(specs):
    out = {}
    for spec in specs:
        try:
            out[spec["label"]] = _run_one(spec)
        except Exception as e:  # noqa: BLE001 - a failed run is reported, the others go on
            out[spec["label"]] = e
    return out


def _run_processes(specs, max_workers):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # spawn: JAX and PyTorch are not fork-safe once initialised.
    ctx = multiprocessing.get_context("spawn")
    out = {}
    with ProcessPoolExecutor(max_workers=max_workers, mp_context=ctx) as pool:
        futures = {spec["label"]: pool.submit(_run_one, spec) for spec in specs}
        for label, fut in futures.items():
            try:
                out[label] = fut.result()
            except Exception as e:  # noqa: BLE001 - includes a worker that died (BrokenProcessPool)
                out[label] = e
    return out


def _run_ray(specs, address, max_workers):
    try:
        import ray
    except ImportError as e:
        raise ImportError("executor='ray' needs Ray: pip install 'ppl-kernels[ray]'") from e
    started = not ray.is_initialized()
    if started and address:
        ray.init(address=address)
    elif started:
        # A local instance: its workers import the models from this process's import path.
        path = os.pathsep.join(p for p in sys.path if p)
        ray.init(num_cpus=max_workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    try:
        remote = ray.remote(num_cpus=1)(_run_one)
        refs = {spec["label"]: remote.remote(spec) for spec in specs}
        out = {}
        for label, ref in refs.items():
            try:
                out[label] = ray.get(ref)
            except Exception as e:  # noqa: BLE001 - RayTaskError wraps the worker's exception
                out[label] = e
        return out
    finally:
        if started:
            ray.shutdown()


def temperature_sweep(
    model: Callable | None,
    temperatures,
    *,
    backend: str,
    kernel_kwargs: Mapping[str, Any] | None = None,
    num_samples: int = 1000,
    num_warmup: int = 0,
    num_chains: int = 1,
    seed: int = 0,
    model_args: tuple = (),
    model_kwargs: Mapping[str, Any] | None = None,
    potential_fn: Callable | None = None,
    init_params: Mapping[str, Any] | None = None,
    chain_method: str = "sequential",
    thinning: int = 1,
    log_likelihood: bool = True,
    predictions: Mapping[str, Any] | None = None,
    executor: str = "process",
    max_workers: int | None = None,
    ray_address: str | None = None,
) -> SweepResult:
    """Run SGHMC at several temperatures / kernel settings and export each run to ArviZ.

    Parameters
    ----------
    model : callable or None
        A Pyro or NumPyro model (``None`` with ``potential_fn``).  For the
        process and Ray executors it must be importable (a top-level function
        of a module), since it travels to the workers by reference.
    temperatures : list
        Entries are numbers ``T`` (label ``"T=<T>"``, the common
        ``kernel_kwargs``) or ``(label, T, kernel_kwargs)`` triples whose
        kernel arguments override the common ones: e.g. plain SGHMC and
        norm-adjusting settings at the same temperatures.
    backend : {"pyro", "numpyro"}
    kernel_kwargs : dict
        ``SGHMC`` arguments common to every run (not ``temperature``).
    num_samples, num_warmup, num_chains, seed, model_args, model_kwargs, init_params, chain_method, thinning
        As for :func:`ppl_kernels.runner.sample`; every run uses the same
        ``seed`` (common random numbers make the runs comparable).
    log_likelihood, predictions
        As for :func:`ppl_kernels.to_inference_data`.
    executor : {"process", "ray", "serial"}
        ``"process"``: local processes (``spawn``), ``max_workers`` at a time
        (default: one per CPU, at most one per run).  ``"ray"``: Ray tasks
        (optional extra ``ray``), on ``ray.init(address=ray_address)``; without
        an address a local instance with ``max_workers`` CPUs whose workers
        see this process's import path; an already initialised Ray is used as
        it is (then the cluster's workers must be able to import the model,
        e.g. through ``runtime_env``).
        ``"serial"``: one after the other in this process.
    max_workers : int, optional
    ray_address : str, optional

    Returns
    -------
    SweepResult
        ``{label: InferenceData}`` of the runs that succeeded, in the order
        given; ``.failures`` maps the label of every failed run to its error
        text, and a ``RuntimeWarning`` names them.

    Raises
    ------
    ValueError
        Before any run, for bad arguments (invalid kernel settings name the
        run's label).
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {EXECUTORS}, got {executor!r}")
    if (model is None) == (potential_fn is None):
        raise ValueError("give exactly one of model and potential_fn")
    for name, v in (("num_samples", num_samples), ("num_chains", num_chains), ("thinning", thinning)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    if isinstance(num_warmup, bool) or not isinstance(num_warmup, (int, np.integer)) or num_warmup < 0:
        raise ValueError(f"num_warmup must be a non-negative integer, got {num_warmup!r}")
    if max_workers is not None and (isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1):
        raise ValueError(f"max_workers must be a positive integer, got {max_workers!r}")
    kernel_kwargs = dict(kernel_kwargs or {})
    if "temperature" in kernel_kwargs:
        raise ValueError("kernel_kwargs must not contain 'temperature' (the sweep sets it per run)")
    configs = _configurations(temperatures, kernel_kwargs)
    specs = [
        {
            "label": label,
            "backend": backend,
            "sample": dict(model=model, potential_fn=potential_fn, init_params=init_params, model_args=tuple(model_args),
                           model_kwargs=dict(model_kwargs or {}), kernel_kwargs=kw, num_samples=num_samples,
                           num_warmup=num_warmup, num_chains=num_chains, seed=seed, chain_method=chain_method,
                           thinning=thinning),
            "export": dict(log_likelihood=log_likelihood, predictions=predictions),
        }
        for label, kw in configs
    ]
    workers = max_workers or max(1, min(len(specs), os.cpu_count() or 1))
    if executor == "serial":
        outcomes = _run_serial(specs)
    elif executor == "process":
        outcomes = _run_processes(specs, workers)
    else:
        outcomes = _run_ray(specs, ray_address, workers)
    runs = {label: r for label, r in outcomes.items() if not isinstance(r, BaseException)}
    failures = {label: _error_text(r) for label, r in outcomes.items() if isinstance(r, BaseException)}
    if failures:
        warnings.warn(
            f"{len(failures)} of {len(specs)} runs failed: {sorted(failures)}; their errors are in the result's .failures",
            RuntimeWarning, stacklevel=2,
        )
    return SweepResult(runs, failures)


# -- the comparison table ----------------------------------------------------------------------------------
def _targets(test_data, site, idata):
    if test_data is None:
        const = idata.get("predictions_constant_data")
        if const is not None and f"{site}_observed" in const:
            return np.asarray(const[f"{site}_observed"].values)
        return None
    if isinstance(test_data, Mapping):
        return None if site not in test_data else np.asarray(_numpy(test_data[site]))
    return np.asarray(_numpy(test_data))


def _numpy(x):
    return x.detach().cpu().numpy() if hasattr(x, "detach") else x


def _logmeanexp(x, axis):
    m = np.max(x, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.mean(np.exp(x - m), axis=axis))


def _ess(series: np.ndarray) -> float:
    """Bulk ESS of one per-draw series (chain, draw)."""
    import arviz as az

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(az.ess(np.asarray(series, dtype=float), method="bulk"))


def _test_metrics(idata, test_data) -> dict[str, float]:
    """Held-out accuracy and NLL per predicted site, from the predictions group."""
    pred = idata.get("predictions")
    if pred is None:
        if test_data is not None:
            raise ValueError("test_data needs runs with a predictions group (to_inference_data(..., predictions=...))")
        return {}
    sites = [v for v in pred.data_vars if f"{v}_class_log_prob" in pred or f"{v}_log_density" in pred]
    if isinstance(test_data, Mapping):
        unknown = sorted(set(test_data) - set(sites))
        if unknown:
            raise ValueError(f"test_data names {unknown}, which have no predictions; predicted sites are {sites}")
    elif test_data is not None and len(sites) != 1:
        raise ValueError(f"test_data must be a dict {{site: targets}} when several sites are predicted ({sites})")
    out = {}
    for site in sites:
        suffix = "" if len(sites) == 1 else f"_{site}"
        y = _targets(test_data, site, idata)
        if f"{site}_class_log_prob" in pred and y is not None:
            lp = pred[f"{site}_class_log_prob"]
            classes = np.asarray(lp[f"{site}_class"].values)
            lp = lp.values.reshape(-1, *lp.shape[2:])  # (draws, ..., K)
            pos = np.searchsorted(classes, y)
            known = np.all(pos < len(classes)) and np.all(classes[np.minimum(pos, len(classes) - 1)] == y)
            if y.shape != lp.shape[1:-1] or not known:
                raise ValueError(
                    f"test_data for {site!r} must hold support values {classes.tolist()} in shape {lp.shape[1:-1]}")
            log_pred = _logmeanexp(lp, axis=0)  # posterior predictive log probabilities, (..., K)
            out[f"test_accuracy{suffix}"] = float(np.mean(np.argmax(log_pred, -1) == pos))
            out[f"test_nll{suffix}"] = float(-np.mean(np.take_along_axis(log_pred, pos[..., None], -1)))
            per_draw = np.take_along_axis(lp, np.broadcast_to(pos[None, ..., None], (*lp.shape[:-1], 1)), -1)
            shape = pred[f"{site}_class_log_prob"].shape[:2]
            out[f"ess_test_log_density{suffix}"] = _ess(per_draw.reshape(*shape, -1).mean(-1))
        elif f"{site}_log_density" in pred:
            if test_data is not None and y is not None:
                const = idata.get("predictions_constant_data")
                stored = None if const is None or f"{site}_observed" not in const else const[f"{site}_observed"].values
                if stored is None or not np.array_equal(stored, y):
                    raise ValueError(f"the predictions of {site!r} were evaluated at other targets than test_data; "
                                     "pass the targets as predictions['observed'] to to_inference_data")
            ld = pred[f"{site}_log_density"].values
            out[f"test_nll{suffix}"] = float(-np.mean(_logmeanexp(ld.reshape(-1, *ld.shape[2:]), axis=0)))
            out[f"ess_test_log_density{suffix}"] = _ess(ld.reshape(*ld.shape[:2], -1).mean(-1))
    return out


def _loo(idata, var_name):
    import arviz as az

    ll = idata.get("log_likelihood")
    if ll is None or not ll.data_vars:
        return None
    if var_name is None and len(ll.data_vars) > 1:
        raise ValueError(f"the runs have several log-likelihood variables {list(ll.data_vars)}; choose one with var_name")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loo = az.loo(idata, pointwise=True, var_name=var_name)
    return loo, bool(caught)


def compare_temperatures(idatas: Mapping[str, Any], *, test_data=None, var_name: str | None = None):
    """One table row per run: settings, ELPD-LOO, norms, temperatures, convergence, held-out metrics.

    Parameters
    ----------
    idatas : dict
        ``{label: InferenceData}`` from :func:`ppl_kernels.to_inference_data`
        (e.g. a :func:`temperature_sweep` result).
    test_data : array or dict, optional
        Held-out targets (``{site: targets}`` when several sites are
        predicted); default: the targets stored with the predictions
        (``predictions_constant_data.<site>_observed``).  Accuracy needs an
        enumerable likelihood (``<site>_class_log_prob``); the NLL comes from the
        class probabilities or from ``<site>_log_density``.
    var_name : str, optional
        The log-likelihood variable for LOO when there are several.

    Returns
    -------
    pandas.DataFrame
        Index ``label``; columns: the kernel settings (:data:`SETTING_COLUMNS`),
        ``elpd_loo``, ``se``, ``p_loo``, ``elpd_diff`` and ``dse`` (to the best
        run, as in ``az.compare``), ``loo_warning`` (Pareto k too high),
        ``theta_sq_mean`` / ``theta_sq_final`` (‖θ‖², mean over draws and
        last draw averaged over chains), ``kinetic_temperature_mean``,
        ``ess_bulk_min`` and ``rhat_max`` over the posterior's variables
        (R-hat needs two chains or more, else NaN; for a neural network these
        are dominated by non-identifiable weights), ``ess_theta_sq`` (bulk
        ESS of ‖θ‖²), and ``test_accuracy`` / ``test_nll``
        (``-mean_i log mean_s p(y_i | θ_s)``) with ``ess_test_log_density``
        (bulk ESS of the per-draw mean held-out log density) when predictions
        on held-out data are present.
    """
    import arviz as az
    import pandas as pd

    if not isinstance(idatas, Mapping) or not idatas:
        raise ValueError(f"idatas must be a non-empty dict {{label: InferenceData}}, got {idatas!r}")
    rows, pointwise = [], {}
    for label, idata in idatas.items():
        if "sample_stats" not in idata.groups() or "theta_sq_norm" not in idata.sample_stats:
            raise ValueError(f"idatas[{label!r}] is not an SGHMC run exported by to_inference_data")
        attrs = idata.posterior.attrs
        stats = idata.sample_stats
        row = {"label": label, **{k: attrs.get(k) for k in SETTING_COLUMNS}}
        res = _loo(idata, var_name)
        if res is None:
            row.update(elpd_loo=np.nan, se=np.nan, p_loo=np.nan, loo_warning=False)
        else:
            loo, warned = res
            row.update(elpd_loo=float(loo.elpd_loo), se=float(loo.se), p_loo=float(loo.p_loo), loo_warning=warned)
            pointwise[label] = np.asarray(loo.loo_i.values).ravel()
        theta_sq = stats["theta_sq_norm"].values
        row.update(
            theta_sq_mean=float(theta_sq.mean()),
            theta_sq_final=float(theta_sq[:, -1].mean()),
            kinetic_temperature_mean=float(stats["kinetic_temperature"].values.mean()),
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # one chain: R-hat is undefined (NaN) and ArviZ says so
            ess = az.ess(idata.posterior, method="bulk")
            rhat = az.rhat(idata.posterior) if idata.posterior.sizes["chain"] > 1 else None
        row["ess_bulk_min"] = float(min(np.nanmin(v.values) for v in ess.data_vars.values()))
        row["ess_theta_sq"] = _ess(theta_sq)
        row["rhat_max"] = float(max(np.nanmax(v.values) for v in rhat.data_vars.values())) if rhat is not None else np.nan
        try:
            row.update(_test_metrics(idata, test_data))
        except ValueError as e:
            raise ValueError(f"idatas[{label!r}]: {e}") from None
        rows.append(row)
    table = pd.DataFrame(rows).set_index("label")
    table["elpd_diff"], table["dse"] = np.nan, np.nan
    if pointwise:
        best = max(pointwise, key=lambda k: pointwise[k].sum())
        for label, loo_i in pointwise.items():
            if loo_i.shape == pointwise[best].shape:
                diff = pointwise[best] - loo_i
                table.loc[label, "elpd_diff"] = float(diff.sum())
                table.loc[label, "dse"] = float(math.sqrt(len(diff) * np.var(diff)))
    first = [*SETTING_COLUMNS, "elpd_loo", "se", "p_loo", "elpd_diff", "dse", "loo_warning"]
    return table[[c for c in first if c in table] + [c for c in table if c not in first]]
