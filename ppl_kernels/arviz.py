"""ArviZ export of finished SGHMC runs, the same layout from Pyro and NumPyro.

:func:`to_inference_data` turns a finished ``pyro.infer.MCMC`` or
``numpyro.infer.MCMC`` run of :class:`ppl_kernels.pyro.SGHMC` /
:class:`ppl_kernels.numpyro.SGHMC` into an :class:`arviz.InferenceData`.  It is
built from plain :class:`xarray.Dataset` s (no backend-specific ArviZ
converter), so both backends give the same groups, variable names, dimension
names and dtypes.

What the ArviZ converters lose and this keeps:

- ``az.from_pyro`` keeps only ``diverging`` in ``sample_stats``; here every
  SGHMC statistic (``lp``, ``theta_sq_norm``, ``kinetic_temperature`` ...).
- ``az.from_numpyro`` cannot evaluate the log-likelihood of a model whose plate
  subsamples (the plate needs a random key, and the result would be a
  minibatch anyway); here the pointwise log-likelihood covers the **full** data
  set, evaluated in bounded-memory chunks: the plate's site (named like the
  plate) is conditioned on consecutive chunks of ``arange(N)`` and the observed
  sites' ``log_prob`` is taken without the plate's ``N / B`` scale.

Layout of the predictions (held-out data, see ``predictions=``):

- ``predictions``: ``<site>``, one draw of every observed site per posterior
  draw at the held-out inputs; for sites with an enumerable support
  (``Categorical``, ``Bernoulli`` ...) also ``<site>_class_log_prob``, the
  per-draw log probability of every support value (last dimension
  ``<site>_class``, whose coordinate holds the support values); with held-out
  targets also ``<site>_log_density``, the per-draw ``log p(y* | θ)``.
- ``predictions_constant_data``: the array-valued held-out model arguments,
  named like the model's parameters, and the held-out targets as
  ``<site>_observed``.

:func:`ppl_kernels.compare_temperatures` reads test accuracy from the class
probabilities (averaged over draws) and the test NLL
``-mean_i log mean_s p(y*_i | θ_s)`` from either of the two.
"""

from __future__ import annotations

import datetime
import inspect
import json
import warnings
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Mapping

import numpy as np

from . import _host
from .config import positive_int
from .sites import Site, output_axis
from .sites import to_numpy as _to_numpy

__all__ = ["to_inference_data", "predictive_mean"]

_PREDICTION_KEYS = ("model_args", "model_kwargs", "observed", "coords", "dims")


# -- chunked evaluation over draws and data ------------------------------------------------------
def _store(out, name, what, arr, row, num_rows, site: Site, start, n_valid, size):
    """Write one evaluated chunk into its place in the full output (allocated on first use)."""
    axis = arr.ndim + output_axis(site, what) if site.plate is not None else None
    if axis is not None:
        arr = np.take(arr, np.arange(n_valid), axis=axis)  # drop the padding
    dest = out.setdefault(name, {}).get(what)
    if dest is None:
        shape = [num_rows, *arr.shape[1:]]
        if axis is not None:
            shape[axis] = size
        dest = out[name][what] = np.empty(shape, arr.dtype)
    where = [slice(row, row + len(arr))] + [slice(None)] * (arr.ndim - 1)
    if axis is not None:
        where[axis] = slice(start, start + n_valid)
    dest[tuple(where)] = arr


