"""ArviZ export: the same layout from both backends, full-data log-likelihoods of
subsampled models, predictions, attrs, and what ArviZ's own converters lose."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from scipy.stats import norm

os.environ.setdefault("MPLBACKEND", "Agg")

import arviz as az

import arviz_models as am
from ppl_kernels import runner, schedules, to_inference_data
from ppl_kernels._host import kernel_of
from ppl_kernels.config import STAT_FIELDS

BACKENDS = ("pyro", "numpyro")
BATCH = 20
STEP = schedules.cyclical(4e-3, 2e-3, cycle_length=50, explore_fraction=0.0)
GROUPS = {"posterior", "sample_stats", "log_likelihood", "observed_data", "predictions", "predictions_constant_data"}


_RUNS: dict = {}


def linreg_run(backend):
    """One subsampled linear-regression run per backend (2 chains), exported with
    predictions on held-out data; shared by the tests of this module."""
    if backend not in _RUNS:
        mcmc = runner.sample(
            backend, model=am.MODELS["linreg", backend], model_args=am.regression_args(backend, batch=BATCH),
            kernel_kwargs=dict(step_size=STEP, num_steps=10, init_strategy=am.init_to_median(backend)),
            num_samples=100, num_warmup=100, num_chains=2, seed=0,
        )
        X_test, y_test, _ = am.regression_args(backend, split="test")
        idata = to_inference_data(
            mcmc, predictions=dict(model_args=(X_test,), model_kwargs=dict(batch=BATCH), observed={"obs": y_test}),
        )
        _RUNS[backend] = mcmc, idata
    return _RUNS[backend]


def linear_predictor(idata, X):
    post = idata.posterior
    return np.einsum("cdk,nk->cdn", post["w"].values, X) + post["b"].values[..., None], post["sigma"].values[..., None]


def test_same_groups_variables_dims_and_dtypes_from_both_backends():
    a, b = linreg_run("pyro")[1], linreg_run("numpyro")[1]
    assert set(a.groups()) == set(b.groups()) == GROUPS
    for group in GROUPS:
        da, db = a[group], b[group]
        assert set(da.data_vars) == set(db.data_vars), group
        for name in da.data_vars:
            va, vb = da[name], db[name]
            assert (va.dims, va.shape, va.dtype) == (vb.dims, vb.shape, vb.dtype), (group, name)
    assert list(a.sample_stats.data_vars) == list(STAT_FIELDS)
    assert set(a.posterior.data_vars) == {"w", "b", "sigma", "w_norm"}
    assert a.log_likelihood["obs"].shape == (2, 100, am.N_TRAIN)
    backend_specific = {"torch_version", "jax_version", "inference_library_version", "created_at"}
    attrs_a, attrs_b = a.posterior.attrs, b.posterior.attrs
    assert set(attrs_a) - backend_specific == set(attrs_b) - backend_specific


@pytest.mark.parametrize("backend", BACKENDS)
def test_arviz_functions_work_unchanged(backend):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    idata = linreg_run(backend)[1]
    summary = az.summary(idata)
    assert {"w[0]", "w[1]", "w[2]", "b", "sigma", "w_norm"} <= set(summary.index)
    # The posterior is the regression's: the true coefficients lie within 4 posterior sd.
    for i, w in enumerate(am.W_TRUE):
        row = summary.loc[f"w[{i}]"]
        assert abs(row["mean"] - w) < 4 * row["sd"] + 4 * row["mcse_mean"]
    loo = az.loo(idata)
    assert loo.n_data_points == am.N_TRAIN and np.isfinite(loo.elpd_loo)
    table = az.compare({"pyro": linreg_run("pyro")[1], "numpyro": linreg_run("numpyro")[1]})
    assert len(table) == 2 and np.isclose(table.loc[backend, "elpd_loo"], loo.elpd_loo)
    axes = az.plot_trace(idata, var_names=["w", "sigma"])
    assert axes.shape == (2, 2)
    plt.close("all")


@pytest.mark.parametrize("backend", BACKENDS)
def test_netcdf_round_trip(backend, tmp_path):
    idata = linreg_run(backend)[1]
    path = tmp_path / "run.nc"
    idata.to_netcdf(str(path))
    back = az.from_netcdf(str(path))
    assert set(back.groups()) == set(idata.groups())
    for group in idata.groups():
        assert back[group].identical(idata[group]), group
    assert back.posterior.attrs == idata.posterior.attrs


@pytest.mark.parametrize("backend", BACKENDS)
def test_log_likelihood_of_subsampled_model_covers_the_full_data(backend):
    mcmc, idata = linreg_run(backend)
    full = to_inference_data(mcmc, model_args=am.regression_args(backend, batch=None))
    np.testing.assert_array_equal(idata.log_likelihood["obs"].values, full.log_likelihood["obs"].values)
    np.testing.assert_array_equal(idata.observed_data["obs"].values, am.Y_REG_TRAIN)
    # Independently: log N(y | Xw + b, sigma) at every draw, without the plate's N/B scale.
    mu, sigma = linear_predictor(idata, am.X_TRAIN)
    expected = norm.logpdf(am.Y_REG_TRAIN, mu, sigma)
    np.testing.assert_allclose(idata.log_likelihood["obs"].values, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_chunked_log_likelihood_equals_unchunked(backend):
    """Chunks that do not divide N (padded last chunk), small draw chunks, against one
    evaluation of the full-data model.  (Pyro evaluates chunks of its plate's B.)"""
    mcmc, idata = linreg_run(backend)
    X, y, _ = am.regression_args(backend)
    chunked = to_inference_data(mcmc, model_args=(X, y, 50), chunk_size=7, draw_chunk_size=3)
    whole = to_inference_data(mcmc, model_args=(X, y, None), draw_chunk_size=1000)
    # Equal up to single-precision rounding (XLA sums a 7-row and a 120-row product differently):
    # the rounding is relative to the O(1) terms of log N(y | μ, σ), so a log-likelihood near
    # 0 (-0.014) differs by ~1e-7 absolutely.
    np.testing.assert_allclose(chunked.log_likelihood["obs"].values, whole.log_likelihood["obs"].values, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(chunked.observed_data["obs"].values, whole.observed_data["obs"].values)
    np.testing.assert_array_equal(chunked.posterior["w_norm"].values, whole.posterior["w_norm"].values)


def test_pyro_export_vectorised_over_draws_and_pieces_equals_one_at_a_time(monkeypatch):
    """Pyro's plate takes B indices at a time: a chunk of several B-pieces (the last one
    padded) and many draws go through one nested vmap, and give what tracing each draw and
    piece on its own gives."""
    from ppl_kernels.pyro.host import Evaluator

    mcmc, _ = linreg_run("pyro")
    X, y, _ = am.regression_args("pyro")
    looped_calls = {"n": 0}
    orig = Evaluator._looped

    def counting(self, *args):
        looped_calls["n"] += 1
        return orig(self, *args)

    monkeypatch.setattr(Evaluator, "_looped", counting)
    # B = 25 and chunk_size = 60: chunks of 50 rows, N = 120 = 50 + 50 + 20 (padded)
    fast = to_inference_data(mcmc, model_args=(X, y, 25), chunk_size=60, draw_chunk_size=64)
    assert looped_calls["n"] == 0
    monkeypatch.setattr(Evaluator, "_vmapped", staticmethod(lambda *a: (_ for _ in ()).throw(RuntimeError("no"))))
    slow = to_inference_data(mcmc, model_args=(X, y, 25), chunk_size=60, draw_chunk_size=64)
    assert looped_calls["n"] > 0
    np.testing.assert_allclose(fast.log_likelihood["obs"].values, slow.log_likelihood["obs"].values, rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_array_equal(fast.observed_data["obs"].values, am.Y_REG_TRAIN)
    np.testing.assert_array_equal(slow.observed_data["obs"].values, am.Y_REG_TRAIN)
    np.testing.assert_array_equal(fast.posterior["w_norm"].values, slow.posterior["w_norm"].values)


def _linreg_reads_a_python_float(X, y=None, batch=None):
    import pyro
    import pyro.distributions as dist

    w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    b = pyro.sample("b", dist.Normal(0.0, 1.0))
    sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
    with pyro.plate("data", X.shape[0], subsample_size=batch) as idx:
        pyro.sample("obs", dist.Normal(X[idx] @ w + b, float(sigma)), obs=y[idx])  # float(): no vmap


def test_pyro_export_of_a_model_that_cannot_vmap_traces_one_draw_at_a_time():
    mcmc = runner.sample(
        "pyro", model=_linreg_reads_a_python_float, model_args=am.regression_args("pyro", batch=BATCH),
        kernel_kwargs=dict(step_size=STEP, num_steps=10, init_strategy=am.init_to_median("pyro")),
        num_samples=20, num_warmup=20, seed=0,
    )
    idata = to_inference_data(mcmc)
    mu, sigma = linear_predictor(idata, am.X_TRAIN)
    np.testing.assert_allclose(idata.log_likelihood["obs"].values, norm.logpdf(am.Y_REG_TRAIN, mu, sigma),
                               rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_predictions_on_held_out_data(backend):
    idata = linreg_run(backend)[1]
    pred = idata.predictions
    assert pred["obs"].shape == (2, 100, am.N_TEST)
    mu, sigma = linear_predictor(idata, am.X_TEST)
    np.testing.assert_allclose(pred["obs_log_density"].values, norm.logpdf(am.Y_REG_TEST, mu, sigma), rtol=1e-4, atol=1e-4)
    # The predictive draws are N(mu, sigma): standardised residuals are N(0, 1), and
    # independent between points that fall into different chunks (B = 20).
    z = (pred["obs"].values - mu) / sigma
    n = z.size
    assert abs(z.mean()) < 4 / np.sqrt(n)
    assert abs(z.var() - 1) < 4 * np.sqrt(2 / n)
    flat = z.reshape(-1, am.N_TEST)
    corr = np.corrcoef(flat[:, :BATCH].ravel(), flat[:, BATCH : 2 * BATCH].ravel())[0, 1]
    assert abs(corr) < 4 / np.sqrt(flat[:, :BATCH].size)
    const = idata.predictions_constant_data
    np.testing.assert_array_equal(const["X"].values, am.X_TEST)
    np.testing.assert_array_equal(const["obs_observed"].values, am.Y_REG_TEST)


@pytest.mark.parametrize("backend", BACKENDS)
def test_attrs_hold_backend_versions_kernel_arguments_and_seed(backend, monkeypatch):
    mcmc, idata = linreg_run(backend)
    attrs = idata.posterior.attrs
    assert attrs["backend"] == attrs["inference_library"] == backend
    assert attrs["ppl_kernels_version"] and attrs["arviz_version"] == az.__version__
    assert attrs[{"pyro": "torch_version", "numpyro": "jax_version"}[backend]]
    assert attrs["step_size"] == str(STEP) and attrs["num_steps"] == 10 and attrs["temperature"] == 1.0
    assert attrs["resample_scale"] == "None" and "init_to_median" in attrs["init_strategy"]
    assert attrs["model"].endswith(f"linreg_{backend}")
    cfg = json.loads(attrs["kernel_json"])
    assert schedules.from_dict(cfg["step_size"]) == STEP
    assert json.loads(attrs["unconstrained_shapes"]) == {"w": [3], "b": [], "sigma": []}
    assert attrs["seed"] == 0 and attrs["num_chains"] == 2 and attrs["num_samples"] == 100
    assert all(idata[g].attrs["kernel_json"] == attrs["kernel_json"] for g in idata.groups())
    # An MCMC the user made (not through runner.sample) has no recorded seed.
    monkeypatch.setattr(kernel_of(mcmc), "rng_seed", None)
    assert to_inference_data(mcmc, log_likelihood=False).posterior.attrs["seed"] == "None"


@pytest.mark.parametrize("backend", BACKENDS)
def test_arviz_converters_lose_what_we_keep(backend):
    """ArviZ's from_numpyro cannot evaluate a subsampled model; from_pyro keeps no SGHMC statistics
    and no log-likelihood; both keep one minibatch as the observed data."""
    mcmc, ours = linreg_run(backend)
    assert ours.log_likelihood["obs"].shape[-1] == ours.observed_data["obs"].size == am.N_TRAIN
    if backend == "numpyro":
        try:
            theirs = az.from_numpyro(mcmc)
        except ValueError as e:  # the plate needs a random key
            assert "subsampl" in str(e)
            theirs = az.from_numpyro(mcmc, log_likelihood=False)
        assert "log_likelihood" not in theirs.groups()
    else:
        theirs = az.from_pyro(mcmc)
        lost = set(STAT_FIELDS) - set(theirs.sample_stats.data_vars)
        assert lost == set(STAT_FIELDS) - {"diverging"}
        assert "log_likelihood" not in theirs.groups() and "w_norm" not in theirs.posterior
    assert theirs.observed_data["obs"].size < am.N_TRAIN


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_arguments_name_the_argument(backend):
    mcmc, _ = linreg_run(backend)
    X_test, y_test, _ = am.regression_args(backend, split="test")
    with pytest.raises(ValueError, match="chunk_size"):
        to_inference_data(mcmc, chunk_size=0)
    with pytest.raises(ValueError, match="unknown keys.*model_arg"):
        to_inference_data(mcmc, predictions={"model_arg": (X_test,)})
    with pytest.raises(ValueError, match="dims"):
        to_inference_data(mcmc, log_likelihood=False, dims={"b": ["one_too_many"]})
    with pytest.raises(ValueError, match="still observe"):
        to_inference_data(mcmc, log_likelihood=False, predictions=dict(model_args=(X_test, y_test, BATCH)))
    with pytest.raises(ValueError, match="not observed sites"):
        to_inference_data(mcmc, log_likelihood=False, predictions=dict(model_args=(X_test,), observed={"w": y_test}))


def test_coords_and_dims_name_the_data_dimension():
    mcmc, _ = linreg_run("pyro")
    idata = to_inference_data(mcmc, coords={"obs_id": np.arange(am.N_TRAIN) + 1000}, dims={"obs": ["obs_id"]})
    assert idata.log_likelihood["obs"].dims == ("chain", "draw", "obs_id")
    assert idata.observed_data["obs"].dims == ("obs_id",)
    assert idata.observed_data["obs_id"].values[0] == 1000


def test_predictive_mean_of_an_in_memory_export():
    from ppl_kernels import predictive_mean

    mcmc, idata = linreg_run("numpyro")
    mean = predictive_mean(idata)
    assert set(mean.data_vars) == {"obs_mean", "obs_log_density"} and mean.attrs["num_draws"] == 100
    np.testing.assert_allclose(mean.obs_mean.values, idata.predictions.obs.values.mean(1), rtol=1e-6)
    mu, sigma = linear_predictor(idata, am.X_TEST)
    lpd = np.log(norm.pdf(am.Y_REG_TEST, mu, sigma).mean(1))  # (chain, point)
    np.testing.assert_allclose(mean.obs_log_density.values, lpd, rtol=1e-4, atol=1e-4)
    assert mean.obs_log_density.dims == ("chain", "obs_dim_0")
    with pytest.raises(ValueError, match="predictions group"):
        predictive_mean(to_inference_data(mcmc, log_likelihood=False))
    with pytest.raises(ValueError, match="no draw dimension"):
        predictive_mean(idata.observed_data)


def test_a_site_that_cannot_be_sampled_runs_and_exports(backend):
    """``ImproperUniform`` (no ``sample``) with a subsampled plate: the set-up and the
    export trace the model at the init strategy's and the draws' values, never sampling
    it, as NUTS runs such a model; the scale's posterior mean is the data's sd."""
    rng = np.random.default_rng(0)
    y = rng.normal(1.0, 2.0, 2000).astype(np.float32)
    if backend == "pyro":
        import pyro
        import pyro.distributions as dist
        import torch
        from pyro.infer import MCMC
        from pyro.infer.autoguide import init_to_value

        from ppl_kernels.pyro import SGHMC

        def model(data):
            mean = pyro.sample("mean", dist.Normal(0.0, 1.0).mask(False))
            std = pyro.sample("std", dist.ImproperUniform(dist.constraints.positive, (), ()))
            with pyro.plate("N", data.shape[0], subsample_size=100) as i:
                pyro.sample("obs", dist.Normal(mean, std), obs=data[i])

        pyro.set_rng_seed(0)
        # Pyro's init_to_uniform samples the site to find its shape: a value is needed, as for Pyro's HMC
        kernel = SGHMC(model, init_strategy=init_to_value(values={"mean": torch.tensor(0.0), "std": torch.tensor(1.0)}))
        mcmc = MCMC(kernel, warmup_steps=200, num_samples=200, disable_progbar=True)
        mcmc.run(torch.as_tensor(y))
    else:
        import numpyro
        import numpyro.distributions as dist
        from jax import random
        from numpyro.infer import MCMC

        from ppl_kernels.numpyro import SGHMC

        def model(data):
            mean = numpyro.sample("mean", dist.Normal(0.0, 1.0).mask(False))
            std = numpyro.sample("std", dist.ImproperUniform(dist.constraints.positive, (), ()))
            with numpyro.plate("N", data.shape[0], subsample_size=100) as i:
                numpyro.sample("obs", dist.Normal(mean, std), obs=data[i])

        mcmc = MCMC(SGHMC(model), num_warmup=200, num_samples=200, progress_bar=False)
        mcmc.run(random.key(0), y)
    idata = to_inference_data(mcmc)
    assert idata.log_likelihood["obs"].shape[-1] == y.size
    std = idata.posterior["std"]
    # flat priors: the posterior mean of the scale is the data's sd (to O(1/n)); Monte Carlo error from the ESS
    ess = float(az.ess(idata, var_names=["std"])["std"])
    assert abs(float(std.mean()) - y.std()) < 4.5 * float(std.std()) / np.sqrt(ess)
