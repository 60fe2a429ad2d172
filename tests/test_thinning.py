"""Kernel-level ``thinning=k``: one kept sample is ``k`` consecutive draws, the last one
kept, with the schedules advancing per draw, warmup counted in kept samples
(``warmup * k`` draws), statistics of the last draw except ``diverging``, which is
true if any of the ``k`` draws diverged."""

import numpy as np
import pytest
from targets import HAND_TUNED, as_array

from ppl_kernels import runner, schedules
from ppl_kernels._host import get_draws, get_stats

K, NUM_SAMPLES, NUM_WARMUP = 3, 6, 2
EDGE2 = 100.0  # U is NaN where ‖θ‖² > EDGE2

# Deterministic (T = 0, no resampling: zero initial momentum and no noise).  The step
# size alternates between 3 and 1.5 per draw: the integrator (trace ≈ 2 − ε² per
# step) is unstable at ε = 3, so every even draw leaves ‖θ‖² < EDGE2 and diverges,
# and stable at ε = 1.5, so every odd draw is a regular one.  A divergence restarts
# the chain with a fresh momentum (0 at T = 0); the friction damps each stable draw,
# so the restarted chain never drifts out of the ball on a stable draw.
DETERMINISTIC = dict(step_size=schedules.cyclical(3.0, cycle_length=2, explore_fraction=0.0), num_steps=10,
                     temperature=0.0, friction=0.1, **HAND_TUNED)
# Stochastic: a noisy chain on a Gaussian, with momentum resampling.
STOCHASTIC = dict(step_size=0.1, num_steps=5, temperature=1.0, resample_scale=1.0, **HAND_TUNED)


def _potential(backend):
    """``½‖θ‖²`` inside the ball ‖θ‖² < EDGE2, NaN outside (``0 · log`` of a negative number)."""
    log = __import__("torch").log if backend == "pyro" else __import__("jax.numpy", fromlist=["log"]).log

    def u(z):
        sq = (z["x"] * z["x"]).sum() + (z["y"] * z["y"]).sum()
        return 0.5 * sq + 0.0 * log(EDGE2 - sq)

    return u


def _run(backend, kernel, thinning, num_samples, num_warmup, seed=0):
    init = {"x": as_array(backend, [3.0, -2.0]), "y": as_array(backend, [[1.0, 0.5], [-0.5, 2.0]])}
    return runner.sample(backend, potential_fn=_potential(backend), init_params=init, num_samples=num_samples,
                         num_warmup=num_warmup, seed=seed, kernel_kwargs=dict(kernel, thinning=thinning))


def _every_kth(thinned, full, k):
    """Compare kept sample j of ``thinned`` with draw (j + 1) k − 1 of ``full``."""
    draws_t, draws_f = get_draws(thinned), get_draws(full)
    stats_t, stats_f = get_stats(thinned), get_stats(full)
    for site in draws_t:
        assert draws_t[site].shape[1] == NUM_SAMPLES  # stored: num_samples, not num_samples * k
        np.testing.assert_array_equal(draws_t[site], draws_f[site][:, k - 1 :: k], err_msg=site)
    for name in stats_t:
        assert stats_t[name].shape == (1, NUM_SAMPLES), name
        if name != "diverging":
            np.testing.assert_array_equal(stats_t[name], stats_f[name][:, k - 1 :: k], err_msg=name)
    return stats_t, stats_f


def test_deterministic_thinning_keeps_every_kth_draw_and_any_divergence(backend):
    thinned = _run(backend, DETERMINISTIC, K, NUM_SAMPLES, NUM_WARMUP)
    full = _run(backend, DETERMINISTIC, 1, NUM_SAMPLES * K, NUM_WARMUP * K)
    stats_t, stats_f = _every_kth(thinned, full, K)

    # The schedule advances per draw, warmup included: kept sample j is draw (W + j + 1) K − 1.
    index = NUM_WARMUP * K + (np.arange(NUM_SAMPLES) + 1) * K - 1
    np.testing.assert_allclose(stats_t["step_size"][0], [DETERMINISTIC["step_size"].value(int(i)) for i in index])

    # The unthinned chain diverges on exactly the draws with the unstable step size ...
    div_f = stats_f["diverging"][0]
    np.testing.assert_array_equal(div_f, (NUM_WARMUP * K + np.arange(NUM_SAMPLES * K)) % 2 == 0)
    assert not np.isnan(get_draws(full)["x"]).any()
    # ... so every group of K = 3 draws holds a divergence, though half the kept draws did not diverge.
    groups = div_f.reshape(NUM_SAMPLES, K)
    np.testing.assert_array_equal(stats_t["diverging"][0], groups.any(axis=1))
    assert stats_t["diverging"].all() and not groups[:, -1].all()


def test_stochastic_thinning_follows_the_same_random_stream(backend):
    """Same seed: the thinned chain is the unthinned one, every K-th draw (the kernel
    draws the same random numbers in the same order whatever the thinning)."""
    thinned = _run(backend, STOCHASTIC, K, NUM_SAMPLES, NUM_WARMUP, seed=5)
    full = _run(backend, STOCHASTIC, 1, NUM_SAMPLES * K, NUM_WARMUP * K, seed=5)
    stats_t, stats_f = _every_kth(thinned, full, K)
    assert not stats_f["diverging"].any()
    assert np.ptp(get_draws(thinned)["x"][0, :, 0]) > 0.1  # the chain moves


def test_thinning_is_validated(backend):
    with pytest.raises(ValueError, match="thinning"):
        _run(backend, STOCHASTIC, 0, 2, 0)
