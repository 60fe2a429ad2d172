"""Every invalid argument raises ``ValueError`` naming the argument and the value,
early (at construction, or at setup/init for what needs the model), in both backends."""

import numpy as np
import pytest
from targets import as_array, gaussian_potential

from ppl_kernels import schedules


def _kernel_class(backend):
    if backend == "pyro":
        from ppl_kernels.pyro import SGHMC
    else:
        from ppl_kernels.numpyro import SGHMC
    return SGHMC


def _ppl(backend):
    if backend == "pyro":
        import pyro
        import pyro.distributions as dist
    else:
        import numpyro as pyro
        import numpyro.distributions as dist
    return pyro, dist


def _setup(backend, kernel, init_params=None):
    """What the host's ``MCMC`` does before the first draw: ``setup`` (Pyro) / ``init`` (NumPyro)."""
    if backend == "pyro":
        kernel.initial_params = init_params
        kernel.setup(0)
    else:
        import jax

        kernel.init(jax.random.PRNGKey(0), 0, init_params=init_params)


# (keyword arguments, argument name, how the value shows in the message)
BAD_KWARGS = [
    (dict(temperature=-0.5), "temperature", "-0.5"),
    (dict(temperature=float("nan")), "temperature", "nan"),
    (dict(temperature="hot"), "temperature", "'hot'"),
    (dict(temperature=0.0, tempering="likelihood"), "temperature", "likelihood"),
    (dict(tempering="prior"), "tempering", "'prior'"),
    (dict(tempering=None), "tempering", "None"),
    (dict(step_size=-0.1), "step_size", "-0.1"),
    (dict(step_size=0.0), "step_size", "0.0"),
    (dict(step_size=schedules.cyclical(0.1, -0.1, cycle_length=10)), "step_size", "v_min=-0.1"),
    (dict(num_steps=0), "num_steps", "0"),
    (dict(num_steps=-3), "num_steps", "-3"),
    (dict(num_steps=2.5), "num_steps", "2.5"),
    (dict(num_steps="10"), "num_steps", "'10'"),
    (dict(num_steps=True), "num_steps", "True"),
    (dict(mass=-1.0), "mass", "-1.0"),
    (dict(mass=0.0), "mass", "0.0"),
    (dict(mass={"x": -2.0}), "mass['x']", "-2.0"),
    (dict(mass={"x": np.array([1.0, -1.0])}), "mass['x']", "-1."),
    (dict(friction=-0.3), "friction", "-0.3"),
    (dict(friction={"x": -0.3}), "friction['x']", "-0.3"),
    (dict(friction={"x": float("inf")}), "friction['x']", "inf"),
    (dict(boost=0.0), "boost", "0.0"),
    (dict(friction_scale=-2.0), "friction_scale", "-2.0"),
    (dict(resample_scale=-0.1), "resample_scale", "-0.1"),
    (dict(resample_scale=schedules.cyclical(0.5, -0.5, cycle_length=4)), "resample_scale", "v_min=-0.5"),
    (dict(explore_noise="no"), "explore_noise", "'no'"),
    (dict(integrator="leapfrog"), "integrator", "'leapfrog'"),
    (dict(integrator="sgnht", temperature=0.0), "temperature", "sgnht"),
    (dict(step_size=3.0, friction=1.0, adapt_mass_matrix=False), "step_size", "step_size=3.0"),
]


@pytest.mark.parametrize("kwargs, name, shown", BAD_KWARGS, ids=[f"{n}={s}" for _, n, s in BAD_KWARGS])
def test_bad_argument_raises_at_construction(backend, kwargs, name, shown):
    SGHMC = _kernel_class(backend)
    potential_fn = gaussian_potential(backend, 0.0, 1.0)
    with pytest.raises(ValueError) as err:
        SGHMC(potential_fn=potential_fn, **kwargs)
    assert name in str(err.value) and shown in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(temperature=0.0),  # T = 0 is the noise-free limit, allowed with posterior tempering
        dict(resample_scale=0.0),  # β = 0 resets the momentum to zero
        dict(step_size=schedules.cyclical(0.1)),  # v_min = 0 is never reached: every draw has ε > 0
        dict(resample_scale=schedules.cyclical(0.5)),
        dict(mass={"x": np.array([1.0, 2.0])}, friction={"x": 0.5}),
        # "baoab"'s friction step is exact: no bound on ε C'/M' (the default refuses this one)
        dict(integrator="baoab", step_size=3.0, friction=1.0, adapt_mass_matrix=False),
        dict(integrator="baoab", temperature=0.0),
    ],
)
def test_valid_edge_values_are_accepted(backend, kwargs):
    SGHMC = _kernel_class(backend)
    kernel = SGHMC(potential_fn=gaussian_potential(backend, 0.0, 1.0), **kwargs)
    _setup(backend, kernel, {"x": as_array(backend, [0.1, 0.2])})


