"""Discrete latent sites summed out, as the hosts' NUTS sums them (both backends).

The summed-out log density is checked against brute force (every joint
configuration of the discrete sites) and against closed forms with a
subsampled plate, where the plate's ``N/B`` belongs outside each member's sum
over its values.  Sampling is checked with ``SGHMC(model)`` defaults against
exact posteriors: the Bernoulli latent model by its closed form, the
subsampled mixture by quadrature on a grid.
"""

import importlib
import itertools

import numpy as np
import pytest
import scipy.special
import scipy.stats
from targets import as_array, mc_mean, mc_var, z_score

from ppl_kernels.enumeration import Enumerated

Z_MAX = 4.5


def _ppl(backend):
    return importlib.import_module(backend), importlib.import_module(f"{backend}.distributions")


def _parts(backend, model, args, values, indices=None):
    """``(log_likelihood, log_prior)`` the kernel would use at constrained ``values``."""
    m = importlib.import_module(f"ppl_kernels.{backend}.model")
    if backend == "pyro":
        from pyro.infer.autoguide.initialization import init_to_uniform as init
    else:
        from numpyro.infer.initialization import init_to_uniform as init
    plates = m.find_subsample_plates(model, args, {})
    sites, summed, nesting = m.latent_sites(model, args, {}, plates, init)
    assert summed, "the model should have sites to sum out"
    target = Enumerated.over(model, nesting, plates)
    transforms = m.transforms_of(sites)
    z = {k: transforms[k](as_array(backend, v)) for k, v in values.items()}
    idx = {} if indices is None else {k: as_array(backend, np.asarray(v)) for k, v in indices.items()}
    if backend == "numpyro":
        idx = {k: v.astype("int32") for k, v in idx.items()}
    else:
        idx = {k: v.long() for k, v in idx.items()}
    lik, prior = m.log_joint_parts(target, args, {}, transforms, z, idx)
    return float(lik), float(prior), sorted(summed)


def _bernoulli_latent_model(backend):
    """Pyro's ``test_hmc.py::test_bernoulli_latent_model``: a global and a local discrete
    site, the local one depending on the global one, and a nuisance site."""
    ppl, dist = _ppl(backend)

    def model(data):
        y_prob = ppl.sample("y_prob", dist.Beta(1.0, 1.0))
        y = ppl.sample("y", dist.Bernoulli(y_prob))
        with ppl.plate("data", data.shape[0]):
            z = ppl.sample("z", dist.Bernoulli(0.65 * y + 0.1))
            ppl.sample("obs", dist.Normal(2.0 * z, 1.0), obs=data)
        ppl.sample("nuisance", dist.Bernoulli(0.3))

    return model


def test_nested_sites_sum_to_brute_force(backend):
    """Global ``y``, local ``z`` given ``y`` and an unrelated ``nuisance``: the log-likelihood
    is the log of the sum over all 2 · 2⁵ · 2 joint configurations."""
    data = np.array([-0.4, 2.1, 1.7, 0.3, 2.6])
    p = 0.37
    lik, _, summed = _parts(backend, _bernoulli_latent_model(backend), (as_array(backend, data),), {"y_prob": p})
    assert summed == ["nuisance", "y", "z"]
    terms = []
    for y, n, *z in itertools.product([0, 1], [0, 1], *[[0, 1]] * len(data)):
        z = np.array(z)
        pz = 0.65 * y + 0.1
        terms.append(np.log(p if y else 1 - p) + np.log(0.3 if n else 0.7)
                     + np.sum(np.where(z == 1, np.log(pz), np.log(1 - pz)))
                     + scipy.stats.norm(2.0 * z, 1.0).logpdf(data).sum())
    assert lik == pytest.approx(scipy.special.logsumexp(terms), rel=1e-5)


def _mixture(backend, size, subsample_size, marked=True):
    ppl, dist = _ppl(backend)
    infer = {"enumerate": "parallel"} if marked else {}

    def model(data):
        w = ppl.sample("w", dist.Beta(2.0, 2.0))
        loc0 = ppl.sample("loc0", dist.Normal(-2.0, 1.0))
        loc1 = ppl.sample("loc1", dist.Normal(2.0, 1.0))
        with ppl.plate("data", size, subsample_size=subsample_size) as idx:
            k = ppl.sample("k", dist.Bernoulli(w), infer=infer)
            ppl.sample("obs", dist.Normal(loc0 + (loc1 - loc0) * k, 1.0), obs=data[idx])

    return model


def _mixture_log_lik(x, w, loc0, loc1):
    """Each point's log density with its assignment summed out."""
    return np.logaddexp(np.log1p(-w) + scipy.stats.norm(loc0, 1).logpdf(x), np.log(w) + scipy.stats.norm(loc1, 1).logpdf(x))


