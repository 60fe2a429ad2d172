"""Tempered, norm-adjusting SGHMC for Pyro and NumPyro.

The public names are imported lazily so that ``import ppl_kernels`` loads
neither PyTorch nor JAX::

    from ppl_kernels.pyro import SGHMC       # pyro.infer.mcmc.MCMCKernel
    from ppl_kernels.numpyro import SGHMC    # numpyro.infer.mcmc.MCMCKernel
    from ppl_kernels import schedules, to_inference_data, compare_temperatures, temperature_sweep
    from ppl_kernels import stream, open_store   # draws streamed to disk, resumable
    from ppl_kernels import predictive_mean      # held-out averages, also of runs that keep no weights
    from ppl_kernels import Minibatches          # minibatches for models fed their data batch from outside
"""

from importlib import import_module

from . import schedules
from .config import FrozenChainWarning, Minibatches, SGHMCConfig, SlowMixingWarning, TemperatureWarning

__version__ = "0.1.0"

_LAZY = {
    "to_inference_data": "ppl_kernels.arviz",
    "predictive_mean": "ppl_kernels.arviz",
    "compare_temperatures": "ppl_kernels.compare",
    "temperature_sweep": "ppl_kernels.compare",
    "diagnostics": "ppl_kernels.diagnostics",
    "stream": "ppl_kernels.store",
    "open_store": "ppl_kernels.store",
}

__all__ = ["schedules", "SGHMCConfig", "Minibatches", "FrozenChainWarning", "SlowMixingWarning", "TemperatureWarning",
           *_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        module = import_module(_LAZY[name])
        return module if name == "diagnostics" else getattr(module, name)
    raise AttributeError(f"module 'ppl_kernels' has no attribute {name!r}")
