"""What the analysis layer needs from a finished Pyro run, in one place.

The twin of :mod:`ppl_kernels.numpyro.host`: the same names with the same
meaning.  :mod:`ppl_kernels._host` picks one of the two by the run's type; the
ArviZ export, the diagnostics, the comparisons and the runner read runs only
through these functions, so no other module knows a host's ``MCMC`` internals.
"""

from __future__ import annotations

import functools

import numpy as np
import pyro
import torch
from pyro import poutine
from pyro.infer import MCMC
from pyro.infer.autoguide.initialization import init_to_value
from pyro.poutine.subsample_messenger import _Subsample

from .. import dynamics
from ..config import STAT_FIELDS
from ..sites import (
    is_factor, output_axis, shared_summed_site, site_info, site_kind, site_outputs, summed_outputs, to_numpy,
)
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
    """Traces a model at given latent values and plate indices (the interface
    :mod:`ppl_kernels.arviz` drives; the twin of NumPyro's).

    Vectorised with :func:`torch.func.vmap` over the draws and over the
    ``subsample_size`` pieces of a chunk of data (Pyro's plate accepts only its own
    ``subsample_size`` indices at a time).  A model that cannot run under ``vmap``
    (it draws random numbers, as a prediction does, or reads a value into Python)
    is traced one draw and one piece at a time instead, with a seed per draw and
    piece; both give the same values.
    """

    fixed_draw_chunks = False

    def __init__(self, model_fn, args, kwargs, seed, plates=None, values=None):
        self.model, self.args, self.kwargs, self.seed = model_fn, tuple(args), dict(kwargs), seed
        # values (a draw's latent values): the plates are found without sampling the latent sites
        strategy = None if values is None else init_to_value(values={k: torch.as_tensor(v) for k, v in values.items()})
        self.plates = find_subsample_plates(model_fn, self.args, self.kwargs, strategy) if plates is None else list(plates)
        self.vectorised = True  # until the model shows that it cannot run under vmap
        self._layout = None
        self._nesting = None  # the plate nesting, where the model has discrete sites the kernel summed out

    def chunk_length(self, plate, chunk_size):
        # A whole number of subsample_size pieces, as close to chunk_size as that allows.
        b = plate.subsample_size
        return b * max(1, min(chunk_size, plate.size) // b)

    def _first_pieces(self, idx) -> dict:
        return {p.name: torch.as_tensor(idx[p.name][: p.subsample_size]) for p in self.plates}

    def _trace(self, draw, idx, enumerate=False):
        data = {k: torch.as_tensor(v) for k, v in draw.items()}
        data.update({k: torch.as_tensor(v) for k, v in idx.items()})
        fn = poutine.condition(self.model, data=data)
        if enumerate:  # the summed sites at their whole supports: the observed sites' marginal densities
            fn = model.enumerated(fn, self._nesting)
        return poutine.trace(fn).get_trace(*self.args, **self.kwargs)

    def sites(self, draw, idx) -> dict:
        subsampled = {p.name for p in self.plates}
        with torch.no_grad():
            tr = self._trace(draw, self._first_pieces(idx))
        kinds = {}
        for name, site in tr.nodes.items():
            if site["type"] != "sample" or isinstance(site["fn"], _Subsample) or is_factor(site["fn"]):
                continue
            kinds[name] = "deterministic" if site["infer"].get("_deterministic") else site_kind(name, site, draw)
        shared = {}
        if "summed" in kinds.values():
            self._nesting = model.plate_nesting(tr)
            with torch.no_grad():
                nodes = self._trace(draw, self._first_pieces(idx), enumerate=True).nodes
            shared = {n: shared_summed_site(nodes, n) for n, k in kinds.items() if k == "observed"}
        return {n: site_info(n, tr.nodes[n], k, subsampled, shared.get(n)) for n, k in kinds.items()}

    def evaluate(self, draws, draw_ids, chunk_id, idx, requests, targets, plate=None):
        """``{site: {what: array (draw, ...)}}`` at ``draws`` over the chunk ``idx[plate]``."""
        draws = {k: torch.as_tensor(v) for k, v in draws.items()}
        first = self._first_pieces(idx)
        if self._layout is None:
            self._layout = self.sites({k: v[0] for k, v in draws.items()}, first)
        b = next((p.subsample_size for p in self.plates if p.name == plate), 1)
        pieces = None if plate is None else torch.as_tensor(idx[plate]).reshape(-1, b)
        # Targets of the plate's sites split as the indices are: a leading piece axis.
        split = {}
        for n, t in targets.items():
            t, site = torch.as_tensor(t), self._layout[n]
            split[n] = t[None] if site.plate is None else \
                t.unflatten(t.ndim + site.dim - site.event_dim, (-1, b)).movedim(t.ndim + site.dim - site.event_dim, 0)

        summed = self._nesting is not None

        def one(draw, piece, tgt):
            at = dict(first) if piece is None else {**first, plate: piece}
            tr = self._trace(draw, at)
            out = {n: site_outputs(tr.nodes[n], w, tgt.get(n), torch.movedim) for n, w in requests.items()}
            if summed:  # the densities again, with the summed sites summed over their values
                out = summed_outputs(out, requests, tr.nodes, tgt, lambda t: self._trace({**draw, **t}, at, True).nodes,
                                     model.REDUCTIONS.logsumexp, torch.movedim)
            return out

        res = None
        with torch.no_grad():
            if self.vectorised:
                try:
                    res = self._vmapped(one, draws, pieces, split)
                except Exception:  # noqa: BLE001 - any failure under vmap: trace one at a time
                    self.vectorised = False
            if res is None:
                res = self._looped(one, draws, draw_ids, chunk_id, pieces, split, b)
        out = {}
        for n, r in res.items():
            out[n] = {}
            for w, v in r.items():  # v: (draw, piece, ...) -> the pieces joined along the plate's axis
                if self._layout[n].plate is None:
                    v = v[:, 0]
                else:
                    ax = v.ndim + output_axis(self._layout[n], w)
                    v = v.movedim(1, ax - 1).flatten(ax - 1, ax)
                out[n][w] = to_numpy(v)
        return out

    @staticmethod
    def _vmapped(one, draws, pieces, split):
        # randomness="error": a model that draws random numbers needs the loop's per-draw seeds
        vmap = functools.partial(torch.func.vmap, randomness="error")
        with pyro.validation_enabled(False):
            if pieces is None:
                res = vmap(lambda d: one(d, None, {n: t[0] for n, t in split.items()}))(draws)
                return {n: {w: v[:, None] for w, v in r.items()} for n, r in res.items()}
            return vmap(lambda d: vmap(lambda p, t: one(d, p, t))(pieces, split))(draws)

    def _looped(self, one, draws, draw_ids, chunk_id, pieces, split, b):
        rows = []
        with torch.random.fork_rng(devices=[]):
            for s, draw_id in enumerate(draw_ids):
                draw, row = {k: v[s] for k, v in draws.items()}, []
                for j in range(1 if pieces is None else len(pieces)):
                    # Reproducible per (draw, data point), whatever the chunking.
                    torch.manual_seed(hash((self.seed, int(draw_id), int(chunk_id) + j * b)) % 2**63)
                    row.append(one(draw, None if pieces is None else pieces[j], {n: t[j] for n, t in split.items()}))
                rows.append(row)
        return {n: {w: torch.stack([torch.stack([torch.as_tensor(p[n][w]) for p in row]) for row in rows]) for w in r}
                for n, r in rows[0][0].items()}


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
            state = state._replace(r=lay.unflatten(dynamics.fresh_momentum(cfg.integrator, r, lay.flatten(state.grad), eps)))
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
