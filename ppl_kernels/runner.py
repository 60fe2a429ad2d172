"""Run one SGHMC chain set in either backend with one call.

Used by :func:`ppl_kernels.temperature_sweep`, the command line and the
tests; users normally call ``MCMC`` themselves.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

from . import _host
from ._host import BACKENDS
from .config import FROZEN_RUN, FrozenChainWarning, TemperatureWarning, frozen_advice

__all__ = ["sample", "Interrupted", "warn_kinetic_temperature",
           "kinetic_temperature_series", "warn_frozen_chains", "FROZEN_RUN", "BACKENDS"]


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a run: the message says what was kept (``store`` and ``draws``: the
    folder of a :func:`ppl_kernels.stream` run and its draws per chain; ``None`` and 0 for
    an in-memory run, which keeps nothing)."""

    def __init__(self, message, store=None, draws=0):
        super().__init__(message)
        self.store, self.draws = store, draws


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
    warn: bool = True,
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
    warn : bool
        Check the finished run for frozen chains and a kinetic temperature off its
        expected value, and warn (:func:`warn_frozen_chains`,
        :func:`warn_kinetic_temperature`); the kernels' own warning of a chain that
        freezes while the run goes is then left to that check.  ``False``: the kernels'
        warnings only.
    """
    _host.host_for(backend)  # an unknown backend fails here, before any work
    kernel_kwargs = dict(kernel_kwargs or {})
    if thinning != 1:
        if kernel_kwargs.get("thinning", thinning) != thinning:
            raise ValueError(f"thinning={thinning!r} disagrees with kernel_kwargs['thinning']={kernel_kwargs['thinning']!r}")
        kernel_kwargs["thinning"] = thinning
    try:
        with warnings.catch_warnings():
            if warn:  # the check after the run names every frozen chain at once
                warnings.simplefilter("ignore", FrozenChainWarning)
                warnings.simplefilter("ignore", TemperatureWarning)
            mcmc = _host.host_for(backend).sample(
                model=model, potential_fn=potential_fn, init_params=init_params, model_args=tuple(model_args),
                model_kwargs=dict(model_kwargs or {}), kernel_kwargs=kernel_kwargs, num_samples=num_samples,
                num_warmup=num_warmup, num_chains=num_chains, seed=seed, chain_method=chain_method,
                progress_bar=progress_bar,
            )
    except KeyboardInterrupt:
        raise Interrupted("interrupted: an in-memory run keeps no draws; ppl_kernels.stream writes them to disk "
                          "chunk by chunk and resumes after an interrupt") from None
    if warn:
        warn_frozen_chains(mcmc) or warn_kinetic_temperature(mcmc)
    return mcmc


def kinetic_temperature_series(mcmc):
    """``(kinetic, expected, dim)`` of a finished run's sampling phase: the kinetic
    temperature per draw and its expected value ``T / (1 − a/2)`` at the values each chain
    sampled with (both ``(chain, draw)``), and the number of coordinates."""
    import numpy as np

    from .diagnostics import expected_kinetic_temperature

    cfg = _host.kernel_of(mcmc).config
    stats, chains = _host.get_stats(mcmc), _host.get_adaptation(mcmc)

    def flat(per_site):
        return np.concatenate([np.ravel(v) for v in per_site.values()]) if per_site else np.ones(1)

    expected = np.stack([expected_kinetic_temperature(
        cfg.noise_temperature, stats["step_size"][i], mass=flat(c["mass"]), friction=flat(c["friction"]),
        boost=cfg.boost, friction_scale=cfg.friction_scale, integrator=cfg.integrator) for i, c in enumerate(chains)])
    dim = sum(int(np.size(v)) for v in chains[0]["mass"].values())
    return stats["kinetic_temperature"], expected, max(dim, 1)


def warn_frozen_chains(mcmc) -> str | None:
    """Warn (once, :class:`~ppl_kernels.config.FrozenChainWarning`) when a chain of a
    finished run diverged on :data:`~ppl_kernels.config.FROZEN_RUN` consecutive sampling
    draws or more: it stood still at one point
    (each diverging draw restarts from the draw's start), which a summary would show as
    a zero-width interval.  Names the chains and the step size; returns the message or
    ``None``."""
    import numpy as np

    stats = _host.get_stats(mcmc)
    frozen = []
    for c, div in enumerate(stats["diverging"]):
        longest = run = 0
        for d in div:
            run = run + 1 if d else 0
            longest = max(longest, run)
        if longest >= FROZEN_RUN:
            frozen.append((c, longest, float(np.median(stats["step_size"][c][div]))))
    if not frozen:
        return None
    parts = ", ".join(f"chain {c}: {n} draws in a row at step_size {eps:.3g}" for c, n, eps in frozen)
    message = f"chains froze, every draw diverging ({parts}): " + frozen_advice()
    warnings.warn(message, FrozenChainWarning, stacklevel=3)
    return message


def warn_kinetic_temperature(mcmc) -> str | None:
    """Warn (once, :class:`~ppl_kernels.config.TemperatureWarning`) when the kinetic temperature of a finished run's
    sampling phase misses its expected value at the values it sampled with
    (:func:`ppl_kernels.adaptation.kinetic_warning`); return the message or ``None``.

    Runs whose momentum is cooled on purpose (``resample_scale``) or whose schedule
    explores without noise are not checked."""
    import warnings

    from . import adaptation

    if not _host.kernel_of(mcmc).config.checks_kinetic:
        return None
    kinetic, expected, dim = kinetic_temperature_series(mcmc)
    message = adaptation.kinetic_warning(kinetic, expected, dim)
    if message:
        warnings.warn(message, TemperatureWarning, stacklevel=3)
    return message
