"""Shared pytest configuration: one thread per worker, cheap XLA compiles, and the
``backend`` fixture.

CI runs the suite with ``pytest -n 2`` on two cores; letting torch and XLA
spawn a thread pool per worker would oversubscribe them.  Every new NumPyro
kernel configuration is compiled once, and on these tiny programs XLA's
backend optimisation costs more time (about 2 s per compile) than it saves.
"""

import os

os.environ.setdefault(
    "XLA_FLAGS", "--xla_backend_optimization_level=0 --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
)
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest

from targets import BACKENDS


def pytest_configure(config):
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """After each test module, drop JAX's compiled programs and collect garbage: a worker
    otherwise keeps every program the suite ever compiled (its memory grew to ~6 GB)."""
    yield
    import gc
    import sys

    if "jax" in sys.modules:
        sys.modules["jax"].clear_caches()
    gc.collect()


@pytest.fixture(params=BACKENDS)
def backend(request):
    """Each test that takes ``backend`` runs once per backend, ``"pyro"`` and ``"numpyro"``."""
    return request.param
