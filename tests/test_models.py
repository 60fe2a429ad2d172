"""The CLI models: data, registry, exact potentials, and the two backends as twins."""

import numpy as np
import pytest

from ppl_kernels import models
from ppl_kernels.models import MODELS, get_model

BACKENDS = ("pyro", "numpyro")


def _log_joint(spec, params, n=None):
    """log p(data, params) of ``spec.model`` over the first ``n`` data points (the plate not subsampled)."""
    args = tuple(None if a is None else a[:n] for a in spec.model_args[:2]) + (None,)
    if spec.backend == "numpyro":
        import jax.numpy as jnp
        from numpyro.infer.util import log_density

        return float(log_density(spec.model, args, {}, {k: jnp.asarray(v) for k, v in params.items()})[0])
    import torch
    from pyro import poutine

    data = {k: torch.as_tensor(v) for k, v in params.items()}
    return float(poutine.trace(poutine.condition(spec.model, data=data)).get_trace(*args).log_prob_sum())


@pytest.mark.parametrize("name", ["digits", "cancer"])
def test_data_split_is_fixed_and_standardised(name):
    X_tr, y_tr, X_te, y_te = models.load_data(name)
    n = len(y_tr) + len(y_te)
    assert len(y_te) == pytest.approx(models.TEST_FRACTION * n, abs=1)
    moving = X_tr.std(0) > 0
    np.testing.assert_allclose(X_tr.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(X_tr.std(0)[moving], 1.0, rtol=1e-4)
    assert set(np.unique(y_te)) == set(np.unique(y_tr))  # stratified
    models.load_data.cache_clear()
    again = models.load_data(name)
    np.testing.assert_array_equal(again[3], y_te)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", MODELS)
def test_registry_gives_runnable_specs(name, backend):
    spec = get_model(name, backend)
    assert spec.name == name and spec.backend == backend
    X, _, batch = spec.model_args
    assert spec.num_data == X.shape[0] and 1 <= batch <= spec.num_data
    pred = spec.predictions()
    if name in ("bnn-digits", "logreg-cancer"):
        assert pred["model_args"][1] is None and pred["observed"]["y"].shape[0] == pred["model_args"][0].shape[0]
        assert spec.log_density is None
    else:
        assert pred is None and spec.log_density is not None


@pytest.mark.parametrize(
    "kwargs, match",
    [(dict(name="mnist", backend="numpyro"), "name"), (dict(name="double-well", backend="jax"), "backend"),
     (dict(name="bnn-digits", backend="pyro", subsample_size=0), "subsample_size"),
     (dict(name="logreg-cancer", backend="numpyro", subsample_size=10**6), "subsample_size")],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        get_model(**kwargs)


def test_gradient_noise_is_zero_sum_with_the_requested_variance():
    c = models.gradient_noise_coefficients(2.0, dim=2, n=500)
    np.testing.assert_allclose(c.sum(0), 0.0, atol=1e-5)
    # A minibatch of one point, scaled by n, adds n c_i to the gradient: N(0, 4) in each coordinate.
    np.testing.assert_allclose((500 * c).var(0), 4.0, rtol=1e-4)
    assert abs(np.corrcoef(c.T)[0, 1]) < 0.15  # the coordinates are shuffled independently


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name, theta", [("double-well", [[0.3], [-1.7]]), ("mixture-2d", [[0.1, -2.0], [6.0, 9.0]])])
def test_potential_models_carry_exactly_the_potential(name, theta, backend):
    """Over the full noise plate the zero-sum terms cancel and the flat prior adds nothing:
    log p = −U(θ), also far from the modes (the stable log-sum-exp)."""
    spec = get_model(name, backend)
    for th in np.asarray(theta, dtype=np.float32):
        assert _log_joint(spec, {"theta": th}) == pytest.approx(float(spec.log_density(th)), rel=1e-5, abs=1e-4)


def test_mixture_potential_is_the_mixture():
    theta = np.array([[0.3, -0.4], [2.5, 2.5], [-2.0, 3.0]])
    mu, s2 = np.asarray(models.MIXTURE_MEANS), models.MIXTURE_SCALE**2
    direct = -np.log(np.exp(-((theta[:, None] - mu) ** 2).sum(-1) / (2 * s2)).sum(-1))
    np.testing.assert_allclose(models.mixture_2d_potential(theta), direct, rtol=1e-12)


@pytest.mark.parametrize("name", ["bnn-digits", "logreg-cancer"])
def test_backends_are_twins(name):
    """The Pyro and NumPyro versions of a data model have the same sites and log density."""
    rng = np.random.default_rng(0)
    specs = {b: get_model(name, b) for b in BACKENDS}
    from numpyro.handlers import seed, trace

    tr = trace(seed(specs["numpyro"].model, 0)).get_trace(*specs["numpyro"].model_args)
    params = {k: rng.normal(0, 0.5, np.shape(s["value"])).astype(np.float32)
              for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}
    assert sorted(params) == (["b", "w"] if name == "logreg-cancer" else ["b1", "b2", "w1", "w2"])
    values = {b: _log_joint(s, params, n=100) for b, s in specs.items()}
    assert values["pyro"] == pytest.approx(values["numpyro"], rel=1e-4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_mlp_starts_near_zero(backend):
    """The MLP's init strategy puts every weight in ±0.1, as a network before training."""
    spec = get_model("bnn-digits", backend)
    init = spec.kernel_kwargs["init_strategy"]
    if backend == "numpyro":
        from numpyro.handlers import seed, substitute, trace

        tr = trace(substitute(seed(spec.model, 0), substitute_fn=init)).get_trace(*spec.model_args)
        values = {k: np.asarray(s["value"]) for k, s in tr.items() if s["type"] == "sample" and not s["is_observed"]}
    else:
        from pyro import poutine
        from pyro.infer.autoguide.initialization import InitMessenger

        tr = poutine.trace(InitMessenger(init)(spec.model)).get_trace(*spec.model_args)
        values = {k: s["value"].numpy() for k, s in tr.nodes.items()
                  if s["type"] == "sample" and not s["is_observed"] and k != "data"}
    assert sorted(values) == ["b1", "b2", "w1", "w2"]
    assert max(np.abs(v).max() for v in values.values()) <= 0.1
    assert min(np.abs(v).max() for v in values.values()) > 0.05  # uniform in ±0.1, not all zero
