"""The warmup's public surface: adapted values readable from the kernel, the run and
the ArviZ attrs; the adaptation off means the given values are used as they are; T = 0
and likelihood tempering keep working with the defaults; a sampling phase that runs hot
warns; ``potential_fn`` takes any pytree (NumPyro) and NumPy arrays work as the data of
a subsampled NumPyro model."""

import json
import re
import warnings

import numpy as np
import pytest
from targets import HAND_TUNED, as_array, conjugate_data, conjugate_model, gaussian_init, gaussian_potential

from ppl_kernels import runner, to_inference_data
from ppl_kernels._host import get_adaptation, get_draws, get_stats


def _gaussian_run(backend, **kw):
    mu, var = np.array([2.0, -1.0]), np.array([0.25, 9.0])
    mcmc = runner.sample(backend, potential_fn=gaussian_potential(backend, mu, var),
                         init_params=gaussian_init(backend, mu, var, 1.0), kernel_kwargs=kw, num_samples=300,
                         num_warmup=200, seed=1)
    return mcmc, var


def test_adapted_values_are_readable_and_exported(backend):
    mcmc, var = _gaussian_run(backend)
    (chain,) = get_adaptation(mcmc)
    # the curvature of N(μ, σ²) is 1/σ²; the friction is critical, 2M; the step whitened
    np.testing.assert_allclose(chain["mass"]["x"], 1.0 / var, rtol=1e-3)
    np.testing.assert_allclose(chain["friction"]["x"], 2.0 / var, rtol=1e-3)
    assert chain["step_size"] == pytest.approx(0.25)
    assert chain["step_trace"].shape == (200,) and chain["step_trace"][0] == pytest.approx(0.01)
    assert chain["mass_trace"]["x"].shape[0] >= 2 and np.allclose(chain["mass_trace"]["x"][0], 1.0)
    assert np.allclose(get_stats(mcmc)["step_size"], 0.25)  # the sampling phase uses the adapted step
    attrs = to_inference_data(mcmc).posterior.attrs
    assert json.loads(attrs["adapted_step_size"]) == [pytest.approx(0.25)]
    np.testing.assert_allclose(json.loads(attrs["adapted_json"])[0]["mass"]["x"], 1.0 / var, rtol=1e-3)


def test_adaptation_off_uses_the_given_values(backend):
    mcmc, _ = _gaussian_run(backend, step_size=0.05, mass=2.0, friction=3.0, **HAND_TUNED)
    (chain,) = get_adaptation(mcmc)
    assert chain["step_size"] == pytest.approx(0.05) and np.allclose(chain["mass"]["x"], 2.0)
    assert np.allclose(chain["friction"]["x"], 3.0)
    assert np.allclose(get_stats(mcmc)["step_size"], 0.05)


def test_step_only_and_mass_only(backend):
    """Each half alone: adapting only the step keeps the given mass, adapting only the mass
    keeps the given step (C = 2·friction·M follows the mass)."""
    mcmc, var = _gaussian_run(backend, step_size=0.05, adapt_mass_matrix=False)
    assert np.allclose(get_adaptation(mcmc)[0]["mass"]["x"], 1.0)
    mcmc, var = _gaussian_run(backend, step_size=0.05, adapt_step_size=False)
    (chain,) = get_adaptation(mcmc)
    np.testing.assert_allclose(chain["mass"]["x"], 1.0 / var, rtol=1e-3)
    assert np.allclose(get_stats(mcmc)["step_size"], 0.05)


def test_zero_temperature_and_likelihood_tempering_run_with_defaults(backend):
    """T = 0 adapts nothing (SGD with momentum) and runs; likelihood tempering adapts the mass
    to the tempered potential's curvature (N/(σ²T) + 1/s₀² for the conjugate model)."""
    y = conjugate_data(200)
    args = (as_array(backend, y), 0.0, 1.0, 2.0)
    mcmc = runner.sample(backend, model=conjugate_model(backend), model_args=args, kernel_kwargs=dict(temperature=0.0),
                         num_samples=50, num_warmup=50)
    assert np.all(np.isfinite(get_draws(mcmc)["theta"]))
    assert np.allclose(get_adaptation(mcmc)[0]["mass"]["theta"], 1.0)
    mcmc = runner.sample(backend, model=conjugate_model(backend), model_args=args,
                         kernel_kwargs=dict(temperature=0.5, tempering="likelihood"), num_samples=50, num_warmup=100)
    mass = float(get_adaptation(mcmc)[0]["mass"]["theta"])
    assert mass == pytest.approx(200 / 4.0 / 0.5 + 1.0, rel=1e-3)


