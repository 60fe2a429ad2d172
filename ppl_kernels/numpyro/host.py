"""What the analysis layer needs from a finished NumPyro run, in one place.

The twin of :mod:`ppl_kernels.pyro.host`: the same names with the same
meaning.  :mod:`ppl_kernels._host` picks one of the two by the run's type; the
ArviZ export, the diagnostics, the comparisons and the runner read runs only
through these functions, so no other module knows a host's ``MCMC`` internals.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random
from numpyro.handlers import seed as _seed
from numpyro.handlers import substitute, trace
from numpyro.infer import MCMC, init_to_value

from .. import dynamics
from ..config import STAT_FIELDS
from ..sites import is_factor, shared_summed_site, site_info, site_kind, site_outputs, summed_outputs, to_numpy
from . import epochs, model
from .kernel import SGHMC

__all__ = [
    "BACKEND", "LIBRARY", "ARRAY_LIBRARY", "is_finished", "kernel_of", "draws", "statistics", "adaptation", "model_arguments",
    "run_lengths",
    "sample", "last_states", "continue_run", "find_subsample_plates", "Evaluator", "record_steps",
]

BACKEND = "numpyro"
LIBRARY = "numpyro"
ARRAY_LIBRARY = "jax"

find_subsample_plates = model.find_subsample_plates


def is_finished(mcmc) -> bool:
    """Whether ``mcmc`` has been run (its draws can be read)."""
    return bool(getattr(mcmc, "_states", None) is not None)


def kernel_of(mcmc):
    """The run's kernel."""
    return mcmc.sampler


def draws(mcmc) -> dict[str, np.ndarray]:
    """Constrained draws, ``{site: array (chain, draw, ...)}``."""
    return {k: to_numpy(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}


def statistics(mcmc) -> dict[str, np.ndarray]:
    """The per-draw statistics, ``{name: array (chain, draw)}`` (the kernel's default fields)."""
    fields = mcmc.get_extra_fields(group_by_chain=True)
    return {name: np.asarray(fields[name]) for name in STAT_FIELDS}


def adaptation(mcmc) -> list:
    """Per chain, the kernel's :meth:`~ppl_kernels.numpyro.SGHMC.adapted` values at the
    end of the run (from ``mcmc.last_state``)."""
    out = mcmc.sampler.adapted(mcmc.last_state)
    return out if isinstance(out, list) else [out]


def model_arguments(mcmc):
    """``(args, kwargs)`` of the last ``run`` (NumPyro's ``MCMC`` keeps them; it has no
    public accessor)."""
    return tuple(mcmc._args), dict(mcmc._kwargs)


def run_lengths(mcmc) -> dict[str, int]:
    return {"num_chains": int(mcmc.num_chains), "num_samples": int(mcmc.num_samples),
            "num_warmup": int(mcmc.num_warmup)}


def sample(*, model, potential_fn, init_params, model_args, model_kwargs, kernel_kwargs, num_samples, num_warmup,
           num_chains, seed, chain_method, progress_bar):
    """Run :class:`~ppl_kernels.numpyro.SGHMC` under NumPyro's ``MCMC`` (see
    :func:`ppl_kernels.runner.sample`)."""
    kernel = SGHMC(model, potential_fn, **kernel_kwargs)
    kernel.rng_seed = seed
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                chain_method=chain_method, progress_bar=progress_bar)
    mcmc.run(random.PRNGKey(seed), *model_args, init_params=init_params, **model_kwargs)
    jax.effects_barrier()  # the kernel's warnings, host calls from the compiled loop, are out before we return
    return mcmc


def last_states(mcmc):
    """The chains' states at the end of a finished run, as :func:`continue_run` takes them
    (one state with a leading chain axis when there are several chains; NumPy leaves, so
    that it pickles)."""
    return jax.device_get(mcmc.last_state)


def continue_run(kernel, states, *, num_warmup, num_samples, num_chains, chain_method, progress_bar, model_args,
                 model_kwargs, mcmc=None):
    """``num_samples`` more samples of every chain from ``states``, exactly as if the run that
    made them had gone on (NumPyro's ``post_warmup_state``); ``num_warmup`` is that run's
    warmup length, which fixes what its adaptation learnt.  ``mcmc``, a finished run of
    ``kernel`` with as many samples, is reused (its compiled step stays)."""
    if mcmc is None or mcmc.num_samples != num_samples or mcmc.sampler is not kernel:
        mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, num_chains=num_chains,
                    chain_method=chain_method, progress_bar=progress_bar)
    mcmc.post_warmup_state = states
    with _shared_jit_wrappers():
        mcmc.run(states.rng_key, *model_args, **model_kwargs)
    jax.effects_barrier()
    return mcmc


# (function, options) -> its jit wrapper, for the last few functions: NumPyro keeps as many of its own.
_JIT_WRAPPERS: OrderedDict = OrderedDict()


