"""Every integrator (``dynamics.INTEGRATORS``) runs with every option of the kernels:
likelihood tempering, α, γ, a β schedule, a cyclical step schedule with an exploration
phase, thinning, several chains (NumPyro vectorised, Pyro sequential), a subsampled plate
and the warmup adaptation, and records the same statistics.  Their arithmetic is checked
exactly elsewhere (:mod:`test_exact_cross_backend`, :mod:`test_stationarity`)."""

import numpy as np
import pytest
from targets import as_array, conjugate_data, conjugate_model

from ppl_kernels import runner, schedules
from ppl_kernels._host import get_draws, get_stats
from ppl_kernels.config import STAT_FIELDS
from ppl_kernels.dynamics import INTEGRATORS


@pytest.mark.parametrize("integrator", INTEGRATORS)
def test_every_option_runs_with_every_integrator(backend, integrator):
    y = conjugate_data(64)
    kernel = dict(integrator=integrator, temperature=0.5, tempering="likelihood", boost=1.5, friction_scale=0.8,
                  resample_scale=schedules.cyclical(1.5, 0.5, cycle_length=4), thinning=2, num_steps=4,
                  step_size=schedules.cyclical(0.02, 0.005, cycle_length=8, explore_fraction=0.25), explore_noise=False)
    mcmc = runner.sample(backend, model=conjugate_model(backend), model_args=(as_array(backend, y), 0.0, 1.0, 2.0, 16),
                         kernel_kwargs=kernel, num_samples=12, num_warmup=30, num_chains=2, seed=1, warn=False,
                         chain_method="vectorized" if backend == "numpyro" else "sequential")
    theta, stats = get_draws(mcmc)["theta"], get_stats(mcmc)
    assert theta.shape == (2, 12) and np.isfinite(theta).all()
    assert set(stats) == set(STAT_FIELDS) and not stats["diverging"].any()
    assert not np.allclose(theta[0], theta[1])  # independent chains
    if integrator == "sgnht":  # the thermostat moves (and may turn negative for a while: it heats then)
        assert np.isfinite(stats["thermostat"]).all() and np.ptp(stats["thermostat"], axis=1).min() > 0
    else:  # the fixed rate C'/M' of the adapted mass, the same over a chain's sampling phase
        assert np.all(stats["thermostat"] > 0)
        np.testing.assert_allclose(stats["thermostat"], stats["thermostat"][:, :1] * np.ones((1, 12)), rtol=1e-5)
