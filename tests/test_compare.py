"""Temperature sweeps (processes, Ray, serial), the comparison table and the sweep plots."""

from __future__ import annotations

import os

import numpy as np
import pytest
from scipy.special import log_softmax, logsumexp

os.environ.setdefault("MPLBACKEND", "Agg")

import arviz as az
import arviz_models as am
from ppl_kernels import compare_temperatures, temperature_sweep
from ppl_kernels.plots import plot_cold_posterior, plot_kinetic_temperature, plot_norm_trajectories

BACKENDS = ("pyro", "numpyro")
SETTINGS = dict(step_size=5e-3, num_steps=5)
NORM_ADJUSTING = ("norm-adjusting", 1.0, dict(boost=3.0, friction_scale=0.1, resample_scale=0.1))
BROKEN = ("broken", 1.0, dict(mass={"no_such_site": 1.0}))  # valid arguments, fails at setup in the worker


def classification_sweep(backend, temperatures, **kw):
    X, y, _ = am.classification_args(backend, batch=20)
    X_test, y_test, _ = am.classification_args(backend, split="test")
    return temperature_sweep(
        am.MODELS["softmax", backend], temperatures, backend=backend, kernel_kwargs=SETTINGS, model_args=(X, y, 20),
        predictions=dict(model_args=(X_test,), observed={"y": y_test}), num_samples=40, num_warmup=20, **kw,
    )


def test_sweep_in_processes_keeps_the_other_runs_when_one_fails():
    with pytest.warns(RuntimeWarning, match="broken"):
        result = classification_sweep("pyro", [0.1, 1.0, NORM_ADJUSTING, BROKEN], executor="process", max_workers=2)
    assert list(result) == ["T=0.1", "T=1", "norm-adjusting"]
    assert list(result.failures) == ["broken"] and "no_such_site" in result.failures["broken"]
    table = compare_temperatures(result)
    assert list(table.index) == ["T=0.1", "T=1", "norm-adjusting"]
    assert table["temperature"].tolist() == [0.1, 1.0, 1.0]
    assert table["boost"].tolist() == [1.0, 1.0, 3.0] and table["resample_scale"].tolist()[-1] == "constant(v=0.1)"
    assert all(result[label].posterior.attrs["label"] == label for label in result)

    fig = plot_norm_trajectories(result)
    assert len(fig.axes) == 3 and all(len(ax.lines) == 3 for ax in fig.axes)
    fig = plot_cold_posterior(table, "test_accuracy")
    assert len(fig.axes[0].containers) == 2  # plain SGHMC and the norm-adjusting setting
    fig = plot_kinetic_temperature(result)
    assert sum(ax.get_visible() for ax in fig.axes) == 3
    with pytest.raises(ValueError, match="metric"):
        plot_cold_posterior(table, "accuracy")


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # Ray starts its daemons by fork + exec
def test_ray_executor_on_a_local_instance():
    """The sweep starts a local Ray instance (2 CPUs), keeps the failure apart, shuts Ray down."""
    import ray

    X, y, _ = am.regression_args("pyro", batch=20)
    with pytest.warns(RuntimeWarning, match="broken"):
        result = temperature_sweep(am.linreg_pyro, [0.5, BROKEN], backend="pyro", kernel_kwargs=SETTINGS,
                                   model_args=(X, y, 20), num_samples=20, executor="ray", max_workers=2)
    assert list(result) == ["T=0.5"] and "no_such_site" in result.failures["broken"]
    assert result["T=0.5"].posterior.attrs["temperature"] == 0.5
    assert result["T=0.5"].log_likelihood["obs"].shape == (1, 20, am.N_TRAIN)
    assert not ray.is_initialized()