def test_model_and_potential_fn_are_exclusive(backend):
    SGHMC = _kernel_class(backend)
    with pytest.raises(ValueError, match="model"):
        SGHMC()
    with pytest.raises(ValueError, match="model"):
        SGHMC(lambda: None, potential_fn=gaussian_potential(backend, 0.0, 1.0))


def test_likelihood_tempering_needs_a_model(backend):
    SGHMC = _kernel_class(backend)
    with pytest.raises(ValueError) as err:
        SGHMC(potential_fn=gaussian_potential(backend, 0.0, 1.0), tempering="likelihood", temperature=0.5)
    assert "tempering" in str(err.value) and "likelihood" in str(err.value)


@pytest.mark.parametrize("name", ["mass", "friction"])
def test_unknown_site_in_per_site_dict(backend, name):
    SGHMC = _kernel_class(backend)
    kernel = SGHMC(potential_fn=gaussian_potential(backend, 0.0, 1.0), **{name: {"x": 1.0, "w": 2.0}})
    with pytest.raises(ValueError) as err:
        _setup(backend, kernel, {"x": as_array(backend, [0.1, 0.2])})
    assert name in str(err.value) and "'w'" in str(err.value)


def test_per_site_array_of_wrong_shape(backend):
    SGHMC = _kernel_class(backend)
    kernel = SGHMC(potential_fn=gaussian_potential(backend, 0.0, 1.0), mass={"x": np.ones(3)})
    with pytest.raises(ValueError) as err:
        _setup(backend, kernel, {"x": as_array(backend, [0.1, 0.2])})
    assert "mass['x']" in str(err.value) and "(3,)" in str(err.value)


def test_potential_fn_needs_initial_params(backend):
    SGHMC = _kernel_class(backend)
    with pytest.raises(ValueError, match="init"):
        _setup(backend, SGHMC(potential_fn=gaussian_potential(backend, 0.0, 1.0)))


def _discrete_model(backend):
    pyro, dist = _ppl(backend)

    def model():  # a count: no finite support to sum over (a Bernoulli would be summed out)
        z = pyro.sample("z", dist.Poisson(2.0))
        pyro.sample("x", dist.Normal(z, 1.0), obs=as_array(backend, 0.3))

    return model


def _local_latent_model(backend):
    pyro, dist = _ppl(backend)

    def model(y):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", y.shape[0], subsample_size=2) as idx:
            eta = pyro.sample("eta", dist.Normal(mu, 1.0))
            pyro.sample("obs", dist.Normal(eta, 1.0), obs=y[idx])

    return model


@pytest.mark.parametrize(
    "make, args, shown",
    [(_discrete_model, (), "'z'"), (_local_latent_model, (np.arange(4.0),), "'eta'")],
    ids=["discrete", "local-latent"],
)
def test_unsupported_latent_site_raises_at_setup(backend, make, args, shown):
    SGHMC = _kernel_class(backend)
    args = tuple(as_array(backend, a) for a in args)
    kernel = SGHMC(make(backend))  # construction cannot see the model's sites: no error yet
    with pytest.raises(ValueError) as err:
        if backend == "pyro":
            kernel.setup(0, *args)
        else:
            import jax

            kernel.init(jax.random.PRNGKey(0), 0, model_args=args)
    assert shown in str(err.value) and "latent site" in str(err.value)
    # nothing was set up for the dynamics, so no step could run
    assert kernel.static is None


def test_discrete_site_raises_through_mcmc(backend):
    """The user-facing path: ``MCMC.run`` raises the kernel's error before any draw."""
    model = _discrete_model(backend)
    SGHMC = _kernel_class(backend)
    if backend == "pyro":
        from pyro.infer import MCMC

        mcmc = MCMC(SGHMC(model), num_samples=2, disable_progbar=True)
        with pytest.raises(ValueError, match="latent site 'z' is discrete"):
            mcmc.run()
    else:
        import jax
        from numpyro.infer import MCMC

        mcmc = MCMC(SGHMC(model), num_warmup=0, num_samples=2, progress_bar=False)
        with pytest.raises(ValueError, match="latent site 'z' is discrete"):
            mcmc.run(jax.random.PRNGKey(0))