def _pointwise(ev, draws, requests, sites, *, num_draws, chunk_size, draw_chunk_size, targets=None,
               first_draw_only=(), draw_ids=None):
    """Evaluate ``requests`` ({site: {what, ...}}) at every draw and, for sites inside a
    subsampled plate, over the whole plate in consecutive chunks of indices.

    Returns ``{site: {what: array (num_draws, ...)}}`` in full-data order; the
    ``(site, what)`` pairs in ``first_draw_only`` keep the first draw only.  Memory beyond
    the outputs is one chunk of draws times one chunk of data.  Every evaluation
    asks for the same quantities at the same shapes, so NumPyro compiles once.
    ``draw_ids`` (default ``arange(num_draws)``) number the draws for the random
    streams of predictive draws: a chunk of a longer run passes its draws' places in it.
    """
    targets = targets or {}
    width = min(draw_chunk_size, num_draws)
    lengths = {p.name: ev.chunk_length(p, chunk_size) for p in ev.plates}
    first = _first_indices(ev, chunk_size)
    passes = [p for p in ev.plates if any(sites[n].plate == p.name for n in requests)] or [None]
    out: dict = {}
    for i, plate in enumerate(passes):
        # Sites outside every subsampled plate ride along the first chunk of the first pass.
        names = [n for n in requests
                 if sites[n].plate == getattr(plate, "name", None) or (i == 0 and sites[n].plate is None)]
        size, step = (1, 1) if plate is None else (plate.size, lengths[plate.name])
        for start in range(0, size, step):
            idx, n_valid = dict(first), min(step, size - start)
            if plate is not None:
                chunk = np.arange(start, start + n_valid)
                # Pad the last chunk to a fixed length (one compilation; Pyro needs exactly B).
                idx[plate.name] = np.concatenate([chunk, np.full(step - n_valid, chunk[0])])
            tgt = {}
            for n in set(names) & set(targets):
                t = np.asarray(targets[n])
                axis = t.ndim + sites[n].dim - sites[n].event_dim
                tgt[n] = t if sites[n].plate is None else np.take(t, idx[plate.name], axis=axis)
            # Global sites are kept from the first chunk only; when what is left needs only
            # the first draw (observed values), one chunk of draws is enough.
            active = names if start == 0 else [n for n in names if sites[n].plate is not None]
            per_draw = any((n, w) not in first_draw_only for n in active for w in requests[n])
            stop = num_draws if per_draw else 1
            for d0 in range(0, stop, draw_chunk_size):
                d1 = min(d0 + draw_chunk_size, stop)
                ids = np.arange(d0, d1)
                if ev.fixed_draw_chunks:
                    ids = np.concatenate([ids, np.full(width - (d1 - d0), d1 - 1)])
                chunk_draws = {k: v[ids] for k, v in draws.items()}
                seeds = ids if draw_ids is None else draw_ids[ids]
                res = ev.evaluate(chunk_draws, seeds, start, idx, {n: requests[n] for n in names}, tgt,
                                  plate=getattr(plate, "name", None))
                for n in names:
                    if sites[n].plate is None and start > 0:
                        continue
                    for what, arr in res[n].items():
                        if (n, what) in first_draw_only:
                            if d0 == 0:
                                _store(out, n, what, _to_numpy(arr)[:1], 0, 1, sites[n], start, n_valid, size)
                        else:
                            _store(out, n, what, _to_numpy(arr)[: d1 - d0], d0, num_draws, sites[n], start, n_valid, size)
    return out


# -- building the groups ---------------------------------------------------------------------------
def _dataset(arrays: Mapping[str, np.ndarray], *, sample_dims, coords, dims, attrs):
    """An ``xarray.Dataset`` with ArviZ's dimension naming (``<var>_dim_<i>``) by default."""
    import xarray as xr

    data_vars, used = {}, set(sample_dims)
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        extra = arr.ndim - len(sample_dims)
        names = list(dims.get(name, ()))
        if len(names) > extra:
            raise ValueError(f"dims[{name!r}] names {len(names)} dimensions, but {name!r} has {extra}: {names!r}")
        names += [f"{name}_dim_{i}" for i in range(len(names), extra)]
        data_vars[name] = ((*sample_dims, *names), arr)
        used.update(names)
    shape = next(iter(arrays.values())).shape if arrays else ()
    c = {d: np.arange(n) for d, n in zip(sample_dims, shape)}
    c.update({d: np.asarray(v) for d, v in coords.items() if d in used})
    return xr.Dataset(data_vars, coords=c, attrs=dict(attrs))


def _version(dist: str) -> str:
    try:
        return version(dist)
    except PackageNotFoundError:  # pragma: no cover - a broken install
        return "unknown"


def _name(f) -> str:
    if f is None:
        return "None"
    f = getattr(f, "func", f)  # functools.partial, as init_to_value returns
    return f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', repr(f))}".lstrip(".")


def _attrs(host, mcmc, kernel) -> dict[str, Any]:
    from . import __version__

    seed = kernel.rng_seed
    model = kernel.model
    return {
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "arviz_version": _version("arviz"),
        "inference_library": host.BACKEND,
        "inference_library_version": _version(host.LIBRARY),
        f"{host.ARRAY_LIBRARY}_version": _version(host.ARRAY_LIBRARY),
        "ppl_kernels_version": __version__,
        "backend": host.BACKEND,
        "kernel": f"ppl_kernels.{host.BACKEND}.SGHMC",
        **kernel.config.to_attrs(),
        "init_strategy": _name(kernel.init_strategy),
        "model": _name(model) if model is not None else "None",
        "potential_fn": _name(kernel.potential_fn),
        "kernel_json": kernel.config.to_json(),
        **_adaptation_attrs(host.adaptation(mcmc)),
        # NetCDF attributes cannot be None: an unknown seed (a user-made MCMC) is the string "None".
        "seed": int(seed) if seed is not None else "None",
        **host.run_lengths(mcmc),
    }


