"""A draw that meets a non-finite potential or gradient is flagged ``diverging``,
the chain stays at the draw's starting point with a fresh momentum, and no earlier
draw is touched."""

import numpy as np
import pytest
from targets import as_array

from ppl_kernels import runner
from ppl_kernels._host import get_draws, get_stats
from ppl_kernels.dynamics import INTEGRATORS

EDGE = 3.0  # the potential is NaN beyond x = EDGE
KERNEL = dict(step_size=0.05, num_steps=10, temperature=0.01, friction=1.0)
NUM_SAMPLES = 10


def _cliff(z):
    """``U = −x + √(EDGE − x)``: the force ``1 + 1 / (2√(EDGE − x))`` drives x into the
    edge, where the gradient becomes infinite, and beyond it U and ∇U are NaN."""
    x = z["x"]
    return (-x + (EDGE - x) ** 0.5).sum()


def _run(backend, num_samples, integrator="euler"):
    return runner.sample(
        backend, potential_fn=_cliff, init_params={"x": as_array(backend, [0.0])},
        kernel_kwargs=dict(KERNEL, integrator=integrator), num_samples=num_samples, num_warmup=2, seed=3,
    )


@pytest.mark.parametrize("integrator", INTEGRATORS)
def test_divergence_is_flagged_and_earlier_draws_kept(backend, integrator):
    # the force drives the chain faster than T allows: "sgnht"'s thermostat brakes it
    # (ξ rises from 2 to ~17), so it reaches the edge after ~50 draws instead of ~6
    mcmc = _run(backend, NUM_SAMPLES if integrator != "sgnht" else 80, integrator)
    x = get_draws(mcmc)["x"][0, :, 0]
    stats = get_stats(mcmc)
    diverging = stats["diverging"][0]
    assert diverging.any(), "the chain never reached the edge"
    first = int(np.argmax(diverging))
    # the edge is reached only after a few draws (about 0.5 per draw from x = 0)
    assert first >= 3
    assert not diverging[:first].any()
    assert np.all(np.diff(x[:first]) > 0) and np.all(x[:first] < EDGE)

    # a diverging draw leaves the chain where the draw started, finite
    assert np.isfinite(x).all()
    for i in np.flatnonzero(diverging):
        assert x[i] == x[i - 1]
    for name, values in stats.items():
        if values.dtype.kind == "f" and name != "resample_scale":  # NaN there means "no resampling"
            assert np.isfinite(values).all(), name
    # the force always points at the edge, so the chain meets it again ...
    assert diverging[first + 1:].any()
    # ... but it is not frozen there: after a divergence the momentum is redrawn, so a draw
    # that does not diverge moves the chain (the old momentum would lead straight back)
    for i in np.flatnonzero(~diverging):
        assert x[i] != x[i - 1] if i > 0 else True

    # the draws before the divergence are exactly those of a run that stops before it
    short = _run(backend, first, integrator)
    np.testing.assert_array_equal(get_draws(short)["x"][0, :, 0], x[:first])
    assert not get_stats(short)["diverging"].any()

    if backend == "pyro":
        # Pyro's MCMC reports divergences from the kernel's diagnostics, as for HMC
        assert mcmc.diagnostics()["divergences"]["chain 0"] == np.flatnonzero(diverging).tolist()


def test_a_frozen_chain_warns_naming_the_step_size(backend):
    """A step far too large for the curvature diverges on every draw: the chain stands
    still, and the run says so once, with the step; the defaults' warmup adapts the step
    and the same potential runs without freezing."""
    import warnings

    import pytest
    from targets import HAND_TUNED

    log = __import__("torch").log if backend == "pyro" else __import__("jax.numpy", fromlist=["log"]).log

    def potential(z):  # ½ x² inside |x| < 2, NaN outside
        sq = (z["x"] * z["x"]).sum()
        return 0.5 * sq + 0.0 * log(4.0 - sq)

    init = {"x": as_array(backend, [0.5])}
    with pytest.warns(RuntimeWarning, match=r"chains froze.*chain 0: 30 draws in a row at step_size 10"):
        runner.sample(backend, potential_fn=potential, init_params=init, num_samples=30,
                      kernel_kwargs=dict(step_size=10.0, friction=0.01, **HAND_TUNED))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner.sample(backend, potential_fn=potential, init_params=init, num_samples=100, num_warmup=100)
    assert not any("froze" in str(w.message) for w in caught)


