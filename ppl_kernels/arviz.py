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

import dataclasses
import datetime
import inspect
import json
import warnings
from collections import OrderedDict
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Mapping, NamedTuple

import numpy as np

from . import _host
from . import schedules as _sched

__all__ = ["to_inference_data"]

_PREDICTION_KEYS = ("model_args", "model_kwargs", "observed", "coords", "dims")


# -- what the model's sites are --------------------------------------------------------------
class _Site(NamedTuple):
    """A model site as the chunked evaluation needs it."""

    kind: str  # "latent", "observed" or "deterministic"
    plate: str | None  # the subsampled plate the site lies in, if any
    dim: int  # that plate's dim, counted from the right of the batch shape
    event_dim: int
    support: Any  # enumerated support values (numpy) or None


def _site_info(name, site, kind, subsampled) -> _Site:
    plates = [f for f in site["cond_indep_stack"] if f.name in subsampled]
    if len(plates) > 1:
        raise ValueError(f"site {name!r} lies in several subsampled plates {[f.name for f in plates]}; not supported")
    fn = site.get("fn")
    event_dim = len(fn.event_shape) if fn is not None and kind != "deterministic" else 0
    support = None
    if kind == "observed" and getattr(fn, "has_enumerate_support", False):
        support = _to_numpy(fn.enumerate_support(expand=False)).reshape(-1)
    return _Site(kind, plates[0].name if plates else None, plates[0].dim if plates else 0, event_dim, support)


def _site_outputs(site, whats, target, moveaxis) -> dict:
    """The requested per-site quantities of one traced site (same code for torch and jax).

    ``value``: the site's value; ``log_prob``: its unscaled log density;
    ``classes``: the log density of every support value, support last;
    ``target``: the log density of the held-out target.
    """
    fn, value = site.get("fn"), site["value"]
    out = {}
    if "value" in whats:
        out["value"] = value
    if "log_prob" in whats:
        out["log_prob"] = fn.log_prob(value)
    if "classes" in whats:
        out["classes"] = moveaxis(fn.log_prob(fn.enumerate_support(expand=False)), 0, -1)
    if "target" in whats:
        out["target"] = fn.log_prob(target)
    return out


def _to_numpy(x) -> np.ndarray:
    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    # JAX gives int32 where torch gives int64: one dtype whichever backend ran.
    return x.astype(np.int64) if np.issubdtype(x.dtype, np.signedinteger) else x


#: Compiled NumPyro evaluations, by model, argument structure and requested quantities.
_JIT_CACHE: OrderedDict = OrderedDict()


# -- the two backends' model evaluators --------------------------------------------------------
def _numpyro_trace(model, draw, idx, key, args, kwargs):
    import jax.numpy as jnp
    from numpyro.handlers import seed, substitute, trace

    idx = {k: jnp.asarray(v) for k, v in idx.items()}  # the plate accepts only jax arrays
    conditioned = substitute(substitute(model, data=idx), data=draw)
    with warnings.catch_warnings():
        # Chunks other than the plate's subsample_size are deliberate here.
        warnings.filterwarnings("ignore", message="subsample_size does not match", category=UserWarning)
        return trace(seed(conditioned, key)).get_trace(*args, **kwargs)


