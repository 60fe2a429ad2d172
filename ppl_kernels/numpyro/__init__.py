"""NumPyro backend: :class:`SGHMC`, a :class:`numpyro.infer.mcmc.MCMCKernel`, and
the pure integrator functions it runs."""

from .integrator import SGHMCState, sghmc_draw, sghmc_init, sghmc_sample, sghmc_step
from .kernel import SGHMC

__all__ = ["SGHMC", "SGHMCState", "sghmc_init", "sghmc_step", "sghmc_draw", "sghmc_sample"]
