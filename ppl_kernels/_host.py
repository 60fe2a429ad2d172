"""Uniform access to finished Pyro and NumPyro runs: dispatch to a backend's ``host.py``.

The ArviZ export, the diagnostics, the comparisons and the runner read runs
only through these few functions; the backend modules are imported lazily, so
``import ppl_kernels`` loads neither PyTorch nor JAX.
"""

from __future__ import annotations

from importlib import import_module

import numpy as np

from .config import STAT_FIELDS

__all__ = ["BACKENDS", "backend_of", "host_for", "host_of", "kernel_of", "get_draws", "get_stats", "get_adaptation"]

BACKENDS = ("pyro", "numpyro")

_DTYPES = {"float": np.float64, "int": np.int64, "bool": np.bool_}


def backend_of(obj) -> str:
    """``"pyro"`` or ``"numpyro"`` for an ``MCMC`` object or a kernel."""
    mod = type(obj).__module__
    for backend in ("numpyro", "pyro"):
        if mod.startswith(backend) or mod.startswith(f"ppl_kernels.{backend}"):
            return backend
    raise TypeError(f"expected a Pyro or NumPyro MCMC object, got {type(obj).__name__}")


def host_for(backend: str):
    """The ``host`` module of ``backend`` (imports the backend)."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    return import_module(f"ppl_kernels.{backend}.host")


def host_of(mcmc, *, finished: bool = False):
    """The ``host`` module of the backend that made ``mcmc``; with ``finished``, a
    ``ValueError`` if it has not been run yet."""
    host = host_for(backend_of(mcmc))
    if finished and not host.is_finished(mcmc):
        raise ValueError("mcmc has not been run yet: call mcmc.run(...) first")
    return host


def kernel_of(mcmc):
    """The kernel of a finished run."""
    return host_of(mcmc).kernel_of(mcmc)


def get_draws(mcmc) -> dict[str, np.ndarray]:
    """Constrained draws, ``{site: array (chain, draw, ...)}``."""
    return host_of(mcmc, finished=True).draws(mcmc)


def get_stats(mcmc) -> dict[str, np.ndarray]:
    """The per-draw statistics of an SGHMC run, ``{name: array (chain, draw)}``,
    with the same names and dtypes from both backends."""
    raw = host_of(mcmc, finished=True).statistics(mcmc)
    return {name: raw[name].astype(_DTYPES[kind]) for name, kind in STAT_FIELDS.items()}


def get_adaptation(mcmc) -> list:
    """Per chain, the step size, mass and friction the run sampled with (adapted during
    warmup, else as given), per site, with the gradient-noise estimate and the warmup
    trace (see :func:`ppl_kernels.adaptation.by_site`)."""
    return host_of(mcmc, finished=True).adaptation(mcmc)
