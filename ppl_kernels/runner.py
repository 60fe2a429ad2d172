"""Run one SGHMC chain set in either backend with one call.

Used by :func:`ppl_kernels.temperature_sweep`, the command line and the
tests; users normally call ``MCMC`` themselves.
"""

from __future__ import annotations

from typing import Any, Callable

from . import _host
from ._host import BACKENDS

__all__ = ["sample", "BACKENDS"]


def sample(
    backend: str,
    *,
    model: Callable | None = None,
    potential_fn: Callable | None = None,
    init_params: dict | None = None,
    model_args: tuple = (),
    model_kwargs: dict | None = None,
    kernel_kwargs: dict[str, Any] | None = None,
    num_samples: int = 1000,
    num_warmup: int = 0,
    num_chains: int = 1,
    seed: int = 0,
    chain_method: str = "sequential",
    progress_bar: bool = False,
    thinning: int = 1,
):
    """Run ``SGHMC`` under the backend's ``MCMC`` and return the finished ``MCMC``.

    Parameters
    ----------
    backend : {"pyro", "numpyro"}
    model, potential_fn : callable
        Exactly one; a model written for ``backend``.
    init_params : dict, optional
        Unconstrained initial values (required with ``potential_fn``); with
        ``num_chains > 1`` a leading chain dimension.
    model_args, model_kwargs
        Passed to the model.
    kernel_kwargs : dict
        Keyword arguments of ``SGHMC``.
    num_samples, num_warmup, num_chains, seed, chain_method, progress_bar, thinning
        As in the backends' ``MCMC``; Pyro runs several chains in processes
        (``chain_method`` is NumPyro's).  ``thinning`` is the kernels' own
        option in both backends (Pyro's ``MCMC`` has none), so both keep the same
        draws: ``num_warmup`` and ``num_samples`` count kept samples.
    """
    _host.host_for(backend)  # an unknown backend fails here, before any work
    kernel_kwargs = dict(kernel_kwargs or {})
    if thinning != 1:
        if kernel_kwargs.get("thinning", thinning) != thinning:
            raise ValueError(f"thinning={thinning!r} disagrees with kernel_kwargs['thinning']={kernel_kwargs['thinning']!r}")
        kernel_kwargs["thinning"] = thinning
    return _host.host_for(backend).sample(
        model=model, potential_fn=potential_fn, init_params=init_params, model_args=tuple(model_args),
        model_kwargs=dict(model_kwargs or {}), kernel_kwargs=kernel_kwargs, num_samples=num_samples,
        num_warmup=num_warmup, num_chains=num_chains, seed=seed, chain_method=chain_method, progress_bar=progress_bar,
    )