def _adaptation_attrs(per_chain: list) -> dict[str, Any]:
    """The values each chain sampled with, as JSON: ``adapted_step_size`` (one per chain)
    and ``adapted_json``, per chain the per-site ``mass``, ``friction`` and
    ``gradient_noise`` with the warmup trace (``step_trace``, ``mass_trace``)."""
    def listed(v):
        return {k: listed(x) for k, x in v.items()} if isinstance(v, dict) else np.asarray(v).tolist()

    # JSON strings: a list attribute would come back from NetCDF as an array
    return {"adapted_step_size": json.dumps([float(c["step_size"]) for c in per_chain]),
            "adapted_json": json.dumps([listed(c) for c in per_chain])}


def _unconstrained_shapes(kernel, draws) -> str:
    """JSON ``{site: shape}`` of the space the kernel moves in (for the temperature checks)."""
    out = {}
    for k, v in draws.items():
        shape, t = tuple(v.shape[2:]), (kernel.transforms or {}).get(k)
        if t is not None:  # constrained -> unconstrained, in both backends
            shape = t.forward_shape(shape)
        out[k] = [int(n) for n in shape]
    return json.dumps(out)


def _array_arguments(model, args, kwargs) -> dict[str, np.ndarray]:
    """The array-valued model arguments, named like the model's parameters."""
    try:
        bound = inspect.signature(model).bind_partial(*args, **kwargs).arguments
    except (TypeError, ValueError):
        bound = {**{f"arg{i}": a for i, a in enumerate(args)}, **kwargs}
    return {k: _to_numpy(v) for k, v in bound.items() if hasattr(v, "shape") and hasattr(v, "dtype")}


def _check_predictions(name, spec):
    if spec is None:
        return None
    if not isinstance(spec, Mapping):
        raise ValueError(f"{name} must be a dict with keys {_PREDICTION_KEYS}, got {spec!r}")
    unknown = sorted(set(spec) - set(_PREDICTION_KEYS))
    if unknown:
        raise ValueError(f"{name} has unknown keys {unknown}; allowed keys are {_PREDICTION_KEYS}")
    if name == "posterior_predictive" and "observed" in spec:
        raise ValueError("posterior_predictive takes no 'observed' (the training targets are observed_data)")
    return spec


def _first_indices(ev, chunk_size) -> dict:
    return {p.name: np.arange(ev.chunk_length(p, chunk_size)) for p in ev.plates}


class _HeldOut:
    """A ``predictions`` / ``posterior_predictive`` request: checked at construction,
    laid out as ArviZ variables by :meth:`arrays`."""

    def __init__(self, group, spec, evaluator, model, sites, sample0, seed, chunk_size):
        self.args = tuple(spec.get("model_args", ()))
        self.kwargs = dict(spec.get("model_kwargs", {}))
        self.targets = dict(spec.get("observed", {}))
        self.spec, self.observed = spec, [n for n, s in sites.items() if s.kind == "observed"]
        unknown = sorted(set(self.targets) - set(self.observed))
        if unknown:
            raise ValueError(f"{group}['observed'] names {unknown}, which are not observed sites {self.observed}")
        self.ev = evaluator(model, self.args, self.kwargs, seed, values=sample0)
        p_sites = self.ev.sites(sample0, _first_indices(self.ev, chunk_size))
        still = [n for n in self.observed if n in p_sites and p_sites[n].kind == "observed"]
        if still:
            raise ValueError(
                f"{group}['model_args'/'model_kwargs'] still observe {still}: leave the observations None "
                "(give held-out targets as predictions['observed'])"
            )
        # The class values come from the training trace (there the site was observed).
        self.sites = {n: p._replace(support=sites[n].support) if n in sites else p for n, p in p_sites.items()}
        self.requests = {n: {"value"} | ({"classes"} if sites[n].support is not None else set()) for n in self.observed}
        for n in self.targets:
            self.requests[n].add("target")

    def arrays(self, out, dims):
        """``(arrays, dims, coords)`` of the group from the evaluated ``{site: {what: (chain, draw, ...)}}``."""
        p_dims, p_coords = dict(self.spec.get("dims", dims)), dict(self.spec.get("coords", {}))
        arrays = {}
        for n in self.observed:
            arrays[n] = out[n]["value"]
            batch_dims = list(p_dims.get(n, ()))[: arrays[n].ndim - 2 - self.sites[n].event_dim]
            for what, var, extra in (("classes", f"{n}_class_log_prob", [f"{n}_class"]), ("target", f"{n}_log_density", [])):
                if what in out[n]:
                    arrays[var] = out[n][what]
                    nb = arrays[var].ndim - 2 - len(extra)
                    p_dims[var] = batch_dims + [f"{n}_dim_{i}" for i in range(len(batch_dims), nb)] + extra
            if "classes" in out[n]:
                p_coords[f"{n}_class"] = self.sites[n].support
        return arrays, p_dims, p_coords


