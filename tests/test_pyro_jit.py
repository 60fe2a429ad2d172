"""``ppl_kernels.pyro.SGHMC(jit_compile=True)``: the traced potential gives the eager
chain's numbers (same seed), and a potential that cannot be traced faithfully
falls back to the eager one with a warning, never silently.  (Pyro only: NumPyro
always compiles.)"""

import numpy as np
import pyro
import pyro.distributions as dist
import pytest
import torch

from ppl_kernels import runner
from ppl_kernels._host import get_draws, get_stats
from ppl_kernels.pyro import SGHMC

KERNEL = dict(step_size=2e-3, num_steps=5, temperature=1.0, resample_scale=1.0)


def _model(X, y, subsample_size=None):
    """Linear regression with a positive noise scale (a non-identity transform, so the
    log-Jacobian is part of the traced graph) and a subsampled data plate."""
    zero, one = X.new_zeros(()), X.new_ones(())
    w = pyro.sample("w", dist.Normal(zero, one).expand([X.shape[1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(one))
    with pyro.plate("data", X.shape[0], subsample_size=subsample_size) as idx:
        pyro.sample("y", dist.Normal(X[idx] @ w, sigma), obs=y[idx])


def _frozen_indices_model(X, y, subsample_size=None):
    """The same model, indexing through Python integers: a trace freezes the indices."""
    zero, one = X.new_zeros(()), X.new_ones(())
    w = pyro.sample("w", dist.Normal(zero, one).expand([X.shape[1]]).to_event(1))
    sigma = pyro.sample("sigma", dist.HalfNormal(one))
    with pyro.plate("data", X.shape[0], subsample_size=subsample_size) as idx:
        rows = idx.tolist()
        pyro.sample("y", dist.Normal(X[rows] @ w, sigma), obs=y[rows])


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3))
    y = X @ np.array([1.0, -0.5, 0.2]) + 0.3 * rng.standard_normal(200)
    return torch.as_tensor(X), torch.as_tensor(y)  # float64: differences would be rounding only


def _run(model, data, **kw):
    return runner.sample("pyro", model=model, model_args=data, model_kwargs={"subsample_size": 20},
                         kernel_kwargs=dict(KERNEL, **kw), num_samples=30, num_warmup=5, seed=1)


def test_jit_gives_the_eager_chain(data, recwarn):
    eager, jit = _run(_model, data), _run(_model, data, jit_compile=True)
    assert not [w for w in recwarn if "jit_compile" in str(w.message)]
    de, dj = get_draws(eager), get_draws(jit)
    for site in de:
        assert de[site].dtype == np.float64
        np.testing.assert_allclose(dj[site], de[site], rtol=1e-10, atol=1e-12, err_msg=site)
    assert np.ptp(de["w"][0, :, 0]) > 1e-2  # the chain moved
    se, sj = get_stats(eager), get_stats(jit)
    for name in se:
        np.testing.assert_allclose(sj[name], se[name], rtol=1e-9, atol=1e-9, equal_nan=True, err_msg=name)


def test_frozen_indices_fall_back_to_eager_with_a_warning(data):
    with pytest.warns(RuntimeWarning, match="jit_compile=True: the traced potential's .* differs"):
        jit = _run(_frozen_indices_model, data, jit_compile=True, ignore_jit_warnings=True)
    eager = _run(_frozen_indices_model, data)
    np.testing.assert_array_equal(get_draws(jit)["w"], get_draws(eager)["w"])


def test_tracing_error_falls_back_to_eager_with_a_warning():
    def potential(z):
        if torch.jit.is_tracing():
            raise RuntimeError("not traceable")
        return 0.5 * (z["x"] ** 2).sum()

    init = {"x": torch.zeros(2)}
    with pytest.warns(RuntimeWarning, match="tracing the potential failed .*not traceable"):
        mcmc = runner.sample("pyro", potential_fn=potential, init_params=init, num_samples=5,
                             kernel_kwargs=dict(KERNEL, jit_compile=True))
    assert np.isfinite(get_draws(mcmc)["x"]).all()


@pytest.mark.parametrize("name", ["jit_compile", "ignore_jit_warnings"])
def test_jit_flags_are_validated(name):
    with pytest.raises(ValueError, match=name):
        SGHMC(potential_fn=lambda z: z["x"].sum(), **{name: 1})