@pytest.mark.parametrize("marked", [True, False], ids=["marked", "unmarked"])
def test_local_sites_of_a_subsampled_plate_scale_outside_their_sum(backend, marked):
    """``(N/B) Σ_{i∈B} log Σ_k p(k) p(xᵢ|k)``: the plate's scale multiplies each member's
    marginal (scaling inside the sum would give another number).  An unmarked discrete
    site is summed out as well, as the hosts' NUTS sums it."""
    data = np.linspace(-3.0, 3.0, 12)
    idx = np.array([1, 4, 7, 10])
    values = {"w": 0.4, "loc0": -1.5, "loc1": 1.2}
    lik, prior, summed = _parts(backend, _mixture(backend, 12, 4, marked), (as_array(backend, data),), values,
                                {"data": idx})
    assert summed == ["k"]
    expected = 3.0 * _mixture_log_lik(data[idx], **values).sum()
    assert lik == pytest.approx(expected, rel=1e-5)
    inside = np.logaddexp(3 * (np.log1p(-0.4) + scipy.stats.norm(-1.5, 1).logpdf(data[idx])),
                          3 * (np.log(0.4) + scipy.stats.norm(1.2, 1).logpdf(data[idx]))).sum()
    assert abs(lik - inside) > 0.1  # far beyond the tolerance above
    # the prior part holds the continuous sites only (with the log-Jacobian of w's logit)
    w = values["w"]
    assert prior == pytest.approx(scipy.stats.beta(2, 2).logpdf(w) + np.log(w * (1 - w)) + scipy.stats.norm(-2, 1).logpdf(-1.5)
                                  + scipy.stats.norm(2, 1).logpdf(1.2), rel=1e-5)


def test_a_global_site_takes_the_plates_minibatch_estimate(backend):
    """A global discrete site over a subsampled likelihood: ``log Σ_y p(y) exp((N/B) Σ_{i∈B}
    log p(xᵢ|y))``, the scaled minibatch estimate of each value's log-likelihood."""
    ppl, dist = _ppl(backend)

    def model(data):
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        y = ppl.sample("y", dist.Bernoulli(0.4))
        with ppl.plate("data", 10, subsample_size=5) as idx:
            ppl.sample("obs", dist.Normal(mu + 2.0 * y, 1.0), obs=data[idx])

    data = np.linspace(0.0, 3.0, 10)
    idx = np.array([0, 2, 4, 6, 8])
    lik, _, _ = _parts(backend, model, (as_array(backend, data),), {"mu": 0.3}, {"data": idx})
    per_y = [np.log(0.6) + 2 * scipy.stats.norm(0.3, 1).logpdf(data[idx]).sum(),
             np.log(0.4) + 2 * scipy.stats.norm(2.3, 1).logpdf(data[idx]).sum()]
    assert lik == pytest.approx(scipy.special.logsumexp(per_y), rel=1e-5)


def _setup_error(backend, model, *args):
    SGHMC = importlib.import_module(f"ppl_kernels.{backend}").SGHMC
    args = tuple(as_array(backend, a) for a in args)
    with pytest.raises(ValueError) as err:
        if backend == "pyro":
            SGHMC(model).setup(0, *args)
        else:
            import jax

            SGHMC(model).init(jax.random.PRNGKey(0), 0, model_args=args)
    return str(err.value)


def test_crossed_plates_and_foreign_scales_are_refused(backend):
    """Sites local to two crossed plates that meet in one factor (no tree of plates), and a
    ``scale`` inside the sum over values, get errors naming the site and why."""
    ppl, dist = _ppl(backend)
    data = np.zeros((3, 4))

    def crossed(data):
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        with ppl.plate("rows", 3, dim=-2):
            a = ppl.sample("a", dist.Bernoulli(0.5))
        with ppl.plate("cols", 4, dim=-1):
            b = ppl.sample("b", dist.Bernoulli(0.5))
        with ppl.plate("rows2", 3, dim=-2), ppl.plate("cols2", 4, dim=-1):
            ppl.sample("obs", dist.Normal(mu + a + b, 1.0), obs=data)

    msg = _setup_error(backend, crossed, data)
    assert "cannot sum out the discrete latent site 'a'" in msg and "do not nest" in msg

    handlers = importlib.import_module("pyro.poutine" if backend == "pyro" else "numpyro.handlers")

    def scaled(data):
        mu = ppl.sample("mu", dist.Normal(0.0, 1.0))
        with handlers.scale(scale=0.5):
            k = ppl.sample("k", dist.Bernoulli(0.5))
        ppl.sample("obs", dist.Normal(mu + k, 1.0), obs=data)

    msg = _setup_error(backend, scaled, np.zeros(()))
    assert "cannot sum out the discrete latent site 'k'" in msg and "scaled by 0.5" in msg


