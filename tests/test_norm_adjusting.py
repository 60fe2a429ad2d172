"""Norm-adjusting SGHMC: boosted mass and momentum resampling r ~ N(0, β M).

Theory notes §8b: with the half kick after each resampling, ``β = α T``
(``α`` = boost) keeps the target for any resampling interval, while
``β ≪ α T`` cools the chain (Var θ and E‖θ‖² shrink).  On a Gaussian every
draw is a linear-Gaussian map, so the exact discrete stationary moments are
known (:func:`targets.exact_stationary_cov`); the tests compare with them
within ``Z_MAX`` ESS-based standard errors.
"""

import numpy as np
import pytest

from targets import (
    HAND_TUNED,
    exact_cycle_mean_var,
    exact_stationary_cov,
    mc_mean,
    mc_var,
    replica_chains,
    sample_gaussian,
    z_score,
)

Z_MAX = 5.0

T = 0.1
REPLICAS = 64  # 64 independent copies of N(0, 1): 64 chains per run
# Base mass 0.25 boosted by α = 4 gives M' = 1; friction C' = 0.5 · 1.
BASE = dict(temperature=T, mass=0.25, boost=4.0, friction=1.0, friction_scale=0.5, **HAND_TUNED)
ALPHA_T = BASE["boost"] * T


@pytest.mark.parametrize(
    "alpha, gamma, beta, expected",
    [
        (1.0, 0.2, 0.1, ("0.1000", "0.0999", "0.0999")),
        (4.0, 0.2, 0.4, ("0.1000", "0.1000", "0.1000")),
        (4.0, 0.2, 0.1, ("0.0250", "0.0252", "0.0274")),
        (0.25, 0.2, 0.1, ("0.400", "0.385", "0.261")),
        (1.0, 0.2, 1.0, ("1.000", "0.989", "0.884")),
    ],
)
def test_exact_moments_reproduce_theory_table(alpha, gamma, beta, expected):
    """The exact cycle-averaged Var θ reproduces theory notes §8b table (ii)
    (half kick; T = 0.1, σ² = M = C = 1, ε = 0.01; k = 1, 10, 100) to its printed digits."""
    for k, printed in zip((1, 10, 100), expected):
        got = exact_cycle_mean_var(1.0, step_size=0.01, temperature=0.1, num_steps=k, resample_scale=beta,
                                   boost=alpha, friction_scale=gamma)
        half_digit = 0.5 * 10.0 ** -len(printed.split(".")[1])
        assert abs(got - float(printed)) <= half_digit * (1 + 1e-9)


@pytest.mark.parametrize("num_steps, step_size, num_samples", [(1, 0.4, 2000), (10, 0.1, 800)])
def test_resampling_keeps_or_cools_the_target(backend, num_steps, step_size, num_samples):
    """Resampling at every draw.

    * ``β = α T``: Var θ and E‖θ‖² equal the exact discrete values, which are
      within a few % of T σ² (k = 1 is a Langevin step with δ = ε²/(2M'),
      Var θ = Tσ²/(1 − δ/(2σ²)) = 1.042 T; at k = 10, ε C'/M' = 0.05 gives 0.986 T:
      the half kick makes β = αT exact only as ε → 0, theory notes §8b).
    * ``β = α T / 10``: Var θ and E‖θ‖² match the exact (cooler) values and are
      significantly below the ``β = α T`` run (two-sample z > ``Z_MAX``).
    """
    kernel = dict(BASE, step_size=step_size, num_steps=num_steps)
    results = {}
    for label, beta in (("exact", ALPHA_T), ("cool", ALPHA_T / 10)):
        draws, stats = sample_gaussian(backend, np.zeros(REPLICAS), 1.0, dict(kernel, resample_scale=beta),
                                       num_samples=num_samples, seed=5 + num_steps)
        assert not stats["diverging"].any()
        assert np.allclose(stats["resample_scale"], beta)
        exact = exact_stationary_cov(1.0, step_size=step_size, num_steps=num_steps, resample_scale=beta,
                                     **BASE)[0, 0]
        v, se_v = mc_var(replica_chains(draws), mean=0.0)
        sq, se_sq = mc_mean(stats["theta_sq_norm"])
        print(f"{backend} k={num_steps} β={beta:g}: Var θ {v:.5f} ± {se_v:.2g} (exact {exact:.5f}, T {T}); "
              f"E|θ|² {sq:.4f} ± {se_sq:.2g} (exact {REPLICAS * exact:.4f})")
        assert z_score(v, se_v, exact) < Z_MAX
        assert z_score(sq, se_sq, REPLICAS * exact) < Z_MAX
        results[label] = (v, se_v, sq, se_sq)
    (v0, se0, sq0, sqse0), (v1, se1, sq1, sqse1) = results["exact"], results["cool"]
    assert v1 < v0 and z_score(v0, se0, v1, se1) > Z_MAX
    assert sq1 < sq0 and z_score(sq0, sqse0, sq1, sqse1) > Z_MAX
