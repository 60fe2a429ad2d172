"""``SGHMC(model)`` with nothing tuned on a conjugate linear regression whose data plate
is subsampled (B = N/8) at T = 1, 0.1 and 0.01 — the case that ran hot before the
warmup adapted anything — against the exact tempered posterior, in both backends; and
the kinetic temperature of the sampling phase inside its band."""

import numpy as np
import pytest
from targets import as_array
from warmup_cases import Z_MAX, kinetic_ratio, regression_data, regression_model, regression_truth, run, z_scores


@pytest.mark.parametrize("temperature", [1.0, 0.1, 0.01])
def test_defaults_sample_a_subsampled_regression_at_the_requested_temperature(backend, temperature):
    X, y = regression_data()
    mcmc, draws, stats, adapted = run(backend, regression_model(backend), (as_array(backend, X), as_array(backend, y)),
                                      temperature=temperature, num_samples=2000, pyro_jit=True)
    (zm, zv), = z_scores(draws, regression_truth(temperature)).values()
    assert np.all(np.abs(zm) < Z_MAX), ("mean z", zm)
    assert np.all(np.abs(zv) < Z_MAX), ("variance z", zv)
    assert not stats["diverging"].any()
    ratio, warning = kinetic_ratio(mcmc)
    assert warning is None, (ratio, warning)
    # the gradient noise was measured, and it (not only the curvature) set the step
    for chain in adapted:
        assert np.all(chain["gradient_noise"]["w"] > 0)
        assert chain["step_size"] < 0.25


@pytest.fixture(scope="module")
def nuts_reference():
    """Long NumPyro NUTS runs (the posteriors are the same in both backends)."""
    from targets import logistic_data, logistic_model, nuts_draws
    from warmup_cases import schools_model

    X, y = logistic_data()
    return {
        "schools": nuts_draws("numpyro", schools_model("numpyro"), num_samples=20000, num_warmup=2000),
        "logistic": nuts_draws("numpyro", logistic_model("numpyro"), (as_array("numpyro", X), as_array("numpyro", y)),
                               num_samples=20000, num_warmup=2000),
    }


@pytest.mark.parametrize("case", ["schools", "logistic"])
def test_defaults_match_long_nuts_runs(backend, case, nuts_reference):
    """Eight schools (non-centred, a hierarchical scale) and a logistic regression: means and
    variances of every latent coordinate against NUTS, two-sample ESS-based z-scores."""
    from targets import logistic_data, logistic_model
    from warmup_cases import schools_model, two_sample_z

    if case == "schools":
        mcmc, draws, stats, _ = run(backend, schools_model(backend), num_samples=2000, pyro_jit=True)
    else:
        X, y = logistic_data()
        mcmc, draws, stats, _ = run(backend, logistic_model(backend), (as_array(backend, X), as_array(backend, y)), pyro_jit=True)
    for site, (zm, zv) in two_sample_z(draws, nuts_reference[case]).items():
        assert np.all(np.abs(zm) < Z_MAX), (site, "mean z", zm)
        assert np.all(np.abs(zv) < Z_MAX), (site, "variance z", zv)
    ratio, warning = kinetic_ratio(mcmc)
    assert warning is None, (ratio, warning)