def test_config_json_round_trip():
    """``to_json`` / ``from_json`` give back every argument (schedules and per-site arrays
    included); unknown fields from a newer writer are ignored."""
    import json

    from ppl_kernels import schedules
    from ppl_kernels.config import SGHMCConfig

    cfg = SGHMCConfig(step_size=schedules.cyclical(0.1, 0.01, cycle_length=7, explore_fraction=0.3), num_steps=3,
                      temperature=0.2, tempering="likelihood", mass={"w": np.array([1.0, 2.0])}, friction=3.0,
                      boost=2.0, friction_scale=0.5, resample_scale=0.4, explore_noise=False, thinning=2)
    back = SGHMCConfig.from_json(cfg.to_json())
    for name in ("step_size", "num_steps", "temperature", "tempering", "friction", "boost", "friction_scale",
                 "explore_noise", "thinning"):
        assert getattr(back, name) == getattr(cfg, name), name
    assert back.resample_scale == schedules.constant(0.4)
    np.testing.assert_array_equal(back.mass["w"], [1.0, 2.0])
    newer = json.loads(cfg.to_json()) | {"a_future_option": 1}
    assert SGHMCConfig.from_json(json.dumps(newer)).temperature == 0.2


def test_unstable_friction_step_is_refused_at_construction():
    """``ε γC/(αM) ≥ 2`` flips the momentum's damping: refused before any draw, per site."""
    from ppl_kernels.config import SGHMCConfig

    fixed = dict(adapt_mass_matrix=False)  # friction is C itself
    with pytest.raises(ValueError, match="must be < 2 for a stable integrator, got 2.5"):
        SGHMCConfig(step_size=0.5, friction={"w": np.array([1.0, 5.0])}, **fixed)
    with pytest.raises(ValueError, match="got 2"):
        SGHMCConfig(step_size=1.0, friction=4.0, boost=2.0, **fixed)
    # the ratio is taken coordinate by coordinate, and boost / friction_scale act on it
    assert SGHMCConfig(step_size=0.5, friction={"w": np.array([1.0, 6.0])}, mass={"w": np.array([1.0, 2.0])}, **fixed)
    assert SGHMCConfig(step_size=1.0, friction=4.0, friction_scale=0.25, **fixed)
    # with the mass adapted, friction is a factor on critical damping, C = 2 · friction · M,
    # whatever the mass: a = 2 ε γ friction / α
    with pytest.raises(ValueError, match="got 2.4"):
        SGHMCConfig(step_size=0.3, friction=4.0, mass=100.0)
    assert SGHMCConfig(step_size=0.3, friction=3.0, mass=0.01)


def test_a_site_marked_for_sequential_enumeration_is_refused_saying_why(backend):
    """Discrete sites are summed out in parallel; one marked ``"sequential"`` gets an error
    naming the site and the marks the kernel takes."""
    import importlib

    ppl = importlib.import_module(backend)
    dist = importlib.import_module(f"{backend}.distributions")
    SGHMC = _kernel_class(backend)
    y = as_array(backend, [-1.0, 0.2, 1.5, 2.0])

    def model(y):
        loc = ppl.sample("loc", dist.Normal(0.0, 3.0).expand([2]).to_event(1))
        with ppl.plate("data", 4):
            k = ppl.sample("k", dist.Categorical(as_array(backend, [0.5, 0.5])), infer={"enumerate": "sequential"})
            ppl.sample("y", dist.Normal(loc[k], 1.0), obs=y)

    match = r"latent site 'k' is marked infer=\{'enumerate': 'sequential'\}; .* mark it 'parallel' or leave it unmarked"
    if backend == "pyro":
        from pyro.infer import MCMC

        with pytest.raises(ValueError, match=match):
            MCMC(SGHMC(model, max_plate_nesting=1), num_samples=2, disable_progbar=True).run(y)
    else:
        import jax
        from numpyro.infer import MCMC

        with pytest.raises(ValueError, match=match):
            MCMC(SGHMC(model), num_warmup=0, num_samples=2, progress_bar=False).run(jax.random.PRNGKey(0), y)
