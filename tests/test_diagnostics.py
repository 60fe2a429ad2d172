"""Thermodynamic diagnostics: kinetic / configurational temperature and the moment relations,
in both backends, against exact expectations on Gaussian targets."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.stats import chi2

os.environ.setdefault("MPLBACKEND", "Agg")

import arviz as az

import arviz_models as am
from targets import HAND_TUNED
from ppl_kernels import diagnostics as dg
from ppl_kernels import runner, schedules, to_inference_data
from ppl_kernels.plots import plot_kinetic_temperature, plot_moment_check

BACKENDS = ("pyro", "numpyro")


def ess_tolerance(values, level):
    """4 Monte Carlo standard errors of a coverage fraction, from the series' ESS."""
    ess = float(az.ess(np.atleast_2d(values)))  # (chain, draw); a single series is one chain
    return 4 * np.sqrt(level * (1 - level) / ess)


def test_band_and_expected_value_formulas():
    lo, hi = dg.kinetic_temperature_band(0.5, 1000, level=0.99)
    a, b = chi2.interval(0.99, 1000)
    assert np.isclose(lo, 0.5 * a / 1000) and np.isclose(hi, 0.5 * b / 1000)
    # T / (1 - a/2) with a = eps * gamma * C / (alpha * M)
    assert np.isclose(dg.expected_kinetic_temperature(0.5, 0.05, friction=2.0, mass=4.0, boost=0.5, friction_scale=0.5),
                      0.5 / (1 - 0.05 * 0.5 * 2.0 / (0.5 * 4.0) / 2))
    per_coord = dg.expected_kinetic_temperature(1.0, 0.1, friction=np.array([1.0, 3.0]))
    assert np.isclose(per_coord, np.mean([1 / (1 - 0.05), 1 / (1 - 0.15)]))
    with pytest.raises(ValueError, match="level"):
        dg.kinetic_temperature_band(1.0, 10, level=1.5)
    with pytest.raises(ValueError, match="step_size"):
        dg.expected_kinetic_temperature(1.0, 1.0, friction=3.0)
    # "baoab" reports the half-step momentum, exactly N(0, T M') on a Gaussian: T at any step
    assert np.allclose(dg.expected_kinetic_temperature(0.5, [0.05, 1.0], friction=3.0, integrator="baoab"), 0.5)
    with pytest.raises(ValueError, match="integrator='baoab'"):  # its relations are the drift-kick scheme's
        dg.record_steps("pyro", potential_fn=lambda z: (z["x"] ** 2).sum(), init_params={"x": np.zeros(2)},
                        kernel_kwargs=dict(integrator="baoab"))


@pytest.mark.parametrize("backend", BACKENDS)
def test_kinetic_temperature_of_an_exact_gaussian_run_lies_in_its_band(backend):
    """Exact gradients, U = ‖θ‖²/2 in d = 1000, T = 0.5, a = εC/M = 0.05: the mean kinetic
    temperature is T/(1 - a/2) (not T), and draws fall in the 99% band at the nominal rate."""
    T, eps = 0.5, 0.05
    mcmc = runner.sample(backend, potential_fn=am.gaussian_potential, init_params=am.zeros(backend, theta=(1000,)),
                         kernel_kwargs=dict(step_size=eps, num_steps=20, temperature=T, **HAND_TUNED), num_samples=300, num_warmup=50)
    idata = to_inference_data(mcmc)
    assert set(idata.groups()) == {"posterior", "sample_stats"}
    row = dg.kinetic_temperature_check(idata, level=0.99).loc["overall"]
    assert row["dim"] == 1000 and np.isclose(row["expected"], T / (1 - eps / 2))
    assert abs(row["z"]) < 4
    assert (row["mean"] - T) / row["mcse"] > 4  # the uncorrected T is rejected
    values = idata.sample_stats["kinetic_temperature"].values
    assert row["fraction_inside"] > 0.99 - ess_tolerance(values, 0.99)
    conf = dg.configurational_temperature_check(idata).loc["overall"]
    assert abs(conf["z"]) < 4 and conf["temperature"] == T
    fig = plot_kinetic_temperature({"T=0.5": idata})
    assert len(fig.axes) == 1 and len(fig.axes[0].lines) == 3  # T_K, T/(1 - a/2), T