def test_a_hot_sampling_phase_warns(backend):
    """A hand-set step far too large for the minibatch noise of a subsampled model at a
    cold temperature: the kinetic temperature misses its band and the run says so."""
    y = conjugate_data(400)
    args = (as_array(backend, y), 0.0, 1.0, 2.0, 10)
    with pytest.warns(RuntimeWarning, match="kinetic temperature of the sampling phase"):
        runner.sample(backend, model=conjugate_model(backend), model_args=args,
                      kernel_kwargs=dict(temperature=0.01, step_size=0.05, mass=100.0, friction=2000.0, **HAND_TUNED),
                      num_samples=200, num_warmup=0)
    # the defaults sample the same model at the same T at its temperature (their step mixes slowly, and says so)
    from ppl_kernels import SlowMixingWarning, TemperatureWarning

    with warnings.catch_warnings(), pytest.warns(SlowMixingWarning):
        warnings.simplefilter("error", TemperatureWarning)
        runner.sample(backend, model=conjugate_model(backend), model_args=args, kernel_kwargs=dict(temperature=0.01),
                      num_samples=400, num_warmup=300)


def test_numpyro_sites_keep_their_own_coefficients_in_any_order():
    """Per-site masses follow the sites whatever the order the model declares them in (a
    dict is ravelled in sorted key order)."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC

    from ppl_kernels.numpyro import SGHMC

    def potential(z):
        return 0.5 * (z["zeta"] ** 2).sum() + 0.5 * (z["alpha"] ** 2).sum()

    kernel = SGHMC(potential_fn=potential, mass={"zeta": 4.0, "alpha": 1.0}, **HAND_TUNED)
    mcmc = MCMC(kernel, num_warmup=0, num_samples=5, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), init_params={"zeta": jnp.zeros(3), "alpha": jnp.zeros(2)})
    adapted = kernel.adapted(mcmc.last_state)
    assert np.allclose(adapted["mass"]["zeta"], 4.0) and np.allclose(adapted["mass"]["alpha"], 1.0)
    r = mcmc.last_state.r
    manual = ((r["zeta"] ** 2).sum() / 4.0 + (r["alpha"] ** 2).sum()) / 5
    assert float(mcmc.last_state.kinetic_temperature) == pytest.approx(float(manual), rel=1e-5)


@pytest.mark.parametrize("kind", ["array", "pytree"])
def test_numpyro_potential_fn_takes_any_pytree(kind):
    """As NumPyro's HMC: ``init_params=jnp.array(0.)`` with ``potential_fn(params)``, or a tuple
    holding a dict; the samples come back in the same structure, at the right moments."""
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC
    from targets import mc_mean, mc_var

    from ppl_kernels.numpyro import SGHMC

    if kind == "array":
        def potential(p):
            return 0.5 * ((p - 5.0) ** 2).sum()

        init = jnp.array(0.0)
    else:
        def potential(p):
            return 0.5 * ((p[0] - 5.0) ** 2).sum() + 0.5 * (p[1]["b"] ** 2).sum() / 4.0

        init = (jnp.zeros(2), {"b": jnp.array(0.0)})
    mcmc = MCMC(SGHMC(potential_fn=potential), num_warmup=300, num_samples=2000, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), init_params=init)
    samples = mcmc.get_samples()
    x = np.asarray(samples if kind == "array" else samples[0])
    assert x.shape == ((2000,) if kind == "array" else (2000, 2))
    for i in range(x.reshape(2000, -1).shape[1]):
        m, se = mc_mean(x.reshape(2000, -1)[:, i])
        v, se_v = mc_var(x.reshape(2000, -1)[:, i], mean=5.0)
        assert abs(m - 5.0) < 4.5 * se and abs(v - 1.0) < 4.5 * se_v
    if kind == "pytree":
        v, se_v = mc_var(np.asarray(samples[1]["b"]), mean=0.0)
        assert abs(v - 4.0) < 4.5 * se_v


def test_numpyro_model_takes_numpy_data_with_a_subsampled_plate():
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC

    from ppl_kernels.numpyro import SGHMC

    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 2))
    y = X @ np.array([1.0, -1.0]) + 0.1 * rng.standard_normal(200)

    def model(X, y):
        w = numpyro.sample("w", dist.Normal(jnp.zeros(2), 1.0).to_event(1))
        with numpyro.plate("data", 200, subsample_size=25) as idx:
            numpyro.sample("y", dist.Normal(X[idx] @ w, 0.1), obs=y[idx])

    mcmc = MCMC(SGHMC(model), num_warmup=300, num_samples=300, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), X, y)  # NumPy arrays, indexed by traced minibatch indices
    np.testing.assert_allclose(np.asarray(mcmc.get_samples()["w"]).mean(0), [1.0, -1.0], atol=0.05)
    assert to_inference_data(mcmc).log_likelihood["y"].shape == (1, 300, 200)


def _hot_run(backend, kernel_kwargs, num_warmup, num_samples, batch=10):
    """The conjugate model of ``test_a_hot_sampling_phase_warns`` under the host's own
    ``MCMC`` (NumPyro: two vectorised chains); returns the chains' names in the messages."""
    y = conjugate_data(400)
    args = (as_array(backend, y), 0.0, 1.0, 2.0, batch)
    if backend == "pyro":
        import pyro
        from pyro.infer import MCMC

        from ppl_kernels.pyro import SGHMC

        pyro.set_rng_seed(0)
        MCMC(SGHMC(conjugate_model(backend), **kernel_kwargs), warmup_steps=num_warmup, num_samples=num_samples,
             disable_progbar=True).run(*args)
        return ["a chain"]
    import jax
    from numpyro.infer import MCMC

    from ppl_kernels.numpyro import SGHMC

    MCMC(SGHMC(conjugate_model(backend), **kernel_kwargs), num_warmup=num_warmup, num_samples=num_samples,
         num_chains=2, chain_method="vectorized", progress_bar=False).run(jax.random.PRNGKey(0), *args)
    jax.effects_barrier()
    return ["chain 0", "chain 1"]


