"""Schedules: values and phases, serialisation, bad arguments, what the kernels
record per draw, and a noise-free exploration phase (``explore_noise=False``)."""

import json
import math

import numpy as np
import pytest
from targets import as_array, gaussian_potential

from ppl_kernels import runner, schedules
from ppl_kernels._host import get_stats

# cyclical(0.1, 0.02, L=8, explore 1/4): value(k) = 0.02 + 0.04 (cos(π (k mod 8) / 8) + 1),
# written out by hand (cos(π/4) = √2/2, cos(π/2) = 0, cos(3π/4) = −√2/2).
CYC = dict(v_max=0.1, v_min=0.02, cycle_length=8, explore_fraction=0.25)
CYC_VALUES = {
    0: 0.1,
    2: 0.02 + 0.04 * (1 + math.sqrt(2) / 2),
    4: 0.06,
    6: 0.02 + 0.04 * (1 - math.sqrt(2) / 2),
    8: 0.1,
    12: 0.06,
    17: 0.02 + 0.04 * (1 + math.cos(math.pi / 8)),
}
# explore while (k mod 8) / 8 < 1/4, i.e. k mod 8 in {0, 1}
CYC_PHASES = {0: 1, 1: 1, 2: 0, 7: 0, 8: 1, 9: 1, 10: 0, 15: 0, 16: 1}


def test_cyclical_values_and_phases():
    s = schedules.cyclical(**CYC)
    for k, v in CYC_VALUES.items():
        assert s.value(k) == pytest.approx(v, abs=1e-15), k
    for k, p in CYC_PHASES.items():
        assert s.phase(k) == p, k
        assert s(k) == (s.value(k), p)


def test_cyclical_under_jit_matches_python():
    import jax
    import jax.numpy as jnp

    s = schedules.cyclical(**CYC)
    ks = jnp.arange(20)
    values, phases = jax.jit(jax.vmap(lambda k: s(k, jnp)))(ks)
    assert np.allclose(np.asarray(values), [s.value(k) for k in range(20)], rtol=1e-6, atol=0)
    assert np.asarray(phases).tolist() == [s.phase(k) for k in range(20)]


@pytest.mark.parametrize("fraction, expected", [(0.0, [0] * 6), (1.0, [1] * 6), (0.5, [1, 1, 0, 1, 1, 0])])
def test_cyclical_explore_fraction_edges(fraction, expected):
    # L = 3: positions 0, 1/3, 2/3; "explore" is a strict "<" so fraction 0 never explores
    s = schedules.cyclical(1.0, 0.0, cycle_length=3, explore_fraction=fraction)
    assert [s.phase(k) for k in range(6)] == expected


def test_constant_schedule():
    import jax.numpy as jnp

    s = schedules.constant(0.3)
    assert [s(k) for k in (0, 1, 10**9)] == [(0.3, 0)] * 3
    assert float(s.value(jnp.int32(5), jnp)) == pytest.approx(0.3)
    assert schedules.as_schedule(0.3) == s
    assert schedules.as_schedule(s) is s


@pytest.mark.parametrize("s", [schedules.constant(0.25), schedules.cyclical(**CYC), schedules.cyclical(2.0, 1.0, 3, 1.0)])
def test_serialisation_round_trip(s):
    d = s.to_dict()
    assert d["kind"] == s.kind
    back = schedules.from_dict(json.loads(json.dumps(d)))
    assert back == s and type(back) is type(s)
    assert [back(k) for k in range(10)] == [s(k) for k in range(10)]
    assert str(back) == str(s) and str(s).startswith(s.kind + "(")


@pytest.mark.parametrize(
    "make, name, shown",
    [
        (lambda: schedules.cyclical(1.0, 0.0, cycle_length=0), "cycle_length", "0"),
        (lambda: schedules.cyclical(1.0, 0.0, cycle_length=2.5), "cycle_length", "2.5"),
        (lambda: schedules.cyclical(1.0, 0.0, cycle_length=True), "cycle_length", "True"),
        (lambda: schedules.cyclical(1.0, 0.0, explore_fraction=-0.1), "explore_fraction", "-0.1"),
        (lambda: schedules.cyclical(1.0, 0.0, explore_fraction=1.5), "explore_fraction", "1.5"),
        (lambda: schedules.cyclical(float("nan"), 0.0), "v_max", "nan"),
        (lambda: schedules.cyclical(1.0, "low"), "v_min", "'low'"),
        (lambda: schedules.constant(float("inf")), "v", "inf"),
        (lambda: schedules.from_dict({"kind": "linear", "v": 1.0}), "kind", "'linear'"),
    ],
)
def test_bad_schedule_arguments(make, name, shown):
    with pytest.raises(ValueError) as err:
        make()
    assert name in str(err.value) and shown in str(err.value)


