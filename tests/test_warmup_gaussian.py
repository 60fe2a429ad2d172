"""``SGHMC(model)`` with nothing tuned converges during its warmup on Gaussians whose
scales span four decades (0.01 … 100) and on a correlated pair (ρ = 0.9), at T = 1,
0.1 and 0.01, in both backends: means and variances (= T σ²) against the exact values
with ESS-derived tolerances, split-R̂ ≤ 1.05 over 2 chains, and the kinetic temperature
of the sampling phase inside its band (no warning); ``integrator="baoab"`` too."""

import numpy as np
import pytest
from warmup_cases import Z_MAX, gaussian_model, gaussian_truth, kinetic_ratio, rhat, run, z_scores


def _assert_converged(mcmc, draws, stats, temperature):
    """Means and variances within ``Z_MAX``, split-R̂ ≤ 1.05, no divergence, no kinetic warning."""
    for site, (zm, zv) in z_scores(draws, gaussian_truth(temperature)).items():
        assert np.all(np.abs(zm) < Z_MAX), (site, "mean z", zm)
        assert np.all(np.abs(zv) < Z_MAX), (site, "variance z", zv)
        assert np.all(rhat(draws, site) <= 1.05), (site, rhat(draws, site))
    assert not stats["diverging"].any()
    ratio, warning = kinetic_ratio(mcmc)
    assert warning is None, (ratio, warning)


@pytest.mark.parametrize("temperature", [1.0, 0.1, 0.01])
def test_defaults_sample_gaussians_at_the_requested_temperature(backend, temperature):
    mcmc, draws, stats, adapted = run(backend, gaussian_model(backend), temperature=temperature)
    _assert_converged(mcmc, draws, stats, temperature)
    # the adapted mass is the curvature: 1/σ² per coordinate of x (within the windows' noise)
    for chain in adapted:
        np.testing.assert_allclose(chain["mass"]["x"], 1.0 / np.array([0.01, 1.0, 100.0, 5.0]) ** 2, rtol=0.2)


def test_baoab_with_the_defaults_samples_gaussians(backend):
    """``SGHMC(model, integrator="baoab")`` with nothing else set: the same warmup, the
    same checks (T = 0.1), its kinetic temperature (of the half-step momentum) at T."""
    mcmc, draws, stats, _ = run(backend, gaussian_model(backend), temperature=0.1, integrator="baoab")
    _assert_converged(mcmc, draws, stats, 0.1)