def to_inference_data(
    mcmc,
    *,
    log_likelihood: bool = True,
    predictions: Mapping[str, Any] | None = None,
    posterior_predictive: Mapping[str, Any] | None = None,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, list] | None = None,
    model_args: tuple | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    chunk_size: int = 1024,
    draw_chunk_size: int = 128,
):
    """Convert a finished SGHMC run into :class:`arviz.InferenceData`.

    Parameters
    ----------
    mcmc : pyro.infer.MCMC or numpyro.infer.MCMC
        A finished run whose kernel is :class:`ppl_kernels.pyro.SGHMC` or
        :class:`ppl_kernels.numpyro.SGHMC`.
    log_likelihood : bool
        Add the ``log_likelihood`` group: pointwise over the full data set, also
        for a model that subsamples, unscaled and untempered (so ``az.loo``
        sees the model's own likelihood).  Ignored for ``potential_fn`` runs.
    predictions : dict, optional
        Held-out data: ``model_args`` / ``model_kwargs`` call the model at the
        held-out inputs with the observed sites' values left ``None``;
        optional ``observed`` maps observed sites to held-out targets; optional
        ``coords`` / ``dims`` for the prediction points (default: ``dims``
        below).  Adds ``predictions`` and ``predictions_constant_data`` (layout
        in the module docstring).
    posterior_predictive : dict, optional
        As ``predictions`` (without ``observed``) at in-sample inputs; adds
        ``posterior_predictive``.
    coords, dims : dict, optional
        As in ArviZ: coordinate values per dimension name, and dimension names
        per variable (after ``chain``, ``draw``).  Unnamed dimensions are
        ``<var>_dim_<i>``.
    model_args, model_kwargs : optional
        The arguments the model was run with; by default those the ``MCMC``
        object recorded.
    chunk_size : int
        Data points per evaluation of a subsampled plate (NumPyro).  Pyro's plate
        accepts only its own ``subsample_size`` indices, so Pyro evaluates
        chunks of that size.
    draw_chunk_size : int
        Posterior draws per (vectorised) evaluation.

    Returns
    -------
    arviz.InferenceData
        Groups ``posterior`` (latent sites, constrained, and deterministic sites
        outside subsampled plates), ``sample_stats`` (every SGHMC statistic),
        ``log_likelihood``, ``observed_data`` and, when asked,
        ``posterior_predictive``, ``predictions``,
        ``predictions_constant_data``.  Every group's ``attrs`` holds the
        backend, library versions, every kernel argument (``kernel_json``
        has them machine-readable), ``unconstrained_shapes`` (JSON, the
        sites' shapes in the space the kernel moves in) and the seed (``"None"`` when unknown, as
        for an ``MCMC`` not made by :func:`ppl_kernels.runner.sample`).

    Raises
    ------
    ValueError
        For bad arguments, naming the argument and its value.

    Examples
    --------
    >>> idata = to_inference_data(mcmc)  # doctest: +SKIP
    >>> az.loo(idata)  # doctest: +SKIP
    """
    return _export(mcmc, log_likelihood=log_likelihood, predictions=predictions,
                   posterior_predictive=posterior_predictive, coords=coords, dims=dims, model_args=model_args,
                   model_kwargs=model_kwargs, chunk_size=chunk_size, draw_chunk_size=draw_chunk_size)