# -- what the kernels record ----------------------------------------------------------
STEP = schedules.cyclical(0.05, 0.01, cycle_length=6, explore_fraction=0.5)
RESAMPLE = schedules.cyclical(0.5, 0.1, cycle_length=4, explore_fraction=0.25)


def test_kernel_records_schedule_values(backend):
    num_warmup, num_samples = 3, 12
    mcmc = runner.sample(
        backend, potential_fn=gaussian_potential(backend, 0.0, 1.0),
        init_params={"x": as_array(backend, [0.5, -0.5])},
        kernel_kwargs=dict(step_size=STEP, resample_scale=RESAMPLE, num_steps=2),
        num_samples=num_samples, num_warmup=num_warmup, seed=0,
    )
    stats = get_stats(mcmc)
    ks = range(num_warmup, num_warmup + num_samples)  # draw index counts warmup too
    np.testing.assert_allclose(stats["step_size"][0], [STEP.value(k) for k in ks], rtol=1e-6)
    np.testing.assert_allclose(stats["resample_scale"][0], [RESAMPLE.value(k) for k in ks], rtol=1e-6)
    # a draw explores when either schedule is in its exploration phase
    expected_phase = [max(STEP.phase(k), RESAMPLE.phase(k)) for k in ks]
    assert stats["phase"][0].tolist() == expected_phase
    assert 0 < sum(expected_phase) < num_samples  # both phases occur


def test_no_resampling_records_nan_scale(backend):
    mcmc = runner.sample(
        backend, potential_fn=gaussian_potential(backend, 0.0, 1.0), init_params={"x": as_array(backend, [0.5])},
        kernel_kwargs=dict(step_size=0.05, num_steps=2), num_samples=4, seed=0,
    )
    stats = get_stats(mcmc)
    assert np.isnan(stats["resample_scale"]).all()
    assert (stats["phase"] == schedules.SAMPLE).all()
    np.testing.assert_allclose(stats["step_size"], 0.05, rtol=1e-6)


# -- explore_noise=False: the exploration phase is deterministic -------------------------
# Cycle of 4 draws, the first 2 exploring; a non-quadratic potential so the drift is non-trivial.
EXPLORE_STEP = schedules.cyclical(0.1, 0.05, cycle_length=4, explore_fraction=0.5)


def _quartic(z):
    x = z["x"]
    return (0.5 * x * x + 0.1 * x * x * x * x).sum()


def _kernel_and_state(backend, explore_noise):
    kw = dict(potential_fn=_quartic, step_size=EXPLORE_STEP, num_steps=5, temperature=1.0,
              explore_noise=explore_noise)
    x0 = as_array(backend, [1.0, -0.5, 0.2])
    if backend == "pyro":
        import torch

        from ppl_kernels.pyro import SGHMC

        torch.manual_seed(0)
        kernel = SGHMC(**kw)
        kernel.initial_params = {"x": x0}
        kernel.setup(0)
        return kernel, kernel.state
    import jax

    from ppl_kernels.numpyro import SGHMC

    kernel = SGHMC(**kw)
    return kernel, kernel.init(jax.random.PRNGKey(0), 0, init_params={"x": x0})


def _trajectory(backend, kernel, state, seed, num_draws):
    """θ after each of ``num_draws`` calls of ``kernel.sample`` from ``state``, with the
    random stream seeded by ``seed``."""
    out = []
    if backend == "pyro":
        import torch

        # the chain's random stream is its state's generator state
        kernel.state = state._replace(rng_key=torch.Generator().manual_seed(seed).get_state())
        z = kernel.state.z
        for _ in range(num_draws):
            z = kernel.sample(z)
            out.append(z["x"].numpy().copy())
    else:
        import jax

        draw = jax.jit(lambda s: kernel.sample(s, (), {}))
        state = state._replace(rng_key=jax.random.PRNGKey(seed))
        for _ in range(num_draws):
            state = draw(state)
            out.append(np.asarray(state.z["x"]))
    return np.stack(out)


def test_explore_without_noise_is_deterministic(backend):
    kernel, state0 = _kernel_and_state(backend, explore_noise=False)
    a = _trajectory(backend, kernel, state0, seed=1, num_draws=4)
    b = _trajectory(backend, kernel, state0, seed=2, num_draws=4)
    # draws 0 and 1 explore: no injected noise, so the seed does not matter
    np.testing.assert_array_equal(a[:2], b[:2])
    # draws 2 and 3 sample: noise at T = 1 makes the seeds differ
    assert np.abs(a[2:] - b[2:]).min() > 1e-6


def test_explore_with_noise_is_random(backend):
    kernel, state0 = _kernel_and_state(backend, explore_noise=True)
    a = _trajectory(backend, kernel, state0, seed=1, num_draws=1)
    b = _trajectory(backend, kernel, state0, seed=2, num_draws=1)
    assert np.abs(a - b).min() > 1e-6
