"""Minibatches handed to a model from outside (``minibatches=Minibatches(N, B)``), in both
backends: the same chain as the model written with a subsampled plate; the check that
the minibatch reaches the likelihood; TyXe's ``MCMC_BNN`` sampling with real minibatches
against the exact posterior of a Bayesian linear regression."""

import importlib

import numpy as np
import pytest
from targets import as_array, conjugate_data, mc_mean, mc_var, z_score

from ppl_kernels import Minibatches, runner
from ppl_kernels._host import get_draws, get_stats

N, B = 200, 25
Z_MAX = 5.0


def _models(backend):
    """The conjugate model ``θ ~ N(0, 1)``, ``y_i ~ N(θ, 2²)`` written twice: with a plate
    that subsamples its own indices, and fed its minibatch from outside (Pyro: a plate
    given ``subsample=``, as TyXe's likelihoods; NumPyro: a plate whose ``subsample_size``
    is the batch's length)."""
    ppl = importlib.import_module(backend)
    dist = importlib.import_module(f"{backend}.distributions")

    def subsampled(y):
        theta = ppl.sample("theta", dist.Normal(0.0, 1.0))
        with ppl.plate("data", y.shape[0], subsample_size=B) as idx:
            ppl.sample("obs", dist.Normal(theta, 2.0), obs=y[idx])

    def fed(y):
        theta = ppl.sample("theta", dist.Normal(0.0, 1.0))
        if backend == "pyro":
            import torch

            plate = ppl.plate("data", size=N, subsample=torch.arange(y.shape[0]))
        else:
            plate = ppl.plate("data", N, subsample_size=y.shape[0])
        with plate:
            ppl.sample("obs", dist.Normal(theta, 2.0), obs=y)

    return subsampled, fed


def test_fed_minibatches_give_the_chain_of_a_subsampled_plate(backend):
    """With the defaults (the self-tuning warmup included) the kernel draws the fed
    minibatches as it draws a plate's, so both models give the same draws."""
    subsampled, fed = _models(backend)
    y = as_array(backend, conjugate_data(N))
    kw = dict(model_args=(y,), num_samples=200, num_warmup=200, num_chains=2, seed=4)
    a = runner.sample(backend, model=subsampled, **kw)
    b = runner.sample(backend, model=fed, kernel_kwargs=dict(minibatches=Minibatches(N, B)), **kw)
    np.testing.assert_allclose(get_draws(b)["theta"], get_draws(a)["theta"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(get_stats(b)["step_size"], get_stats(a)["step_size"], rtol=1e-5)


def test_a_minibatch_that_does_not_reach_the_likelihood_is_refused(backend):
    _, fed = _models(backend)
    y = as_array(backend, conjugate_data(N))
    whole = Minibatches(N, B, select=lambda idx, args, kwargs: ((args[0][:B],), kwargs))  # ignores idx
    with pytest.raises(ValueError, match="does not change with the minibatch that minibatches="):
        runner.sample(backend, model=fed, model_args=(y,), kernel_kwargs=dict(minibatches=whole), num_samples=5)


def test_minibatches_arguments_are_checked():
    with pytest.raises(ValueError, match=r"minibatches.batch_size must be at most minibatches.size=10, got 20"):
        Minibatches(10, 20)
    with pytest.raises(ValueError, match="minibatches.size must be a positive integer, got 0"):
        Minibatches(0, 1)
    with pytest.raises(ValueError, match="minibatches.select must be a function"):
        Minibatches(10, 2, select=3)
    from ppl_kernels.pyro import SGHMC

    with pytest.raises(ValueError, match="minibatches must be a ppl_kernels.Minibatches, got 5"):
        SGHMC(lambda: None, minibatches=5)


def test_default_select_indexes_the_data_arguments_only():
    mb = Minibatches(4, 2)
    x, labels, other = np.arange(8).reshape(4, 2), np.arange(4), np.ones(3)
    args, kwargs = mb.arguments(np.array([3, 1]), ((x,), labels, other), {"y": labels, "k": 7})
    np.testing.assert_array_equal(args[0][0], x[[3, 1]])
    np.testing.assert_array_equal(args[1], [3, 1])
    assert args[2] is other and kwargs["k"] == 7
    np.testing.assert_array_equal(kwargs["y"], [3, 1])


def test_tyxe_mcmc_bnn_samples_with_real_minibatches():
    """TyXe's MCMC_BNN (its own model, prior and likelihood, whose plate takes the batch
    from outside) with ``SGHMC(model, minibatches=...)`` and no tuning, on a network that is
    one linear layer: a Bayesian linear regression, whose posterior is known exactly."""
    import pyro
    import pyro.distributions as dist
    import torch
    import tyxe  # installed by the README's test command

    from ppl_kernels.pyro import SGHMC

    rng = np.random.default_rng(0)
    n, batch, sigma = 400, 40, 0.5
    x = rng.normal(size=(n, 1)).astype(np.float32)
    y = (1.5 * x - 0.7 + sigma * rng.normal(size=(n, 1))).astype(np.float32)
    # exact posterior of (weight, bias) under N(0, 1) priors
    design = np.hstack([x, np.ones_like(x)]).astype(float)
    precision = design.T @ design / sigma**2 + np.eye(2)
    cov = np.linalg.inv(precision)
    mean = cov @ design.T @ y[:, 0] / sigma**2

    seen = []
    pyro.set_rng_seed(0)
    net = torch.nn.Linear(1, 1)
    net.register_forward_hook(lambda mod, inp, out: seen.append(inp[0].shape[0]))
    bnn = tyxe.bnn.MCMC_BNN(net, tyxe.priors.IIDPrior(dist.Normal(0.0, 1.0)),
                            tyxe.likelihoods.HomoskedasticGaussian(n, scale=sigma),
                            lambda model: SGHMC(model, minibatches=Minibatches(n, batch)))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)),
                                         batch_size=100)
    mcmc = bnn.fit(loader, 1000, warmup_steps=500, disable_progbar=True)
    assert set(seen) >= {batch} and max(seen) == n  # steps see minibatches; the set-up trace the data
    samples = mcmc.get_samples(group_by_chain=True)
    draws = np.stack([samples["net.weight"].reshape(1, -1).numpy(), samples["net.bias"].reshape(1, -1).numpy()], -1)
    for j in range(2):
        m, se_m = mc_mean(draws[..., j])
        v, se_v = mc_var(draws[..., j])
        assert z_score(m, se_m, mean[j]) < Z_MAX, (j, m, mean[j], se_m)
        assert z_score(v, se_v, cov[j, j]) < Z_MAX, (j, v, cov[j, j], se_v)
