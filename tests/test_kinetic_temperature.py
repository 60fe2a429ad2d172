"""Kinetic and configurational temperature of a run on a Gaussian.

At the continuous stationary law r ~ N(0, T M'), so ``d · T_kin / T ~ χ²_d``.
The default integrator carries r with the exact discrete variance of theory
notes §8a, ``Var r_i = T M' / (1 − a/2 − ε²/(4M'σ_i²))`` with ``a = ε C'/M'``,
so E[T_kin] = mean_i Var r_i / M' (above T by about a/2), and the per-draw
spread is the χ² one: ``Var T_kin = (2/d²) Σ_i (Var r_i / M')²``.
"""

import numpy as np

from targets import HAND_TUNED, anisotropic_gaussian, exact_stationary_cov, mc_mean, mc_var, sample_gaussian, z_score

Z_MAX = 5.0

T = 0.1
# M' = 2 · 1, C' = 2 · 2: a = ε C'/M' = 0.4, so E[T_kin] is about 25 % above T.
KERNEL = dict(step_size=0.2, num_steps=5, temperature=T, mass=1.0, boost=2.0, friction=2.0, friction_scale=2.0)
HAND = dict(KERNEL, **HAND_TUNED)
_MU, _VAR = anisotropic_gaussian(10)
MU, VAR = np.tile(_MU, (8, 1)), np.tile(_VAR, (8, 1))  # 8 replicas: d = 80


def test_kinetic_temperature_matches_discrete_equipartition(backend):
    """The mean of the ``kinetic_temperature`` statistic equals the exact discrete
    value and its variance the χ² value, each within ``Z_MAX`` ESS-based
    standard errors; the naive E[T_kin] = T is rejected.  The
    ``configurational_temperature`` θᵀ∇U/d has mean mean_i Var θ_i / σ_i²
    (= T up to the O(ε²) factor of §8a)."""
    draws, stats = sample_gaussian(backend, MU, VAR, HAND, num_samples=1000, seed=7)
    m_eff = KERNEL["boost"] * KERNEL["mass"]
    cov = exact_stationary_cov(VAR, **KERNEL)
    t_kin_i = cov[..., 1, 1] / m_eff
    expected = t_kin_i.mean()
    expected_var = 2.0 * (t_kin_i**2).sum() / t_kin_i.size**2
    t_kin = stats["kinetic_temperature"]
    mean, se = mc_mean(t_kin)
    var, se_var = mc_var(t_kin)
    print(f"{backend}: E[T_kin] {mean:.5f} ± {se:.2g} (exact {expected:.5f}, T {T}); "
          f"Var T_kin {var:.3g} ± {se_var:.2g} (χ² {expected_var:.3g})")
    assert z_score(mean, se, expected) < Z_MAX
    assert z_score(var, se_var, expected_var) < Z_MAX
    assert z_score(mean, se, T) > Z_MAX  # the discretisation correction is needed

    t_conf, se_conf = mc_mean(stats["configurational_temperature"])
    expected_conf = (cov[..., 0, 0] / VAR).mean()
    print(f"{backend}: E[T_conf] {t_conf:.5f} ± {se_conf:.2g} (exact {expected_conf:.5f})")
    assert z_score(t_conf, se_conf, expected_conf) < Z_MAX