@contextlib.contextmanager
def _shared_jit_wrappers(size: int = 8):
    """While a continuation runs, one jit wrapper per function and options.

    NumPyro 0.22's ``fori_collect`` without a progress bar wraps its (cached) loop body in
    a fresh ``jit`` at every run and passes that wrapper to the compiled loop as a static
    argument; wrappers compare by identity, so every ``MCMC.run`` compiled the sampling
    loop anew (about 1 s a chunk here, the cost of each streamed chunk).  NumPyro wraps
    through ``numpyro.util.maybe_jit``, looked up at each call, which this shares.
    """
    import numpyro.util

    original = numpyro.util.maybe_jit

    def shared(fn, *args, **kwargs):
        key = (fn, args, tuple(sorted(kwargs.items())))
        try:
            wrapper = _JIT_WRAPPERS.pop(key)
        except TypeError:  # unhashable options: as NumPyro would
            return original(fn, *args, **kwargs)
        except KeyError:
            wrapper = original(fn, *args, **kwargs)
        _JIT_WRAPPERS[key] = wrapper
        while len(_JIT_WRAPPERS) > size:
            _JIT_WRAPPERS.popitem(last=False)
        return wrapper

    numpyro.util.maybe_jit = shared
    try:
        yield
    finally:
        numpyro.util.maybe_jit = original


# -- pointwise evaluation at posterior draws -------------------------------------------------------
def _trace(model_fn, draw, idx, key, args, kwargs, nesting=None):
    idx = {k: jnp.asarray(v) for k, v in idx.items()}  # the plate accepts only jax arrays
    conditioned = substitute(substitute(model_fn, data=idx), data=draw)
    if nesting is not None:  # the summed sites at their whole supports: the observed sites' marginal densities
        conditioned = model.enumerated(conditioned, nesting)
    with warnings.catch_warnings():
        # Chunks other than the plate's subsample_size are deliberate here.
        warnings.filterwarnings("ignore", message="subsample_size does not match", category=UserWarning)
        return trace(_seed(conditioned, key)).get_trace(*args, **kwargs)


class Evaluator:
    """Traces a model at given latent values and plate indices, vectorised over draws
    (the interface :mod:`ppl_kernels.arviz` drives; the twin of Pyro's)."""

    fixed_draw_chunks = True  # jitted: pad the last chunk of draws so that it compiles once

    def __init__(self, model_fn, args, kwargs, seed, plates=None, values=None):
        self.model, self.args, self.kwargs, self.seed = model_fn, tuple(args), dict(kwargs), seed
        # values (a draw's latent values): the plates are found without sampling the latent sites
        strategy = None if values is None else init_to_value(values=values)
        self.plates = find_subsample_plates(model_fn, self.args, self.kwargs, strategy) if plates is None else list(plates)
        self._compiled = {}
        self._nesting = None  # the plate nesting, where the model has discrete sites the kernel summed out

    def chunk_length(self, plate, chunk_size):
        return min(chunk_size, plate.size)

    def sites(self, draw, idx) -> dict:
        tr = _trace(self.model, draw, idx, random.PRNGKey(0), self.args, self.kwargs)
        subsampled = {p.name for p in self.plates}
        kinds = {}
        for name, site in tr.items():
            if site["type"] == "deterministic":
                kinds[name] = "deterministic"
            elif site["type"] == "sample" and not is_factor(site["fn"]):
                kinds[name] = site_kind(name, site, draw)
        shared = {}
        if "summed" in kinds.values():
            self._nesting = model.plate_nesting(tr)
            nodes = _trace(self.model, draw, idx, random.PRNGKey(0), self.args, self.kwargs, self._nesting)
            shared = {n: shared_summed_site(nodes, n) for n, k in kinds.items() if k == "observed"}
        return {n: site_info(n, tr[n], k, subsampled, shared.get(n)) for n, k in kinds.items()}

    def evaluate(self, draws, draw_ids, chunk_id, idx, requests, targets, plate=None):
        # ``plate`` (the plate whose chunk ``idx`` holds) matters to Pyro's twin only.
        # Array arguments are traced (not baked into the program as constants).
        leaves, treedef = jax.tree.flatten((self.args, self.kwargs))
        is_array = [isinstance(x, (np.ndarray, jax.Array)) for x in leaves]
        frozen = tuple(sorted((n, tuple(sorted(w))) for n, w in requests.items()))
        static = tuple(None if a else x for x, a in zip(leaves, is_array))
        # Compiled once per evaluator and request, never across exports: a model that reads
        # global (or mutated) data has that data baked into its compiled program.
        fn = self._compiled.get(frozen)
        if fn is None:
            model_fn = self.model  # neither self nor the arrays: the cache must not keep a run's data alive
            nesting = self._nesting

            def one(draw, draw_id, chunk_id, base_key, idx, targets, arrays):
                it = iter(arrays)
                args, kwargs = jax.tree.unflatten(treedef, [next(it) if a else x for x, a in zip(static, is_array)])
                key = random.fold_in(random.fold_in(base_key, draw_id), chunk_id)
                tr = _trace(model_fn, draw, idx, key, args, kwargs)
                out = {n: site_outputs(tr[n], w, targets.get(n), jnp.moveaxis) for n, w in requests.items()}
                if nesting is not None:  # the densities again, with the summed sites summed over their values
                    out = summed_outputs(out, requests, tr, targets,
                                         lambda t: _trace(model_fn, {**draw, **t}, idx, key, args, kwargs, nesting),
                                         model.REDUCTIONS.logsumexp, jnp.moveaxis)
                return out

            fn = self._compiled[frozen] = jax.jit(jax.vmap(one, in_axes=(0, 0, None, None, None, None, None)))
        arrays = [x for x, a in zip(leaves, is_array) if a]
        base_key = random.PRNGKey(self.seed)
        res = fn(draws, jnp.asarray(draw_ids), jnp.asarray(chunk_id), base_key, idx, targets, arrays)
        return {n: {w: np.asarray(v) for w, v in r.items()} for n, r in res.items()}


