"""``trajectory_length``: a draw takes ``⌈trajectory_length / ε⌉`` steps of the step it runs with.

With the adapted mass the posterior's time unit is ``√boost``, so ``trajectory_length=1``
moves a chain about one posterior scale a draw whatever step the minibatch noise
allows: on the subsampled conjugate model where the defaults' 10 steps a draw give an
ESS of 4-24 in 400 draws (``docs/warmup.rst``, "A known limit"), it samples the exact
posterior with an ESS above 100.
"""

import importlib
import warnings

import numpy as np
import pytest
from targets import (
    as_array, conjugate_data, conjugate_model, conjugate_posterior, ess_mean, gaussian_potential, mc_mean, mc_var, z_score,
)

from ppl_kernels import SlowMixingWarning, runner
from ppl_kernels._host import get_draws


def _noise_free_chain(backend, **kwargs):
    """Five draws on a Gaussian at T = 0 (no random input) from a fixed start, fixed step."""
    SGHMC = importlib.import_module(f"ppl_kernels.{backend}").SGHMC
    kernel = SGHMC(potential_fn=gaussian_potential(backend, 0.0, 1.0), step_size=0.1, temperature=0.0,
                   adapt_step_size=False, adapt_mass_matrix=False, **kwargs)
    start = {"x": as_array(backend, [1.0, -2.0])}
    if backend == "pyro":
        from pyro.infer import MCMC

        mcmc = MCMC(kernel, num_samples=5, warmup_steps=0, initial_params=start, disable_progbar=True)
        mcmc.run()
    else:
        import jax
        from numpyro.infer import MCMC

        mcmc = MCMC(kernel, num_warmup=0, num_samples=5, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0), init_params=start)
    return np.asarray(mcmc.get_samples()["x"])


@pytest.mark.parametrize("length, steps", [(1.0, 10), (0.55, 6), (0.1, 1)])
def test_a_draw_takes_the_steps_its_trajectory_length_names(backend, length, steps):
    """``⌈length / ε⌉`` steps of ε = 0.1: the chain of ``num_steps`` that many (NumPyro's loop
    of traced length against its fixed scan), and another chain for one step more."""
    chain = _noise_free_chain(backend, trajectory_length=length)
    np.testing.assert_array_equal(chain, _noise_free_chain(backend, num_steps=steps))
    assert np.abs(chain - _noise_free_chain(backend, num_steps=steps + 1)).max() > 1e-3


def test_trajectory_length_must_be_positive():
    from ppl_kernels.config import SGHMCConfig

    for bad in (0.0, -1.0, float("nan"), "long"):
        with pytest.raises(ValueError, match="trajectory_length"):
            SGHMCConfig(trajectory_length=bad)
    assert SGHMCConfig.from_json(SGHMCConfig(trajectory_length=2.0).to_json()).trajectory_length == 2.0


def test_trajectory_length_mixes_where_ten_steps_do_not(backend):
    """The subsampled conjugate model (N = 400, B = 10, T = 1) with only
    ``trajectory_length=1`` beside the defaults: mean and variance against the exact
    posterior within 4.5 ESS standard errors, an ESS above 60 of 400 draws (the defaults:
    4-24), and no slow-mixing warning."""
    y = conjugate_data(400)
    args = (as_array(backend, y), 0.0, 1.0, 2.0, 10)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mcmc = runner.sample(backend, model=conjugate_model(backend), model_args=args,
                             kernel_kwargs=dict(temperature=1.0, trajectory_length=1.0), num_samples=400, num_warmup=300,
                             seed=0)
    assert not [w for w in caught if issubclass(w.category, SlowMixingWarning)]
    theta = np.asarray(get_draws(mcmc)["theta"], dtype=float).reshape(-1)
    mean, var = conjugate_posterior(y, 0.0, 1.0, 2.0, temperature=1.0, tempering="posterior")
    m, se = mc_mean(theta)
    v, se_v = mc_var(theta)
    assert z_score(m, se, mean) < 4.5 and z_score(v, se_v, var) < 4.5, (m, se, mean, v, se_v, var)
    assert ess_mean(theta) > 60
