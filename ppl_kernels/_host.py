"""Uniform access to a finished Pyro or NumPyro ``MCMC`` run.

The ArviZ export, the comparisons and the tests all read runs through these
few functions, so that backend differences live in one place.
"""

from __future__ import annotations

import numpy as np

from .config import STAT_FIELDS

__all__ = ["backend_of", "kernel_of", "get_draws", "get_stats", "num_chains_of"]

_DTYPES = {"float": np.float64, "int": np.int64, "bool": np.bool_}


def backend_of(mcmc) -> str:
    """``"pyro"`` or ``"numpyro"`` for an ``MCMC`` object (or a kernel)."""
    mod = type(mcmc).__module__
    if mod.startswith("numpyro") or mod.startswith("ppl_kernels.numpyro"):
        return "numpyro"
    if mod.startswith("pyro") or mod.startswith("ppl_kernels.pyro"):
        return "pyro"
    raise TypeError(f"expected a Pyro or NumPyro MCMC object, got {type(mcmc).__name__}")


def kernel_of(mcmc):
    return mcmc.sampler if backend_of(mcmc) == "numpyro" else mcmc.kernel


def num_chains_of(mcmc) -> int:
    return int(mcmc.num_chains)


def get_draws(mcmc) -> dict[str, np.ndarray]:
    """Constrained draws, ``{site: array (chain, draw, ...)}``."""
    samples = mcmc.get_samples(group_by_chain=True)
    return {k: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v) for k, v in samples.items()}


def get_stats(mcmc) -> dict[str, np.ndarray]:
    """The per-draw statistics of an SGHMC run, ``{name: array (chain, draw)}``,
    with the same names and dtypes from both backends."""
    if backend_of(mcmc) == "numpyro":
        fields = mcmc.get_extra_fields(group_by_chain=True)
        raw = {name: np.asarray(fields[name]) for name in STAT_FIELDS}
    else:
        diag = mcmc._diagnostics  # per chain, as sent back by each worker
        raw = {name: np.stack([np.asarray(d[name]) for d in diag]) for name in STAT_FIELDS}
    return {name: raw[name].astype(_DTYPES[kind]) for name, kind in STAT_FIELDS.items()}