class _NumPyroEvaluator:
    """Traces a NumPyro model at given latent values and plate indices, vectorised over draws."""

    fixed_draw_chunks = True  # jitted: pad the last chunk of draws so that it compiles once

    def __init__(self, model, args, kwargs, seed):
        from .numpyro import model as m

        self.model, self.args, self.kwargs, self.seed = model, tuple(args), dict(kwargs), seed
        self.plates = m.find_subsample_plates(model, self.args, self.kwargs)

    def chunk_length(self, plate, chunk_size):
        return min(chunk_size, plate.size)

    def sites(self, draw, idx) -> dict[str, _Site]:
        import jax

        tr = _numpyro_trace(self.model, draw, idx, jax.random.PRNGKey(0), self.args, self.kwargs)
        subsampled = {p.name for p in self.plates}
        out = {}
        for name, site in tr.items():
            if site["type"] == "deterministic":
                out[name] = _site_info(name, site, "deterministic", subsampled)
            elif site["type"] == "sample" and not _is_factor(site["fn"]):
                out[name] = _site_info(name, site, _kind(name, site, draw), subsampled)
        return out

    def evaluate(self, draws, draw_ids, chunk_id, idx, requests, targets):
        import jax
        import jax.numpy as jnp

        # Array arguments are traced (not baked into the program as constants).
        leaves, treedef = jax.tree.flatten((self.args, self.kwargs))
        is_array = [isinstance(x, (np.ndarray, jax.Array)) for x in leaves]
        frozen = tuple(sorted((n, tuple(sorted(w))) for n, w in requests.items()))
        static = tuple(None if a else x for x, a in zip(leaves, is_array))
        cache_key = (self.model, treedef, static, frozen)
        try:
            fn = _JIT_CACHE.get(cache_key)
        except TypeError:  # an unhashable static argument: compile for this call only
            cache_key, fn = None, None
        if fn is None:
            model = self.model  # neither self nor the arrays: the cache must not keep a run's data alive

            def one(draw, draw_id, chunk_id, base_key, idx, targets, arrays):
                it = iter(arrays)
                args, kwargs = jax.tree.unflatten(treedef, [next(it) if a else x for x, a in zip(static, is_array)])
                key = jax.random.fold_in(jax.random.fold_in(base_key, draw_id), chunk_id)
                tr = _numpyro_trace(model, draw, idx, key, args, kwargs)
                return {n: _site_outputs(tr[n], w, targets.get(n), jnp.moveaxis) for n, w in requests.items()}

            fn = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None, None, None, None)))
            if cache_key is not None:
                # Exports of the same model (a sweep, repeated exports) reuse the compiled program.
                _JIT_CACHE[cache_key] = fn
                while len(_JIT_CACHE) > 16:
                    _JIT_CACHE.popitem(last=False)
        arrays = [x for x, a in zip(leaves, is_array) if a]
        base_key = jax.random.PRNGKey(self.seed)
        res = fn(draws, jnp.asarray(draw_ids), jnp.asarray(chunk_id), base_key, idx, targets, arrays)
        return {n: {w: np.asarray(v) for w, v in r.items()} for n, r in res.items()}


class _PyroEvaluator:
    """Traces a Pyro model at given latent values and plate indices, one draw at a time."""

    fixed_draw_chunks = False

    def __init__(self, model, args, kwargs, seed):
        from .pyro import model as m

        self.model, self.args, self.kwargs, self.seed = model, tuple(args), dict(kwargs), seed
        self.plates = m.find_subsample_plates(model, self.args, self.kwargs)

    def chunk_length(self, plate, chunk_size):
        # Pyro's plate insists that a given subsample has exactly subsample_size indices.
        return plate.subsample_size

    def _trace(self, draw, idx):
        import torch
        from pyro import poutine

        data = {k: torch.as_tensor(v) for k, v in draw.items()}
        data.update({k: torch.as_tensor(v) for k, v in idx.items()})
        return poutine.trace(poutine.condition(self.model, data=data)).get_trace(*self.args, **self.kwargs)

    def sites(self, draw, idx) -> dict[str, _Site]:
        import torch
        from pyro.poutine.subsample_messenger import _Subsample

        subsampled = {p.name for p in self.plates}
        with torch.no_grad():
            tr = self._trace(draw, idx)
        out = {}
        for name, site in tr.nodes.items():
            if site["type"] != "sample" or isinstance(site["fn"], _Subsample) or _is_factor(site["fn"]):
                continue
            kind = "deterministic" if site["infer"].get("_deterministic") else _kind(name, site, draw)
            out[name] = _site_info(name, site, kind, subsampled)
        return out

    def evaluate(self, draws, draw_ids, chunk_id, idx, requests, targets):
        import torch

        targets = {k: torch.as_tensor(v) for k, v in targets.items()}
        rows = []
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            for s, draw_id in enumerate(draw_ids):
                # Reproducible per (draw, chunk), and independent between chunks.
                torch.manual_seed(hash((self.seed, int(draw_id), int(chunk_id))) % 2**63)
                tr = self._trace({k: v[s] for k, v in draws.items()}, idx)
                rows.append({n: _site_outputs(tr.nodes[n], w, targets.get(n), torch.movedim)
                             for n, w in requests.items()})
        return {n: {w: np.stack([_to_numpy(r[n][w]) for r in rows]) for w in requests[n]} for n in requests}