# -- one integrator step at a time ------------------------------------------------------------------
#: The fields a diverging step leaves as they were.
_MOVED = ("z", "r", "grad", "potential_energy", "lp")


def record_steps(*, model, potential_fn, model_args, model_kwargs, init_params, kernel_kwargs, num_draws, seed,
                 on_step, keep_state):
    """Run the kernel's integrator one public :func:`~ppl_kernels.numpyro.sghmc_step` at a
    time and return what ``on_step`` computes at every step.

    Each draw resamples the momentum (when configured) as :func:`sghmc_draw` does,
    then runs ``num_steps`` steps; a step whose result is non-finite is flagged
    ``diverging`` and undone.  ``on_step(before, after, coefficients, step_size,
    noise_temperature)`` gets per-site ``(θ, r, ∇Ũ)`` dicts and the per-site
    ``(inv_mass', friction')`` and returns a pytree of scalars; it runs inside
    ``jax.jit`` (operators and ``.sum()`` only).

    Returns
    -------
    (config, records, sizes)
        ``records`` has ``terms`` (``on_step``'s output), ``step_size``,
        ``phase``, ``noise_temperature``, ``diverging`` (and ``state`` with
        ``keep_state``), each with a leading step axis; ``sizes`` the
        unconstrained size of every site.
    """
    from .integrator import _normal, sghmc_step

    kernel = SGHMC(model, potential_fn, **kernel_kwargs)
    state = kernel.init(random.PRNGKey(seed), 0, init_params, model_args, model_kwargs)
    static = kernel.static
    cfg, lay = static.cfg, static.layout
    ones = jnp.ones(lay.size)
    coefficients = (lay.unflatten(static.inv_mass * ones), lay.unflatten(static.friction * ones))

    def one_draw(state, k):
        eps, beta, phase, noise_t = cfg.draw_settings(k, jnp)
        key, key_res, key_loop, key_b = random.split(state.rng_key, 4)
        if cfg.resample_scale is not None:
            r = dynamics.resampled_momentum(_normal(key_res, lay.flatten(state.r)), beta, static.mass)
            state = state._replace(r=lay.unflatten(dynamics.fresh_momentum(cfg.integrator, r, lay.flatten(state.grad), eps)))
        renew = epochs.renew_draws(static.plates, key_b, cfg.num_steps)

        def one_step(st, xs):
            key_xi, renew_j = xs
            xi = _normal(key_xi, lay.flatten(st.r)) if cfg.injects_noise else 0.0
            out = sghmc_step(static, st, eps, noise_t, xi, renew_j, model_args, model_kwargs)
            bad = ~(jnp.all(jnp.isfinite(lay.flatten(out.z))) & jnp.all(jnp.isfinite(lay.flatten(out.r)))
                    & jnp.isfinite(out.potential_energy))
            out = out._replace(**{f: jax.tree.map(lambda new, old: jnp.where(bad, old, new), getattr(out, f),
                                                  getattr(st, f)) for f in _MOVED})
            rec = {"terms": on_step((st.z, st.r, st.grad), (out.z, out.r, out.grad), coefficients, eps, noise_t),
                   "step_size": jnp.asarray(eps, jnp.result_type(float)), "phase": jnp.asarray(phase, jnp.int32),
                   "diverging": bad, "noise_temperature": jnp.asarray(noise_t, jnp.result_type(float))}
            if keep_state:
                rec["state"] = {"theta": out.z, "r": out.r, "grad": out.grad}
            return out, rec

        state, recs = lax.scan(one_step, state, (random.split(key_loop, cfg.num_steps), renew))
        return state._replace(i=k + 1, rng_key=key), recs

    _, recs = jax.jit(lambda s: lax.scan(one_draw, s, jnp.arange(num_draws, dtype=jnp.int32)))(state)
    recs = jax.tree.map(lambda x: np.asarray(x).reshape(num_draws * cfg.num_steps, *np.shape(x)[2:]), recs)
    return cfg, recs, dict(zip(lay.names, (int(np.prod(s)) for s in lay.shapes.values())))