def test_a_markov_chain_of_recycled_dims_is_refused():
    """``pyro.markov`` lets the sites of a chain share enumeration dims (NumPyro's summing sets
    one dim per site and has no such context): their sum needs the chain's order, so the
    kernel refuses it, naming the site, where summing them as independent dims would be
    wrong."""
    import pyro
    import pyro.distributions as dist

    def hmm(data):
        loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
        x = 0
        for t in pyro.markov(range(len(data))):
            probs = as_array("pyro", [[0.9, 0.1], [0.2, 0.8]])[x]
            x = pyro.sample(f"x_{t}", dist.Categorical(probs))
            pyro.sample(f"y_{t}", dist.Normal(loc + x, 1.0), obs=data[t])

    msg = _setup_error("pyro", hmm, np.zeros(4))
    assert "cannot sum out the discrete latent site 'x_2'" in msg and "forward algorithm" in msg


# -- sampling with the defaults ------------------------------------------------------------------------
def _run(backend, model, args, *, num_warmup, num_samples, seed=0, at_median=False):
    SGHMC = importlib.import_module(f"ppl_kernels.{backend}").SGHMC
    args = tuple(as_array(backend, a) for a in args)
    if backend == "pyro":
        import pyro
        from pyro.infer import MCMC
        from pyro.infer.autoguide.initialization import init_to_median

        pyro.set_rng_seed(seed)
        kernel = SGHMC(model, init_strategy=init_to_median) if at_median else SGHMC(model)
        mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=num_warmup, disable_progbar=True)
        mcmc.run(*args)
    else:
        import jax
        from numpyro.infer import MCMC
        from numpyro.infer.initialization import init_to_median

        kernel = SGHMC(model, init_strategy=init_to_median) if at_median else SGHMC(model)
        mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), *args)
    return {k: np.asarray(v) for k, v in mcmc.get_samples().items()}


def test_defaults_sample_the_bernoulli_latent_posterior(backend):
    """The exact posterior of ``y_prob``: ``y`` summed out leaves a mixture of Beta(2, 1) and
    Beta(1, 2) weighted by each value's likelihood (itself a product of sums over ``z``).
    The data are chosen so that both weights matter."""
    rng = np.random.default_rng(1)
    z = rng.random(10) < 0.45
    data = np.where(z, 2.0, 0.0) + rng.standard_normal(10)
    log_l = [np.logaddexp(np.log1p(-(0.65 * y + 0.1)) + scipy.stats.norm(0, 1).logpdf(data),
                          np.log(0.65 * y + 0.1) + scipy.stats.norm(2, 1).logpdf(data)).sum() for y in (0, 1)]
    w1 = scipy.special.expit(log_l[1] - log_l[0])
    assert 0.2 < w1 < 0.8, "both values of y should carry weight"
    mean = w1 * 2 / 3 + (1 - w1) / 3
    var = w1 * 0.5 + (1 - w1) / 6 - mean**2
    draws = _run(backend, _bernoulli_latent_model(backend), (data,), num_warmup=400, num_samples=1000)
    assert set(draws) == {"y_prob"}  # the summed-out sites are not draws, as with NUTS
    m, se = mc_mean(draws["y_prob"])
    v, se_v = mc_var(draws["y_prob"])
    assert z_score(m, se, mean) < Z_MAX, (m, se, mean)
    assert z_score(v, se_v, var) < Z_MAX, (v, se_v, var)


def _grid_posterior(data):
    """Posterior means and variances of the mixture's ``(w, loc0, loc1)`` by quadrature."""
    w = np.linspace(0.2, 0.8, 61)
    l0 = np.linspace(-3.2, -0.8, 61)
    l1 = np.linspace(0.8, 3.2, 61)
    W, L0, L1 = np.meshgrid(w, l0, l1, indexing="ij")
    log_p = (scipy.stats.beta(2, 2).logpdf(W) + scipy.stats.norm(-2, 1).logpdf(L0) + scipy.stats.norm(2, 1).logpdf(L1)
             + _mixture_log_lik(data[:, None, None, None], W, L0, L1).sum(0))
    p = np.exp(log_p - log_p.max())
    p /= p.sum()
    for axis in range(3):  # the grid holds the posterior: its edges carry no mass
        edge = p.sum(axis=tuple(a for a in range(3) if a != axis))
        assert edge[0] < 1e-6 and edge[-1] < 1e-6
    out = {}
    for name, g in (("w", W), ("loc0", L0), ("loc1", L1)):
        mean = (p * g).sum()
        out[name] = (mean, (p * (g - mean) ** 2).sum())
    return out