@pytest.mark.parametrize("backend", BACKENDS)
def test_compare_table_against_an_independent_computation(backend):
    result = classification_sweep(backend, [0.5, 1.0], executor="serial", seed=2)
    table = compare_temperatures(result)
    assert list(table.index) == ["T=0.5", "T=1"] and table["temperature"].tolist() == [0.5, 1.0]
    for label, idata in result.items():
        row = table.loc[label]
        # The stored class log-probabilities and log densities are the model's, at every draw ...
        W = idata.posterior["W"].values
        logp = log_softmax(np.einsum("nk,cdkj->cdnj", am.X_TEST, W), axis=-1)
        pred_group = idata.predictions
        np.testing.assert_allclose(pred_group["y_class_log_prob"].values, logp, rtol=1e-4, atol=1e-5)
        assert pred_group["y_class_log_prob"].dims[-1] == "y_class" and pred_group["y_class"].values.tolist() == [0, 1, 2]
        at_label = np.take_along_axis(logp, am.Y_CLS_TEST[None, None, :, None], -1)[..., 0]
        np.testing.assert_allclose(pred_group["y_log_density"].values, at_label, rtol=1e-4, atol=1e-5)
        assert pred_group["y"].dtype == np.int64 and set(np.unique(pred_group["y"].values)) <= {0, 1, 2}
        # ... and the held-out accuracy and NLL are those of the posterior predictive.
        logp = logp.reshape(-1, am.N_TEST, am.NUM_CLASSES)
        pred = logsumexp(logp, axis=0) - np.log(len(logp))
        assert np.isclose(row["test_accuracy"], np.mean(pred.argmax(-1) == am.Y_CLS_TEST))
        assert np.isclose(row["test_nll"], -np.mean(pred[np.arange(am.N_TEST), am.Y_CLS_TEST]), rtol=1e-5)
        stats = idata.sample_stats
        assert np.isclose(row["theta_sq_mean"], stats["theta_sq_norm"].values.mean())
        assert np.isclose(row["theta_sq_final"], stats["theta_sq_norm"].values[:, -1].mean())
        assert np.isclose(row["kinetic_temperature_mean"], stats["kinetic_temperature"].values.mean())
        assert np.isfinite(row["elpd_loo"]) and row["se"] > 0 and np.isnan(row["rhat_max"])  # one chain
        # ESS of quantities that identify a network's draws: ‖θ‖² and the held-out log density
        assert row["ess_theta_sq"] == pytest.approx(float(az.ess(stats["theta_sq_norm"].values, method="bulk")))
        per_draw = at_label.mean(-1)
        assert row["ess_test_log_density"] == pytest.approx(float(az.ess(per_draw, method="bulk")), rel=1e-4)
    assert table["elpd_diff"].min() == 0.0 and (table["elpd_diff"] >= 0).all()
    # Targets given at comparison time override the stored ones.
    shuffled = compare_temperatures(result, test_data=np.roll(am.Y_CLS_TEST, 1))
    assert not np.allclose(shuffled["test_nll"], table["test_nll"])
    with pytest.raises(ValueError, match="test_data names"):
        compare_temperatures(result, test_data={"obs": am.Y_CLS_TEST})


def test_bad_sweep_arguments_fail_before_any_run():
    X, y, _ = am.regression_args("pyro", batch=20)
    common = dict(backend="pyro", model_args=(X, y, 20), executor="serial")
    with pytest.raises(ValueError, match="'T=-1'.*temperature must be >= 0"):
        temperature_sweep(am.linreg_pyro, [1.0, -1.0], **common)
    with pytest.raises(ValueError, match="duplicate labels"):
        temperature_sweep(am.linreg_pyro, [1.0, 1], **common)
    with pytest.raises(ValueError, match="executor"):
        temperature_sweep(am.linreg_pyro, [1.0], **{**common, "executor": "threads"})
    with pytest.raises(ValueError, match="kernel_kwargs must not contain 'temperature'"):
        temperature_sweep(am.linreg_pyro, [1.0], kernel_kwargs={"temperature": 2.0}, **common)
    with pytest.raises(ValueError, match="temperatures must"):
        temperature_sweep(am.linreg_pyro, 0.5, **common)
    with pytest.raises(ValueError, match="idatas"):
        compare_temperatures({})