def _export(
    mcmc,
    *,
    log_likelihood: bool = True,
    predictions: Mapping[str, Any] | None = None,
    posterior_predictive: Mapping[str, Any] | None = None,
    coords: Mapping[str, Any] | None = None,
    dims: Mapping[str, list] | None = None,
    model_args: tuple | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    chunk_size: int = 1024,
    draw_chunk_size: int = 128,
    chunk_of: tuple[int, int] | None = None,
):
    """:func:`to_inference_data`; ``chunk_of = (offset, run_draws)`` marks the run as draws
    ``offset ...`` of a run of ``run_draws`` draws per chain (a streamed chunk), so that
    predictive draws use the random streams the whole run's export would give them."""
    import arviz as az

    positive_int("chunk_size", chunk_size)
    positive_int("draw_chunk_size", draw_chunk_size)
    predictions = _check_predictions("predictions", predictions)
    posterior_predictive = _check_predictions("posterior_predictive", posterior_predictive)
    host = _host.host_of(mcmc, finished=True)
    kernel = host.kernel_of(mcmc)
    if not hasattr(kernel, "config"):
        raise ValueError(f"mcmc must have been run with ppl_kernels' SGHMC, got a {type(kernel).__name__} kernel")
    coords, dims = dict(coords or {}), dict(dims or {})
    attrs = _attrs(host, mcmc, kernel)
    stats = _host.get_stats(mcmc)
    draws = _host.get_draws(mcmc)
    num_chains, num_draws = stats["lp"].shape
    chain_draw = ("chain", "draw")

    def group(arrays, sample_dims=chain_draw, coords=coords, dims=dims):
        return _dataset(arrays, sample_dims=sample_dims, coords=coords, dims=dims, attrs=attrs)

    def by_chain(arr):
        return arr.reshape(num_chains, num_draws, *arr.shape[1:])

    model = kernel.model
    if model is None:
        if predictions is not None or posterior_predictive is not None:
            raise ValueError("predictions / posterior_predictive need a model; this run used a potential_fn")
        attrs["unconstrained_shapes"] = _unconstrained_shapes(kernel, draws)
        groups = {"posterior": group({k: _to_numpy(v) for k, v in draws.items()})}
        groups["sample_stats"] = group(stats)
        return az.InferenceData(**groups)

    run_args, run_kwargs = host.model_arguments(mcmc)
    args = tuple(run_args if model_args is None else model_args)
    kwargs = dict(run_kwargs if model_kwargs is None else model_kwargs)
    seed = attrs["seed"] if isinstance(attrs["seed"], int) else 0
    # draws may hold no site at all (a model with no latent site): count them from the statistics
    draw_ids = None
    if chunk_of is not None:  # the flattened (chain, draw) place of each draw in the whole run
        offset, run_draws = chunk_of
        draw_ids = (np.arange(num_chains)[:, None] * run_draws + offset + np.arange(num_draws)).reshape(-1)
    opts = dict(num_draws=num_chains * num_draws, chunk_size=chunk_size, draw_chunk_size=draw_chunk_size,
                draw_ids=draw_ids)

    # The kernel knows the plates of the data it ran on (unless its chains ran in other
    # processes); other arguments are traced anew.
    known = model_args is None and model_kwargs is None and kernel.plates
    sample0 = {k: _to_numpy(v)[0, 0] for k, v in draws.items()}
    ev = host.Evaluator(model, args, kwargs, seed, plates=kernel.plates if known else None, values=sample0)
    sites = ev.sites(sample0, _first_indices(ev, chunk_size))
    latent = [n for n, s in sites.items() if s.kind == "latent"]
    observed = [n for n, s in sites.items() if s.kind == "observed"]
    # Check the held-out specifications before the long passes over the data.
    held_out = {
        name: _HeldOut(name, spec, host.Evaluator, model, sites, sample0, seed + 1, chunk_size)
        for name, spec in (("posterior_predictive", posterior_predictive), ("predictions", predictions))
        if spec is not None
    }
    attrs["unconstrained_shapes"] = _unconstrained_shapes(kernel, {k: draws[k] for k in latent})
    flat = {k: _to_numpy(draws[k]).reshape(num_chains * num_draws, *draws[k].shape[2:]) for k in latent}

    # One pass: global deterministic sites, the observed sites' pointwise log-likelihood
    # and (first draw only) their values.
    requests = {n: {"value"} for n, s in sites.items() if s.kind == "deterministic" and s.plate is None}
    pointwise = [n for n in observed if sites[n].shared is None]
    for n in observed if log_likelihood else ():
        if sites[n].shared is not None:
            warnings.warn(f"log_likelihood leaves out {n!r}: its density depends on the summed-out discrete site "
                          f"{sites[n].shared!r}, which all the members of its plate share, so it has no pointwise "
                          "value (the draws and the other groups are unaffected)", UserWarning, stacklevel=3)
    requests.update({n: {"value", "log_prob"} if log_likelihood and n in pointwise else {"value"} for n in observed})
    first_only = {(n, "value") for n in observed}
    res = _pointwise(ev, flat, requests, sites, first_draw_only=first_only, **opts) if requests else {}
    posterior = {k: by_chain(v) for k, v in flat.items()}
    posterior.update({n: by_chain(res[n]["value"]) for n, s in sites.items() if s.kind == "deterministic" and n in res})
    groups = {"posterior": group(posterior), "sample_stats": group(stats)}
    if log_likelihood and pointwise:
        groups["log_likelihood"] = group({n: by_chain(res[n]["log_prob"]) for n in pointwise})
    if observed:
        groups["observed_data"] = group({n: res[n]["value"][0] for n in observed}, sample_dims=())
    for name, h in held_out.items():
        out = _pointwise(h.ev, flat, h.requests, h.sites, targets=h.targets, **opts)
        arrays, p_dims, p_coords = h.arrays({n: {w: by_chain(a) for w, a in r.items()} for n, r in out.items()}, dims)
        groups[name] = group(arrays, coords=p_coords, dims=p_dims)
        if name == "predictions":
            const = _array_arguments(model, h.args, h.kwargs)
            const.update({f"{n}_observed": _to_numpy(t) for n, t in h.targets.items()})
            p_dims.update({f"{n}_observed": p_dims.get(n, ()) for n in h.targets})
            if const:
                groups["predictions_constant_data"] = group(const, sample_dims=(), coords=p_coords, dims=p_dims)
    return az.InferenceData(**groups)