def test_defaults_sample_a_subsampled_mixture(backend):
    """``SGHMC(model)`` on a two-component mixture whose assignments are summed out inside a
    plate of 200 subsampled 20 at a time: means and variances of the weight and both
    locations against quadrature of the full-data posterior.  The chains start at the
    priors' medians: the mixture's label-switched mode (``loc0`` near +2) is a second
    mode that any chain started there stays in, NUTS's as well, and the priors make
    it the improbable one."""
    rng = np.random.default_rng(1)
    k = rng.random(200) < 0.4
    data = np.where(k, 2.0, -2.0) + rng.standard_normal(200)
    truth = _grid_posterior(data)
    draws = _run(backend, _mixture(backend, 200, 20), (data,), num_warmup=500, num_samples=1000, at_median=True)
    for name, (mean, var) in truth.items():
        m, se = mc_mean(draws[name])
        v, se_v = mc_var(draws[name])
        assert z_score(m, se, mean) < Z_MAX, (name, m, se, mean)
        assert z_score(v, se_v, var) < Z_MAX, (name, v, se_v, var)


# -- the ArviZ export ---------------------------------------------------------------------------------
def _bernoulli_mixture(backend):
    """Binary data from two coins, each point's coin summed out (subsampled when n > 20)."""
    ppl, dist = _ppl(backend)

    def model(n, data=None):
        w = ppl.sample("w", dist.Beta(2.0, 2.0))
        p0 = ppl.sample("p0", dist.Beta(2.0, 5.0))
        p1 = ppl.sample("p1", dist.Beta(5.0, 2.0))
        with ppl.plate("data", n, subsample_size=20 if n > 20 else None) as idx:
            k = ppl.sample("k", dist.Bernoulli(w))
            ppl.sample("obs", dist.Bernoulli(p0 + (p1 - p0) * k), obs=None if data is None else data[idx])

    return model


def _short_run(backend, model, *args):
    SGHMC = importlib.import_module(f"ppl_kernels.{backend}").SGHMC
    if backend == "pyro":
        import pyro
        from pyro.infer import MCMC

        pyro.set_rng_seed(0)
        mcmc = MCMC(SGHMC(model), num_samples=20, warmup_steps=30, disable_progbar=True)
        mcmc.run(*args)
    else:
        import jax
        from numpyro.infer import MCMC

        mcmc = MCMC(SGHMC(model), num_warmup=30, num_samples=20, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0), *args)
    return mcmc


def test_export_sums_each_points_assignment_out(backend):
    """``log_likelihood`` (every point of the subsampled plate), the held-out targets' log
    density and the held-out class log-probabilities are each point's marginal
    ``log Σ_k p(k) p(yᵢ | k)``, not a density given one drawn assignment; the summed site is
    not a draw, as with NUTS."""
    from ppl_kernels.arviz import to_inference_data

    rng = np.random.default_rng(0)
    y = (rng.random(60) < 0.5).astype(float)
    y_new = np.array([1.0, 0.0, 1.0, 1.0, 0.0])
    cast = (lambda a: as_array(backend, a)) if backend == "pyro" else (lambda a: as_array(backend, a).astype("int32"))
    mcmc = _short_run(backend, _bernoulli_mixture(backend), 60, cast(y))
    idata = to_inference_data(mcmc, predictions={"model_args": (5,), "observed": {"obs": cast(y_new)}})
    post = idata.posterior
    assert set(post.data_vars) == {"w", "p0", "p1"}
    w, p0, p1 = (post[n].values[..., None] for n in ("w", "p0", "p1"))
    q = (1 - w) * p0 + w * p1  # P(y = 1) with the coin summed out

    def log_marginal(v):
        return np.where(v == 1, np.log(q), np.log1p(-q))

    np.testing.assert_allclose(idata.log_likelihood["obs"].values, log_marginal(y), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(idata.predictions["obs_log_density"].values, log_marginal(y_new), rtol=1e-5, atol=1e-6)
    classes = idata.predictions["obs_class_log_prob"].values
    np.testing.assert_allclose(classes, np.stack([np.log1p(-q), np.log(q)], -1).repeat(5, axis=-2), rtol=1e-5, atol=1e-6)


def test_export_leaves_out_a_site_whose_summed_site_is_shared(backend):
    """In the Bernoulli latent model every point depends on the one global ``y``: the points
    have no pointwise log density, so ``log_likelihood`` leaves ``obs`` out with a warning
    naming both sites; the draws and the observed data are exported."""
    from ppl_kernels.arviz import to_inference_data

    data = as_array(backend, np.array([0.1, 2.2, 1.9, -0.3]))
    mcmc = _short_run(backend, _bernoulli_latent_model(backend), data)
    with pytest.warns(UserWarning, match="log_likelihood leaves out 'obs'.*summed-out discrete site 'y'"):
        idata = to_inference_data(mcmc)
    assert "log_likelihood" not in idata.groups()
    assert set(idata.posterior.data_vars) == {"y_prob"}
    np.testing.assert_allclose(idata.observed_data["obs"].values, [0.1, 2.2, 1.9, -0.3], rtol=1e-6)
