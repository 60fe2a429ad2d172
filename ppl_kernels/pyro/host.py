"""What the analysis layer needs from a finished Pyro run, in one place.

The twin of :mod:`ppl_kernels.numpyro.host`: the same names with the same
meaning.  :mod:`ppl_kernels._host` picks one of the two by the run's type; the
ArviZ export, the diagnostics, the comparisons and the runner read runs only
through these functions, so no other module knows a host's ``MCMC`` internals.
"""

from __future__ import annotations

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import MCMC
from pyro.poutine.subsample_messenger import _Subsample

from .. import dynamics
from ..config import STAT_FIELDS
from ..sites import is_factor, site_info, site_kind, site_outputs, to_numpy
from . import epochs, model
from .kernel import SGHMC

__all__ = [
    "BACKEND", "LIBRARY", "ARRAY_LIBRARY", "is_finished", "kernel_of", "draws", "statistics", "adaptation", "model_arguments",
    "run_lengths",
    "sample", "last_states", "continue_run", "find_subsample_plates", "Evaluator", "record_steps",
]

BACKEND = "pyro"
LIBRARY = "pyro-ppl"
ARRAY_LIBRARY = "torch"

find_subsample_plates = model.find_subsample_plates


def is_finished(mcmc) -> bool:
    """Whether ``mcmc`` has been run (its draws can be read)."""
    # Pyro's MCMC holds one diagnostics dict per chain once that chain has run, None before
    per_chain = getattr(mcmc, "_diagnostics", None)
    return bool(per_chain) and all(d is not None for d in per_chain)


def kernel_of(mcmc):
    """The run's kernel."""
    return mcmc.kernel


def draws(mcmc) -> dict[str, np.ndarray]:
    """Constrained draws, ``{site: array (chain, draw, ...)}``."""
    return {k: to_numpy(v) for k, v in mcmc.get_samples(group_by_chain=True).items()}


def statistics(mcmc) -> dict[str, np.ndarray]:
    """The per-draw statistics, ``{name: array (chain, draw)}``, as each chain's kernel
    returned them from ``diagnostics()``.  (The public ``MCMC.diagnostics()`` holds
    the same dicts but first computes ESS and R-hat of every site, which takes
    minutes for a large network.)"""
    per_chain = mcmc._diagnostics
    return {name: np.stack([np.asarray(d[name]) for d in per_chain]) for name in STAT_FIELDS}


def adaptation(mcmc) -> list:
    """Per chain, the kernel's :meth:`~ppl_kernels.pyro.SGHMC.adapted` values at the end of
    the run (each chain's kernel returned them from ``diagnostics()``)."""
    return [d["adaptation"] for d in mcmc._diagnostics]


def model_arguments(mcmc):
    """``(args, kwargs)`` of the last ``run`` (Pyro's ``MCMC`` keeps them; it has no
    public accessor)."""
    return tuple(mcmc._args), dict(mcmc._kwargs)


def run_lengths(mcmc) -> dict[str, int]:
    return {"num_chains": int(mcmc.num_chains), "num_samples": int(mcmc.num_samples),
            "num_warmup": int(mcmc.warmup_steps)}


def sample(*, model, potential_fn, init_params, model_args, model_kwargs, kernel_kwargs, num_samples, num_warmup,
           num_chains, seed, chain_method, progress_bar):
    """Run :class:`~ppl_kernels.pyro.SGHMC` under Pyro's ``MCMC`` (see
    :func:`ppl_kernels.runner.sample`; several chains run in processes, Pyro's way,
    whatever ``chain_method``)."""
    pyro.set_rng_seed(seed)
    kernel = SGHMC(model, potential_fn, **kernel_kwargs)
    kernel.rng_seed = seed
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=num_warmup, num_chains=num_chains,
                initial_params=init_params, disable_progbar=not progress_bar)
    mcmc.run(*model_args, **model_kwargs)
    return mcmc


def last_states(mcmc):
    """The chains' states at the end of a finished run, as :func:`continue_run` takes them
    (a list, one per chain; each chain's kernel returned its own from ``diagnostics()``)."""
    return [d["last_state"] for d in mcmc._diagnostics]


def continue_run(kernel, states, *, num_warmup, num_samples, num_chains, chain_method, progress_bar, model_args,
                 model_kwargs, mcmc=None):
    """``num_samples`` more samples of every chain from ``states``, exactly as if the run that
    made them had gone on (:meth:`ppl_kernels.pyro.SGHMC.continue_from`); ``num_warmup`` is
    that run's warmup length, which fixes what its adaptation learnt.  (``mcmc`` and
    ``chain_method``: the NumPyro twin's; Pyro's ``MCMC`` is made anew.)"""
    kernel.continue_from(states, num_warmup=num_warmup)
    initial = None if num_chains == 1 else {k: torch.stack([s.z[k] for s in states]) for k in states[0].z}
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=0, num_chains=num_chains, initial_params=initial,
                disable_progbar=not progress_bar)
    mcmc.run(*model_args, **model_kwargs)
    return mcmc