_EVALUATORS = {"numpyro": _NumPyroEvaluator, "pyro": _PyroEvaluator}


def _kind(name, site, draw) -> str:
    # Conditioning (Pyro) marks the latent sites observed: the latent sites are the draw's keys.
    return "latent" if name in draw or not site["is_observed"] else "observed"


def _is_factor(fn) -> bool:
    # ``factor`` sites (Unit distributions) carry no data point: not part of the likelihood.
    return type(fn).__name__ == "Unit"


# -- chunked evaluation over draws and data ------------------------------------------------------
def _output_axis(site: _Site, what: str) -> int:
    """Axis of the subsampled plate in an output array (negative, from the right)."""
    if what == "value":
        return site.dim - site.event_dim
    return site.dim - 1 if what == "classes" else site.dim


def _store(out, name, what, arr, row, num_rows, site: _Site, start, n_valid, size):
    """Write one evaluated chunk into its place in the full output (allocated on first use)."""
    axis = arr.ndim + _output_axis(site, what) if site.plate is not None else None
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


def _pointwise(ev, draws, requests, sites, *, chunk_size, draw_chunk_size, targets=None, first_draw_only=()):
    """Evaluate ``requests`` ({site: {what, ...}}) at every draw and, for sites inside a
    subsampled plate, over the whole plate in consecutive chunks of indices.

    Returns ``{site: {what: array (num_draws, ...)}}`` in full-data order; the
    ``(site, what)`` pairs in ``first_draw_only`` keep the first draw only.  Memory beyond
    the outputs is one chunk of draws times one chunk of data.  Every evaluation
    asks for the same quantities at the same shapes, so NumPyro compiles once.
    """
    targets = targets or {}
    num_draws = len(next(iter(draws.values())))
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
                res = ev.evaluate(chunk_draws, ids, start, idx, {n: requests[n] for n in names}, tgt)
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


def _kernel_json(cfg) -> str:
    """The kernel arguments as JSON, schedules as their ``to_dict`` (for programs)."""

    def fmt(v):
        if isinstance(v, _sched.Schedule):
            return v.to_dict()
        if isinstance(v, Mapping):
            return {k: np.asarray(x).tolist() for k, x in v.items()}
        return v

    return json.dumps({f.name: fmt(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)})


def _attrs(mcmc, backend, kernel) -> dict[str, Any]:
    from . import __version__

    lib = "pyro-ppl" if backend == "pyro" else "numpyro"
    array_lib = "torch" if backend == "pyro" else "jax"
    seed = getattr(mcmc, "_ppl_seed", None)
    model = getattr(kernel, "model", None)
    init = getattr(kernel, "init_strategy", None) if backend == "pyro" else getattr(kernel, "_init_strategy", None)
    warmup = mcmc.warmup_steps if backend == "pyro" else mcmc.num_warmup
    return {
        "created_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        "arviz_version": _version("arviz"),
        "inference_library": backend,
        "inference_library_version": _version(lib),
        f"{array_lib}_version": _version(array_lib),
        "ppl_kernels_version": __version__,
        "backend": backend,
        "kernel": f"ppl_kernels.{backend}.SGHMC",
        **kernel.config.to_attrs(),
        "init_strategy": _name(init),
        "model": _name(model) if model is not None else "None",
        "potential_fn": _name(kernel.potential_fn if backend == "pyro" else kernel._potential_fn),
        "kernel_json": _kernel_json(kernel.config),
        # NetCDF attributes cannot be None: an unknown seed (a user-made MCMC) is the string "None".
        "seed": int(seed) if seed is not None else "None",
        "num_chains": int(mcmc.num_chains),
        "num_samples": int(mcmc.num_samples),
        "num_warmup": int(warmup),
    }