# -- posterior predictive averages -----------------------------------------------------------------
def predictive_mean(predictions):
    """Average the posterior predictive over the draws of each chain.

    What a run that keeps no weights can still report (:func:`ppl_kernels.stream`
    accumulates it chunk by chunk with ``predictive_mean=``), and what held-out
    accuracy and NLL are computed from.

    Parameters
    ----------
    predictions : arviz.InferenceData or xarray.Dataset
        An export with a ``predictions`` group (see :func:`to_inference_data`), or
        such a group itself (``posterior_predictive`` works too).

    Returns
    -------
    xarray.Dataset
        Per chain (dims ``chain`` and the prediction points' dims), for each predicted
        site ``y``: ``y_mean``, the mean of the predictive draws; with an enumerable
        support ``y_class_prob``, the mean class probabilities
        ``mean_s p(y* = k | θ_s)``; with held-out targets ``y_log_density``, the log
        predictive density ``log mean_s p(y* | θ_s)``.  ``attrs["num_draws"]`` is the
        number of draws per chain.  All chains have as many draws, so the pooled class
        probabilities are ``ds.y_class_prob.mean("chain")`` and the pooled log density
        is ``logsumexp`` over chains minus ``log(num_chains)``.

    Raises
    ------
    ValueError
        If ``predictions`` has no ``predictions`` group or no ``draw`` dimension.
    """
    import xarray as xr

    pred = predictions
    if not isinstance(pred, xr.Dataset):
        if "predictions" not in getattr(pred, "groups", lambda: [])():
            raise ValueError(f"predictions must be an InferenceData with a predictions group or a Dataset, got {pred!r}")
        pred = pred["predictions"]
    if "draw" not in pred.dims:
        raise ValueError(f"predictions has no draw dimension (dims {tuple(pred.dims)}): nothing to average")
    out = {}
    for name, da in pred.data_vars.items():
        da = da.astype(np.float64)
        if name.endswith("_class_log_prob"):
            out[name[: -len("_log_prob")] + "_prob"] = np.exp(da).mean("draw")
        elif name.endswith("_log_density"):
            top = da.max("draw")  # log-mean-exp without overflow
            out[name] = top + np.log(np.exp(da - top).mean("draw"))
        else:
            out[f"{name}_mean"] = da.mean("draw")
    return xr.Dataset(out, attrs={**pred.attrs, "num_draws": int(pred.sizes["draw"])})


def _merge_means(a, b):
    """The :func:`predictive_mean` of two runs of draws from those of each."""
    import xarray as xr

    na, nb = a.attrs["num_draws"], b.attrs["num_draws"]
    out = {}
    for name in a.data_vars:
        if name.endswith("_log_density"):
            out[name] = np.logaddexp(a[name] + np.log(na), b[name] + np.log(nb)) - np.log(na + nb)
        else:
            out[name] = (na * a[name] + nb * b[name]) / (na + nb)
    return xr.Dataset(out, attrs={**b.attrs, "num_draws": na + nb})
