"""Faults and slips get a clear error at set-up, or work as the hosts' kernels do:
non-finite data, data not indexed by the plate, bad per-site values, a run not yet
made, models with no latent site, Python-float init values, exports that must not
reuse another data set's compiled evaluation, and Pyro's HMC-compatible surface."""

import numpy as np
import pytest
from targets import as_array, conjugate_data, conjugate_model

from ppl_kernels import runner, to_inference_data
from ppl_kernels._host import get_draws, get_stats

KERNEL = dict(step_size=0.01, num_steps=3)


def _ppl(backend):
    if backend == "pyro":
        import pyro
        import pyro.distributions as dist
    else:
        import numpyro as pyro
        import numpyro.distributions as dist
    return pyro, dist


def _sample(backend, model, args, **kw):
    return runner.sample(backend, model=model, model_args=args, kernel_kwargs=KERNEL, num_samples=5, num_warmup=2,
                         **kw)


def test_nan_in_the_data_is_refused_at_setup(backend):
    y = conjugate_data(20)
    y[3] = np.nan
    with pytest.raises(ValueError, match="not finite at the initial point.*theta"):
        _sample(backend, conjugate_model(backend), (as_array(backend, y), 0.0, 1.0, 2.0, None))


def test_data_not_indexed_by_the_plate_is_refused(backend):
    ppl, dist = _ppl(backend)

    def sliced(y, batch):
        theta = ppl.sample("theta", dist.Normal(0.0, 1.0))
        with ppl.plate("data", y.shape[0], subsample_size=batch):
            ppl.sample("obs", dist.Normal(theta, 1.0), obs=y[:batch])  # the slip: not y[idx]

    y = as_array(backend, conjugate_data(40))
    with pytest.raises(ValueError, match="does not change with the minibatch indices of the subsampled plate 'data'"):
        _sample(backend, sliced, (y, 8))
    # indexed correctly, the same model runs
    assert get_draws(_sample(backend, conjugate_model(backend), (y, 0.0, 1.0, 2.0, 8)))["theta"].shape == (1, 5)


def test_bad_per_site_values_and_init_strategy_are_named(backend):
    SGHMC = __import__(f"ppl_kernels.{backend}", fromlist=["SGHMC"]).SGHMC
    model = conjugate_model(backend)
    with pytest.raises(ValueError, match=r"mass\['w'\] must be a positive number or array, got 'abc'"):
        SGHMC(model, mass={"w": "abc"})
    with pytest.raises(ValueError, match="init_strategy must be an init strategy function.*'median'"):
        SGHMC(model, init_strategy="median")
    kernel = SGHMC(model, step_size=0.02)
    assert kernel.step_size == 0.02  # as NUTS users read it


def test_export_before_run_is_a_clear_error(backend):
    SGHMC = __import__(f"ppl_kernels.{backend}", fromlist=["SGHMC"]).SGHMC
    if backend == "pyro":
        from pyro.infer import MCMC

        mcmc = MCMC(SGHMC(conjugate_model(backend)), num_samples=5)
    else:
        from numpyro.infer import MCMC

        mcmc = MCMC(SGHMC(conjugate_model(backend)), num_warmup=1, num_samples=5)
    with pytest.raises(ValueError, match="has not been run yet"):
        to_inference_data(mcmc)


def test_model_without_latent_sites_runs_and_exports(backend):
    ppl, dist = _ppl(backend)

    def fixed(y):
        loc = ppl.deterministic("loc", y.mean() * 0 + 1.0)
        with ppl.plate("data", y.shape[0]):
            ppl.sample("obs", dist.Normal(loc, 1.0), obs=y)

    y = as_array(backend, conjugate_data(10))
    mcmc = _sample(backend, fixed, (y,))
    stats = get_stats(mcmc)
    assert stats["kinetic_temperature"].shape == (1, 5) and np.all(stats["kinetic_temperature"] == 0)
    assert not stats["diverging"].any()
    idata = to_inference_data(mcmc)
    assert idata.log_likelihood["obs"].shape == (1, 5, 10)
    np.testing.assert_allclose(idata.observed_data["obs"], conjugate_data(10), rtol=1e-6)


def test_numpyro_init_to_value_with_python_floats():
    from numpyro.infer.initialization import init_to_value

    model = conjugate_model("numpyro")
    y = as_array("numpyro", conjugate_data(20))
    mcmc = runner.sample("numpyro", model=model, model_args=(y, 0.0, 1.0, 2.0, None), num_samples=3,
                         kernel_kwargs=dict(KERNEL, step_size=1e-9, init_strategy=init_to_value(values={"theta": 0.25})))
    np.testing.assert_allclose(get_draws(mcmc)["theta"], 0.25, atol=1e-6)


def test_export_never_reuses_another_data_sets_evaluation(backend):
    """A model that reads global data: the export sees the data as they are now."""
    ppl, dist = _ppl(backend)
    data = {"y": as_array(backend, conjugate_data(12, theta=0.0))}

    def global_model():
        theta = ppl.sample("theta", dist.Normal(0.0, 10.0))
        with ppl.plate("data", data["y"].shape[0]):
            ppl.sample("obs", dist.Normal(theta, 1.0), obs=data["y"])

    first = to_inference_data(_sample(backend, global_model, ()))
    data["y"] = as_array(backend, conjugate_data(12, theta=5.0, seed=1))
    second = to_inference_data(_sample(backend, global_model, ()))
    np.testing.assert_allclose(first.observed_data["obs"], conjugate_data(12, theta=0.0), rtol=1e-6)
    np.testing.assert_allclose(second.observed_data["obs"], conjugate_data(12, theta=5.0, seed=1), rtol=1e-6)
    theta = second.posterior["theta"].values[..., None]
    y = conjugate_data(12, theta=5.0, seed=1)
    expected = -0.5 * (y - theta) ** 2 - 0.5 * np.log(2 * np.pi)
    np.testing.assert_allclose(second.log_likelihood["obs"].values, expected, rtol=1e-4, atol=1e-4)


def test_pyro_hmc_surface_and_independent_sequential_chains():
    """``max_plate_nesting`` and ``clear_cache`` as Pyro's HMC has them; two sequential
    chains (a 2-core machine) each start from their own initial point."""
    import pyro
    from pyro.infer import MCMC

    from ppl_kernels.pyro import SGHMC

    model = conjugate_model("pyro")
    y = as_array("pyro", conjugate_data(20))
    pyro.set_rng_seed(0)
    kernel = SGHMC(model, max_plate_nesting=1, step_size=1e-9, num_steps=1)
    kernel.clear_cache()
    assert kernel.max_plate_nesting == 1
    mcmc = MCMC(kernel, num_samples=2, warmup_steps=0, num_chains=2, disable_progbar=True)
    assert type(mcmc.sampler).__name__ == "_UnarySampler"  # sequential chains with one kernel object
    mcmc.run(y, 0.0, 1.0, 2.0, None)
    theta = mcmc.get_samples(group_by_chain=True)["theta"].numpy()
    # a step of 1e-9 keeps each chain at its initial point, drawn by init_to_uniform on (-2, 2)
    assert abs(theta[0, 0] - theta[1, 0]) > 1e-3