@pytest.mark.parametrize("backend", BACKENDS)
def test_per_site_temperatures_from_the_step_record(backend):
    """Two sites with different friction have different discretisation bias; both match."""
    T, eps, fric = 0.5, 0.05, {"a": 1.0, "b": 3.0}
    steps = dg.record_steps(backend, potential_fn=am.gaussian_potential, init_params=am.zeros(backend, a=(300,), b=(20, 10)),
                            kernel_kwargs=dict(step_size=eps, num_steps=10, temperature=T, friction=fric, boost=2.0, **HAND_TUNED),
                            num_draws=120, seed=3)
    assert list(steps.site.values) == ["a", "b"] and steps["size"].values.tolist() == [300, 200]
    table = dg.kinetic_temperature_check(steps, burn_in=200)
    for site in ("a", "b"):
        assert np.isclose(table.loc[site, "expected"], T / (1 - eps * fric[site] / 2.0 / 2))
        assert abs(table.loc[site, "z"]) < 4
    assert abs(table.loc["overall", "z"]) < 4
    conf = dg.configurational_temperature_check(steps, burn_in=200)
    assert (conf["z"].abs() < 4).all() and list(conf.index) == ["a", "b", "overall"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_step_record_reproduces_the_kernel_draws(backend):
    """At T = 0 (no noise, no minibatches) the dynamics are deterministic: every num_steps-th
    recorded step equals the MCMC run's draw, also under a cyclical step-size schedule."""
    kw = dict(step_size=schedules.cyclical(0.1, 0.02, cycle_length=4, explore_fraction=0.5), num_steps=5,
              temperature=0.0, friction=0.3)
    init = {k: v + 1.0 for k, v in am.zeros(backend, x=(3,), y=(2,)).items()}
    mcmc = runner.sample(backend, potential_fn=am.gaussian_potential, init_params=init, kernel_kwargs=kw, num_samples=12)
    stats = to_inference_data(mcmc).sample_stats
    steps = dg.record_steps(backend, potential_fn=am.gaussian_potential, init_params=init, kernel_kwargs=kw, num_draws=12)
    last = steps.isel(step=slice(4, None, 5))
    np.testing.assert_allclose(last["theta_sq"].values.sum(-1), stats["theta_sq_norm"].values[0], rtol=1e-5)
    np.testing.assert_allclose(last["r_sq"].values.sum(-1), stats["r_sq_norm"].values[0], rtol=1e-5)
    np.testing.assert_allclose(last["step_size"].values, stats["step_size"].values[0], rtol=1e-6)
    assert steps["draw"].values.tolist() == np.repeat(np.arange(12), 5).tolist()


@pytest.mark.parametrize("backend", BACKENDS)
def test_moment_relations_hold_with_the_discrete_terms(backend):
    """Minibatch gradients (B = 20 of 120) and a momentum resampling every draw: the exact
    discrete relations hold; the continuous ‖r‖² relation fails (theory notes §10)."""
    X, y, _ = am.regression_args(backend, batch=20)
    steps = dg.record_steps(
        backend, am.MODELS["linreg", backend], model_args=(X, y, 20), num_draws=150, seed=5,
        kernel_kwargs=dict(step_size=4e-3, num_steps=10, resample_scale=1.0, init_strategy=am.init_to_median(backend)),
    )
    assert steps["resampled"].values.sum() == 150
    table = dg.moment_check(steps, burn_in=300).set_index("relation")
    assert (table["n_steps"] == 1200 - 120).all()  # resampling steps left out
    assert table.loc["theta_sq", "rel_residual"] < 1e-4 and table.loc["theta_sq", "corr_discrete"] > 0.9999
    for rel in ("theta_dot_r", "r_sq"):
        assert abs(table.loc[rel, "z_discrete"]) < 4, rel
    assert abs(table.loc["r_sq", "z_continuous"]) > 4
    windows = dg.moment_check(steps, burn_in=300, window=400)
    assert len(windows) == 3 * 3 and set(windows["window"]) == {0, 1, 2}
    fig = plot_moment_check(steps, smooth=20, burn_in=300)
    assert len(fig.axes) == 3 and all(len(ax.lines) == 3 for ax in fig.axes)


def test_bad_arguments_name_the_argument():
    with pytest.raises(ValueError, match="backend"):
        dg.record_steps("jax", potential_fn=am.gaussian_potential)
    with pytest.raises(ValueError, match="num_draws"):
        dg.record_steps("pyro", potential_fn=am.gaussian_potential, num_draws=0)
    with pytest.raises(ValueError, match="steps must be"):
        dg.moment_check(object())