# -- pointwise evaluation at posterior draws -------------------------------------------------------
class Evaluator:
    """Traces a model at given latent values and plate indices, one draw at a time
    (the interface :mod:`ppl_kernels.arviz` drives; the twin of NumPyro's)."""

    fixed_draw_chunks = False

    def __init__(self, model_fn, args, kwargs, seed, plates=None):
        self.model, self.args, self.kwargs, self.seed = model_fn, tuple(args), dict(kwargs), seed
        self.plates = find_subsample_plates(model_fn, self.args, self.kwargs) if plates is None else list(plates)

    def chunk_length(self, plate, chunk_size):
        # Pyro's plate insists that a given subsample has exactly subsample_size indices.
        return plate.subsample_size

    def _trace(self, draw, idx):
        data = {k: torch.as_tensor(v) for k, v in draw.items()}
        data.update({k: torch.as_tensor(v) for k, v in idx.items()})
        return poutine.trace(poutine.condition(self.model, data=data)).get_trace(*self.args, **self.kwargs)

    def sites(self, draw, idx) -> dict:
        subsampled = {p.name for p in self.plates}
        with torch.no_grad():
            tr = self._trace(draw, idx)
        out = {}
        for name, site in tr.nodes.items():
            if site["type"] != "sample" or isinstance(site["fn"], _Subsample) or is_factor(site["fn"]):
                continue
            kind = "deterministic" if site["infer"].get("_deterministic") else site_kind(name, site, draw)
            out[name] = site_info(name, site, kind, subsampled)
        return out

    def evaluate(self, draws, draw_ids, chunk_id, idx, requests, targets):
        targets = {k: torch.as_tensor(v) for k, v in targets.items()}
        rows = []
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            for s, draw_id in enumerate(draw_ids):
                # Reproducible per (draw, chunk), and independent between chunks.
                torch.manual_seed(hash((self.seed, int(draw_id), int(chunk_id))) % 2**63)
                tr = self._trace({k: v[s] for k, v in draws.items()}, idx)
                rows.append({n: site_outputs(tr.nodes[n], w, targets.get(n), torch.movedim)
                             for n, w in requests.items()})
        return {n: {w: np.stack([to_numpy(r[n][w]) for r in rows]) for w in requests[n]} for n in requests}


# -- one integrator step at a time ------------------------------------------------------------------
#: The fields a diverging step leaves as they were.
_MOVED = ("z", "r", "grad", "potential_energy", "lp")


def record_steps(*, model, potential_fn, model_args, model_kwargs, init_params, kernel_kwargs, num_draws, seed,
                 on_step, keep_state):
    """Run the kernel's integrator one public :func:`~ppl_kernels.pyro.sghmc_step` at a
    time and return what ``on_step`` computes at every step.

    Each draw resamples the momentum (when configured) as :func:`sghmc_draw` does,
    then runs ``num_steps`` steps; a step whose result is non-finite is flagged
    ``diverging`` and undone.  ``on_step(before, after, coefficients, step_size,
    noise_temperature)`` gets per-site ``(θ, r, ∇Ũ)`` dicts and the per-site
    ``(inv_mass', friction')`` and returns a nested dict of scalars.

    Returns
    -------
    (config, records, sizes)
        ``records`` has ``terms`` (``on_step``'s output), ``step_size``,
        ``phase``, ``noise_temperature``, ``diverging`` (and ``state`` with
        ``keep_state``), each with a leading step axis; ``sizes`` the
        unconstrained size of every site.
    """
    from .integrator import _finite, _normal, sghmc_step

    pyro.set_rng_seed(seed)
    kernel = SGHMC(model, potential_fn, **kernel_kwargs)
    if init_params is not None:
        kernel.initial_params = init_params
    kernel.setup(0, *model_args, **model_kwargs)
    static, state = kernel.static, kernel.state
    cfg, lay, g = static.cfg, static.layout, static.generator
    ones = torch.ones(lay.size, dtype=lay.flatten(state.z).dtype)
    coefficients = (lay.unflatten(static.inv_mass * ones), lay.unflatten(static.friction * ones))
    rows = []
    for k in range(num_draws):
        eps, beta, phase, noise_t = cfg.draw_settings(k)
        g.set_state(state.rng_key)
        if cfg.resample_scale is not None:
            r = dynamics.resampled_momentum(_normal(g, lay.flatten(state.r)), beta, static.mass)
            state = state._replace(r=lay.unflatten(dynamics.half_kick(r, lay.flatten(state.grad), eps)))
        renew = epochs.renew_draws(static.plates, g, cfg.num_steps)
        for j in range(cfg.num_steps):
            xi = _normal(g, lay.flatten(state.r)) if cfg.injects_noise else 0.0
            renew_j = {name: (a[j], o[j]) for name, (a, o) in renew.items()}
            out = sghmc_step(static, state, eps, noise_t, xi, renew_j, model_args, model_kwargs)
            bad = not _finite(lay.flatten(out.z), lay.flatten(out.r), out.potential_energy)
            if bad:
                out = out._replace(**{f: getattr(state, f) for f in _MOVED})
            with torch.no_grad():
                terms = on_step((state.z, state.r, state.grad), (out.z, out.r, out.grad), coefficients, eps, noise_t)
            rec = {"terms": _floats(terms), "step_size": float(eps), "phase": int(phase), "diverging": bad,
                   "noise_temperature": float(noise_t)}
            if keep_state:
                rec["state"] = {n: {s: v.detach().numpy().copy() for s, v in getattr(out, f).items()}
                                for n, f in (("theta", "z"), ("r", "r"), ("grad", "grad"))}
            rows.append(rec)
            state = out
        state = state._replace(i=k + 1, rng_key=g.get_state())
    return cfg, _stack(rows), {name: int(np.prod(s)) for name, s in lay.shapes.items()}


def _floats(tree):
    return {k: _floats(v) for k, v in tree.items()} if isinstance(tree, dict) else float(tree)


def _stack(rows: list):
    """Stack a list of equally nested dicts of scalars / arrays into arrays (step first)."""
    if isinstance(rows[0], dict):
        return {k: _stack([r[k] for r in rows]) for k in rows[0]}
    return np.stack([np.asarray(r) for r in rows])