def _ball(backend):
    """``½ x²`` inside ``|x| < 2``, NaN outside: a step of 10 diverges on every draw."""
    log = __import__("torch").log if backend == "pyro" else __import__("jax.numpy", fromlist=["log"]).log

    def potential(z):
        sq = (z["x"] * z["x"]).sum()
        return 0.5 * sq + 0.0 * log(4.0 - sq)

    return potential


def _frozen_messages(caught):
    from ppl_kernels import FrozenChainWarning

    return [str(w.message) for w in caught if issubclass(w.category, FrozenChainWarning)]


def test_a_chain_that_freezes_warns_under_the_hosts_own_mcmc(backend):
    """A user who calls Pyro's or NumPyro's ``MCMC`` directly gets the warning while the
    run goes, once per chain, naming the step size and the draws; a run that does not
    freeze gets none."""
    import warnings

    from targets import HAND_TUNED

    from ppl_kernels import FrozenChainWarning
    from ppl_kernels.config import FROZEN_RUN

    kwargs = dict(step_size=10.0, friction=0.01, **HAND_TUNED)
    num_warmup, num_samples = 5, 30
    last = num_warmup + FROZEN_RUN - 1  # every draw diverges: the 20th sampling draw completes the run
    if backend == "pyro":
        import torch
        from pyro.infer import MCMC

        from ppl_kernels.pyro import SGHMC

        def run(**kw):
            mcmc = MCMC(SGHMC(potential_fn=_ball(backend), **kw), num_samples=num_samples, warmup_steps=num_warmup,
                        initial_params={"x": torch.tensor([0.5])}, disable_progbar=True)
            mcmc.run()
            return [None]
    else:
        import jax
        import jax.numpy as jnp
        from numpyro.infer import MCMC

        from ppl_kernels.numpyro import SGHMC

        def run(**kw):  # two chains vectorised: one host call for both, each named
            mcmc = MCMC(SGHMC(potential_fn=_ball(backend), **kw), num_warmup=num_warmup, num_samples=num_samples,
                        num_chains=2, chain_method="vectorized", progress_bar=False)
            mcmc.run(jax.random.PRNGKey(0), init_params={"x": jnp.full((2, 1), 0.5)})
            jax.effects_barrier()
            return [0, 1]

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        chains = run(**kwargs)
    messages = _frozen_messages(caught)
    assert len(messages) == len(chains)
    for chain, message in zip(chains, messages):
        who = "a chain" if chain is None else f"chain {chain}"
        assert message.startswith(f"{who} froze: the {FROZEN_RUN} kept draws up to draw {last} ")
        assert "step_size 10;" in message and "adapt_step_size=True" in message
    assert issubclass(FrozenChainWarning, RuntimeWarning)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run(step_size=0.1, friction=1.0, **HAND_TUNED)
    assert not _frozen_messages(caught)


def test_the_runner_names_a_frozen_chain_once(backend):
    """Through the runner the kernel's own warning gives way to the check after the run
    (one message for every chain); a streamed run keeps the kernel's, across chunks."""
    import warnings

    from targets import HAND_TUNED

    from ppl_kernels import stream

    init = {"x": as_array(backend, [0.5])}
    kwargs = dict(step_size=10.0, friction=0.01, **HAND_TUNED)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runner.sample(backend, potential_fn=_ball(backend), init_params=init, num_samples=30, kernel_kwargs=kwargs)
    assert [m.split(" (")[0] for m in _frozen_messages(caught)] == ["chains froze, every draw diverging"]

    import tempfile

    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        # chunks of 15: the run of 20 diverging draws ends in the second chunk
        stream(backend, f"{folder}/run", potential_fn=_ball(backend), init_params=init, num_samples=30,
               chunk_draws=15, kernel_kwargs=kwargs)
    messages = _frozen_messages(caught)
    assert len(messages) == 1 and messages[0].startswith("a chain froze: the 20 kept draws up to draw 19 ")