def test_a_hot_chain_warns_while_the_hosts_mcmc_runs(backend):
    """A user who calls Pyro's or NumPyro's ``MCMC`` directly is told while the run goes:
    the kernels test the kinetic temperature at 200, 400, … sampling draws and warn once
    per chain, naming it; the defaults on the same model at T = 1 warn of nothing."""
    from ppl_kernels import TemperatureWarning

    hot = dict(temperature=0.01, step_size=0.05, mass=100.0, friction=2000.0, **HAND_TUNED)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chains = _hot_run(backend, hot, 0, 400)
    messages = [str(w.message) for w in caught if issubclass(w.category, TemperatureWarning)]
    assert len(messages) == len(chains), messages
    for who, message in zip(chains, messages):
        assert message.startswith(f"{who}, after 200 sampling draws: the kinetic temperature of the sampling phase is ")
        assert "smaller step_size" in message
    assert issubclass(TemperatureWarning, RuntimeWarning)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _hot_run(backend, dict(temperature=1.0), 300, 400)
    assert not [str(w.message) for w in caught if issubclass(w.category, TemperatureWarning)]


def test_a_slowly_mixing_step_warns_at_the_first_sampling_draw(backend):
    """The defaults on the subsampled conjugate model (40 minibatches an epoch, T = 1) adapt a
    step of about 0.015 of the posterior's time unit, which the minibatch noise allows: a
    draw of 10 steps covers 0.15 of it (measured: ESS 4-24 of 400 draws).  Each chain warns
    once, under the host's own ``MCMC``, and names the ``num_steps`` that covers one unit;
    with that ``num_steps``, or with the full data, nothing warns."""
    from ppl_kernels import SlowMixingWarning

    def slow_messages(kernel_kwargs, args_batch=10):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            chains = _hot_run(backend, kernel_kwargs, 300, 20, batch=args_batch)
        return chains, [str(w.message) for w in caught if issubclass(w.category, SlowMixingWarning)]

    chains, messages = slow_messages(dict(temperature=1.0))
    assert len(messages) == len(chains), messages
    for who, message in zip(chains, messages):
        assert message.startswith(f"{who}: the warmup adapted the step to ") and "expect a small ESS" in message
        assert "or give trajectory_length=1 " in message
    suggested = int(re.search(r"raise num_steps \(about (\d+) for one unit a draw\)", messages[0]).group(1))
    assert 40 < suggested < 120, suggested
    assert issubclass(SlowMixingWarning, RuntimeWarning)
    assert slow_messages(dict(temperature=1.0, num_steps=suggested))[1] == []
    assert slow_messages(dict(temperature=1.0), args_batch=None)[1] == []


def test_the_in_run_check_is_the_after_run_one():
    """:func:`kinetic_track` over a series, checkpoint by checkpoint, gives the verdict of
    :func:`kinetic_warning` on the same draws (20 batches of 10 at the first checkpoint)."""
    from ppl_kernels import adaptation

    rng = np.random.default_rng(1)
    for shift, expect in ((0.0, False), (0.2, True), (-0.2, True), (0.04, False)):
        ratio = 1.0 + shift + 0.1 * rng.standard_normal(200)
        sums = (0.0, 0.0, 0.0, 0.0, 0.0)
        for i, x in enumerate(ratio):
            old, sums = sums, adaptation.kinetic_track(sums, float(x), i + 1)
            assert not adaptation.kinetic_found(old, sums) or i == 199
        assert bool(sums[4]) == expect
        after = adaptation.kinetic_warning(ratio[None, :], np.ones((1, 200)), 3)
        assert (after is not None) == expect
    # warmup draws (count <= 0) are not counted
    assert adaptation.kinetic_track((0.0, 0.0, 0.0, 0.0, 0.0), 5.0, 0)[:4] == (0.0, 0.0, 0.0, 0.0)
