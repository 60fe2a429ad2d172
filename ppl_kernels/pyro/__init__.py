"""Pyro backend: :class:`SGHMC`, a :class:`pyro.infer.mcmc.MCMCKernel`."""

from .kernel import SGHMC, SGHMCState, sghmc_draw, sghmc_init

__all__ = ["SGHMC", "SGHMCState", "sghmc_init", "sghmc_draw"]