def _unconstrained_shapes(kernel, backend, draws) -> str:
    """JSON ``{site: shape}`` of the space the kernel moves in (for the temperature checks)."""
    transforms = getattr(kernel, "transforms", None) or {}
    out = {}
    for k, v in draws.items():
        shape, t = tuple(v.shape[2:]), transforms.get(k)
        if t is not None:  # Pyro keeps constrained -> unconstrained maps, NumPyro the inverse
            shape = t.forward_shape(shape) if backend == "pyro" else t.inverse_shape(shape)
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
        self.ev = evaluator(model, self.args, self.kwargs, seed)
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
    import arviz as az

    for name, v in (("chunk_size", chunk_size), ("draw_chunk_size", draw_chunk_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")
    predictions = _check_predictions("predictions", predictions)
    posterior_predictive = _check_predictions("posterior_predictive", posterior_predictive)
    backend = _host.backend_of(mcmc)
    kernel = _host.kernel_of(mcmc)
    if not hasattr(kernel, "config"):
        raise ValueError(f"mcmc must have been run with ppl_kernels' SGHMC, got a {type(kernel).__name__} kernel")
    coords, dims = dict(coords or {}), dict(dims or {})
    attrs = _attrs(mcmc, backend, kernel)
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
        attrs["unconstrained_shapes"] = _unconstrained_shapes(kernel, backend, draws)
        groups = {"posterior": group({k: _to_numpy(v) for k, v in draws.items()})}
        groups["sample_stats"] = group(stats)
        return az.InferenceData(**groups)

    args = tuple(mcmc._args if model_args is None else model_args)
    kwargs = dict(mcmc._kwargs if model_kwargs is None else model_kwargs)
    seed = attrs["seed"] if isinstance(attrs["seed"], int) else 0
    opts = dict(chunk_size=chunk_size, draw_chunk_size=draw_chunk_size)

    ev = _EVALUATORS[backend](model, args, kwargs, seed)
    sample0 = {k: _to_numpy(v)[0, 0] for k, v in draws.items()}
    sites = ev.sites(sample0, _first_indices(ev, chunk_size))
    latent = [n for n, s in sites.items() if s.kind == "latent"]
    observed = [n for n, s in sites.items() if s.kind == "observed"]
    # Check the held-out specifications before the long passes over the data.
    held_out = {
        name: _HeldOut(name, spec, _EVALUATORS[backend], model, sites, sample0, seed + 1, chunk_size)
        for name, spec in (("posterior_predictive", posterior_predictive), ("predictions", predictions))
        if spec is not None
    }
    attrs["unconstrained_shapes"] = _unconstrained_shapes(kernel, backend, {k: draws[k] for k in latent})
    flat = {k: _to_numpy(draws[k]).reshape(num_chains * num_draws, *draws[k].shape[2:]) for k in latent}

    # One pass: global deterministic sites, the observed sites' pointwise log-likelihood
    # and (first draw only) their values.
    requests = {n: {"value"} for n, s in sites.items() if s.kind == "deterministic" and s.plate is None}
    requests.update({n: {"value", "log_prob"} if log_likelihood else {"value"} for n in observed})
    first_only = {(n, "value") for n in observed}
    res = _pointwise(ev, flat, requests, sites, first_draw_only=first_only, **opts) if requests else {}
    posterior = {k: by_chain(v) for k, v in flat.items()}
    posterior.update({n: by_chain(res[n]["value"]) for n, s in sites.items() if s.kind == "deterministic" and n in res})
    groups = {"posterior": group(posterior), "sample_stats": group(stats)}
    if log_likelihood and observed:
        groups["log_likelihood"] = group({n: by_chain(res[n]["log_prob"]) for n in observed})
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
