"""Targets and Monte Carlo helpers shared by the statistical tests.

Every target is written once and built for either backend (``"pyro"`` or
``"numpyro"``): potentials use only operators and ``.sum()`` so that the same
function body runs on ``torch.Tensor`` and on ``jax.Array``; the models are
the same program written against ``pyro`` or ``numpyro`` (the two libraries
share their ``sample`` / ``plate`` / ``distributions`` names).

The module also holds the exact discrete-time moments of the default
integrator on Gaussian targets (theory notes §8a, §8b) and ESS-based Monte
Carlo standard errors, which the tests use as ground truth and tolerances.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np
import scipy.linalg

__all__ = [
    "BACKENDS",
    "CONJUGATE",
    "HAND_TUNED",
    "as_array",
    "gaussian_potential",
    "gaussian_init",
    "anisotropic_gaussian",
    "exact_stationary_cov",
    "exact_cycle_mean_var",
    "conjugate_model",
    "conjugate_data",
    "conjugate_posterior",
    "logistic_model",
    "logistic_data",
    "logistic_gradient_noise",
    "nuts_draws",
    "mc_mean",
    "mc_var",
    "ess_mean",
    "z_score",
    "sample_gaussian",
    "sample_conjugate",
    "replica_chains",
]

BACKENDS = ("pyro", "numpyro")

#: Hand-tuned settings used as given: no warmup adaptation, ``friction`` the friction C itself
#: (with ``adapt_mass_matrix`` it is a factor on critical damping).
HAND_TUNED = dict(adapt_step_size=False, adapt_mass_matrix=False)

#: Prior and noise of the conjugate test problem: θ ~ N(0, 1), y_i ~ N(θ, 2²).
CONJUGATE = dict(prior_loc=0.0, prior_scale=1.0, noise_scale=2.0)


# -- arrays ----------------------------------------------------------------------------
def as_array(backend: str, x):
    """``x`` as the backend's default floating array (float32 in both)."""
    if backend == "pyro":
        import torch

        return torch.as_tensor(np.asarray(x), dtype=torch.get_default_dtype())
    if backend == "numpyro":
        import jax.numpy as jnp

        return jnp.asarray(np.asarray(x), dtype=jnp.result_type(float))
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


# -- Gaussian potentials ---------------------------------------------------------------
def gaussian_potential(backend: str, mu, var, site: str = "x"):
    """Potential ``U(z) = Σ (z[site] − μ)² / (2 σ²)`` of ``N(μ, diag σ²)``.

    ``mu`` and ``var`` broadcast to the site's shape.  Several independent
    Gaussian sites: pass ``mu`` and ``var`` as ``{site: array}`` dicts (``site``
    is then ignored).  The function body uses only operators and ``.sum()``,
    so it is the same code for both backends.
    """
    mu, var = _by_site(mu, var, site)
    mu_b = {k: as_array(backend, v) for k, v in mu.items()}
    half_prec = {k: as_array(backend, 0.5 / np.asarray(var[k], dtype=float)) for k in mu}

    def potential_fn(z):
        total = 0.0
        for k in mu_b:
            d = z[k] - mu_b[k]
            total = total + (d * d * half_prec[k]).sum()
        return total

    return potential_fn


def gaussian_init(backend: str, mu, var, temperature: float, seed: int = 0, site: str = "x") -> dict:
    """Initial parameters drawn exactly from the tempered target ``N(μ, T σ²)``, so a
    chain starts (up to the O(ε²) discretisation bias) at stationarity.
    ``mu`` and ``var`` may be ``{site: array}`` dicts as in :func:`gaussian_potential`."""
    mu, var = _by_site(mu, var, site)
    rng = np.random.default_rng(seed)
    out = {}
    for k in mu:
        m = np.asarray(mu[k], dtype=float)
        v = np.broadcast_to(np.asarray(var[k], dtype=float), m.shape)
        out[k] = as_array(backend, m + np.sqrt(temperature * v) * rng.standard_normal(m.shape))
    return out


def _by_site(mu, var, site):
    if isinstance(mu, Mapping):
        return dict(mu), dict(var)
    return {site: mu}, {site: var}


def anisotropic_gaussian(dim: int = 10):
    """Mean and variances of the 10-D anisotropic test target: variances spread
    log-uniformly over [0.3, 3] (a 10x condition number) and a non-zero mean."""
    var = np.geomspace(0.3, 3.0, dim)
    mu = np.linspace(-1.0, 2.0, dim)
    return mu, var


# -- exact discrete moments of the integrator on a Gaussian --------------------------------
def _step_map(var, m_eff, c_eff, h, temperature, integrator):
    """One integrator step on ``(θ − μ, r)`` of ``N(μ, var)``: ``x ← a x + noise(q)``."""
    if integrator == "euler":
        a = np.array([[1.0, h / m_eff], [-h / var, 1.0 - h * h / (m_eff * var) - h * c_eff / m_eff]])
        return a, np.array([[0.0, 0.0], [0.0, 2.0 * h * c_eff * temperature]])
    # "baoab": B A O A B, the noise entering at O
    kick = np.array([[1.0, 0.0], [-0.5 * h / var, 1.0]])
    drift = np.array([[1.0, 0.5 * h / m_eff], [0.0, 1.0]])
    c = np.exp(-h * c_eff / m_eff)
    ou = np.diag([1.0, c])
    after = kick @ drift
    q_ou = np.array([[0.0, 0.0], [0.0, temperature * m_eff * (1.0 - c * c)]])
    return after @ ou @ drift @ kick, after @ q_ou @ after.T


def _draw_maps(var, mass, friction, step_size, temperature, num_steps, resample_scale, boost, friction_scale,
               integrator="euler"):
    """Linear map ``Φ`` and noise covariance ``Q`` of one draw on ``(θ − μ, r)`` for
    one coordinate of ``N(μ, var)``: resampling plus half kick (if any; ``"baoab"``
    takes the drawn momentum as it is), then ``num_steps`` integrator steps; also the
    per-step map (for cycle averages)."""
    h = float(step_size)
    m_eff, c_eff = boost * mass, friction_scale * friction
    a, q = _step_map(var, m_eff, c_eff, h, temperature, integrator)
    if resample_scale is None:
        phi, qd = np.eye(2), np.zeros((2, 2))
    elif integrator == "baoab":
        phi = np.array([[1.0, 0.0], [0.0, 0.0]])
        qd = np.array([[0.0, 0.0], [0.0, resample_scale * mass]])
    else:
        # r ← √(βM) ξ − (h/2) ∇U(θ)
        phi = np.array([[1.0, 0.0], [-0.5 * h / var, 0.0]])
        qd = np.array([[0.0, 0.0], [0.0, resample_scale * mass]])
    start = (phi, qd)
    for _ in range(num_steps):
        phi, qd = a @ phi, a @ qd @ a.T + q
    return phi, qd, a, q, start


def exact_stationary_cov(var, *, mass=1.0, friction=1.0, step_size, temperature, num_steps=1,
                         resample_scale=None, boost=1.0, friction_scale=1.0, adapt_step_size=False,
                         adapt_mass_matrix=False, integrator="euler") -> np.ndarray:
    """Exact stationary covariance of ``(θ, r)`` at the end of a draw, per coordinate.

    On a Gaussian target each coordinate of the default integrator (theory notes
    §1.2, with the half kick after resampling, §8b ii) is a linear-Gaussian
    chain ``x ← Φ x + noise``; its stationary covariance solves the discrete
    Lyapunov equation ``S = Φ S Φᵀ + Q``.  Without resampling this is the
    closed form of theory notes §8a.  ``integrator="baoab"``: the same for the
    splitting B A O A B (its Var θ is exactly ``T var`` at any stable step).

    Returns
    -------
    numpy.ndarray
        Shape ``var.shape + (2, 2)``: ``[..., 0, 0]`` is Var θ, ``[..., 1, 1]`` Var r.
    The kernel settings must be used as given (``adapt_*`` false, :data:`HAND_TUNED`).
    """
    if adapt_step_size or adapt_mass_matrix:
        raise ValueError("the exact moments are those of fixed settings: pass HAND_TUNED")
    var = np.asarray(var, dtype=float)
    out = np.empty(var.shape + (2, 2))
    for idx, v in np.ndenumerate(var):
        phi, qd, *_ = _draw_maps(v, mass, friction, step_size, temperature, num_steps, resample_scale,
                                 boost, friction_scale, integrator)
        out[idx] = scipy.linalg.solve_discrete_lyapunov(phi, qd)
    return out


def exact_cycle_mean_var(var, *, mass=1.0, friction=1.0, step_size, temperature, num_steps,
                         resample_scale=None, boost=1.0, friction_scale=1.0, adapt_step_size=False,
                         adapt_mass_matrix=False) -> float:
    """Var θ averaged over the ``num_steps`` positions of a draw (the "cycle-averaged"
    quantity tabulated in theory notes §8b), for one coordinate."""
    if adapt_step_size or adapt_mass_matrix:
        raise ValueError("the exact moments are those of fixed settings: pass HAND_TUNED")
    s = exact_stationary_cov(var, mass=mass, friction=friction, step_size=step_size, temperature=temperature,
                             num_steps=num_steps, resample_scale=resample_scale, boost=boost,
                             friction_scale=friction_scale)
    _, _, a, q, (phi0, q0) = _draw_maps(float(var), mass, friction, step_size, temperature, num_steps,
                                        resample_scale, boost, friction_scale)
    s = phi0 @ s @ phi0.T + q0
    total = 0.0
    for _ in range(num_steps):
        s = a @ s @ a.T + q
        total += s[0, 0]
    return total / num_steps


# -- conjugate Gaussian model ------------------------------------------------------------
def _ppl(backend: str):
    if backend == "pyro":
        import pyro
        import pyro.distributions as dist

        return pyro, dist
    if backend == "numpyro":
        import numpyro
        import numpyro.distributions as dist

        return numpyro, dist
    raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")


def conjugate_model(backend: str, replicas: int | None = None):
    """``θ ~ N(m₀, s₀²)``, ``y_i ~ N(θ, σ²)`` (known σ), in the backend's language.

    Call as ``model(y, prior_loc, prior_scale, noise_scale, subsample_size=None)``
    with ``y`` of shape ``(n,)``.  With ``replicas=K``, θ has shape ``(K,)``: K
    independent copies of the same posterior (each sees all the data), i.e. K
    chains in one run.
    """
    ppl, dist = _ppl(backend)

    def model(y, prior_loc, prior_scale, noise_scale, subsample_size=None):
        theta = ppl.sample("theta", dist.Normal(prior_loc, prior_scale))
        with ppl.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
            ppl.sample("obs", dist.Normal(theta, noise_scale), obs=y[idx])

    def replicated_model(y, prior_loc, prior_scale, noise_scale, subsample_size=None):
        with ppl.plate("replicas", replicas, dim=-1):
            theta = ppl.sample("theta", dist.Normal(prior_loc, prior_scale))
            with ppl.plate("data", y.shape[0], subsample_size=subsample_size, dim=-2) as idx:
                ppl.sample("obs", dist.Normal(theta, noise_scale), obs=y[idx][:, None])

    return model if replicas is None else replicated_model


def conjugate_data(n: int = 10, theta: float = 0.7, noise_scale: float = 2.0, seed: int = 0) -> np.ndarray:
    """``n`` observations ``y_i ~ N(theta, noise_scale²)`` from a fixed seed."""
    return theta + noise_scale * np.random.default_rng(seed).standard_normal(n)


def conjugate_posterior(y, prior_loc, prior_scale, noise_scale, temperature=1.0, tempering="likelihood"):
    """Mean and variance of the tempered posterior of :func:`conjugate_model`.

    ``"likelihood"``: ``p(D|θ)^{1/T} p(θ)``; ``"posterior"``: ``(p(D|θ) p(θ))^{1/T}``.
    """
    y = np.asarray(y, dtype=float)
    prior_prec, lik_prec = 1.0 / prior_scale**2, y.size / noise_scale**2
    if tempering == "likelihood":
        prec = prior_prec + lik_prec / temperature
        mean = (prior_loc * prior_prec + y.sum() / noise_scale**2 / temperature) / prec
    elif tempering == "posterior":
        prec = (prior_prec + lik_prec) / temperature
        mean = (prior_loc * prior_prec + y.sum() / noise_scale**2) / (prior_prec + lik_prec)
    else:
        raise ValueError(f"tempering must be 'likelihood' or 'posterior', got {tempering!r}")
    return mean, 1.0 / prec


# -- logistic regression -----------------------------------------------------------------------
def logistic_model(backend: str):
    """Bayesian logistic regression ``w ~ N(0, I)``, ``b ~ N(0, 1)``,
    ``y_i ~ Bernoulli(logits = x_iᵀw + b)``, with an optionally subsampled data plate.

    Call as ``model(X, y, subsample_size=None)``.
    """
    ppl, dist = _ppl(backend)

    def model(X, y, subsample_size=None):
        n, d = X.shape
        w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([d]).to_event(1))
        b = ppl.sample("b", dist.Normal(0.0, 1.0))
        with ppl.plate("data", n, subsample_size=subsample_size) as idx:
            logits = (X[idx] * w).sum(-1) + b
            ppl.sample("obs", dist.Bernoulli(logits=logits), obs=y[idx])

    return model


def logistic_data(n: int = 200, d: int = 2, seed: int = 0):
    """Standardised features ``X`` (n, d) and labels ``y`` (n,) from a fixed seed."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    X = (X - X.mean(0)) / X.std(0)
    w_true = np.linspace(1.0, -0.5, d)
    y = (rng.random(n) < 1.0 / (1.0 + np.exp(-(X @ w_true + 0.3)))).astype(float)
    return X, y


def logistic_gradient_noise(X, y, params, subsample_size: int) -> np.ndarray:
    """Covariance V of the minibatch estimate of ∇ log p(D|θ) for :func:`logistic_model`,
    averaged over the parameter draws ``params`` (rows ``[w..., b]``).

    The estimate ``(N/B) Σ_batch ∇ log p(y_i|x_i, θ)`` of a batch drawn without
    replacement has covariance ``N² S² (1 − B/N) / B`` with ``S²`` the sample
    covariance of the per-datum gradients.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n, b = X.shape[0], subsample_size
    xa = np.c_[X, np.ones(n)]
    v = np.zeros((xa.shape[1],) * 2)
    for theta in np.atleast_2d(params):
        g = xa * (y - 1.0 / (1.0 + np.exp(-xa @ theta)))[:, None]
        v += np.cov(g.T)
    return n * n * (v / len(np.atleast_2d(params))) * (1.0 - b / n) / b


def nuts_draws(backend: str, model, model_args=(), *, num_samples: int, num_warmup: int, seed: int = 0) -> dict:
    """Reference draws ``{site: (chain, draw, ...)}`` from the backend's own NUTS."""
    from ppl_kernels._host import get_draws

    if backend == "pyro":
        import pyro
        from pyro.infer import MCMC, NUTS

        pyro.set_rng_seed(seed)
        mcmc = MCMC(NUTS(model, jit_compile=True, ignore_jit_warnings=True), num_samples=num_samples,
                    warmup_steps=num_warmup, disable_progbar=True)
        mcmc.run(*model_args)
    else:
        import jax
        from numpyro.infer import MCMC, NUTS

        mcmc = MCMC(NUTS(model), num_samples=num_samples, num_warmup=num_warmup, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(seed), *model_args)
    return get_draws(mcmc)


# -- Monte Carlo error ---------------------------------------------------------------------
def _chains(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[None] if x.ndim == 1 else x


def ess_mean(x) -> float:
    """ESS for the mean of a ``(chain, draw)`` (or ``(draw,)``) array (ArviZ's ``method="mean"``)."""
    import arviz as az

    return float(az.ess(_chains(x), method="mean"))


def mc_mean(x):
    """Sample mean and its Monte Carlo standard error ``sd / √ESS``."""
    x = _chains(x)
    return float(x.mean()), float(x.std() / np.sqrt(ess_mean(x)))


def mc_var(x, mean=None):
    """Sample variance and its Monte Carlo standard error.

    The variance is the mean of ``(x − x̄)²``; its error is that of a mean of a
    correlated series, ``sd((x − x̄)²) / √ESS``.  Pass the known ``mean`` to centre
    on it instead of the sample mean.
    """
    x = _chains(x)
    d2 = (x - (x.mean() if mean is None else mean)) ** 2
    return mc_mean(d2)


def replica_chains(x) -> np.ndarray:
    """Draws ``(chain, draw, K, ...)`` of a site holding ``K`` independent replicas
    as ``(chain * K, draw, ...)``: each replica is one more chain for ESS."""
    x = np.asarray(x, dtype=float)
    x = np.moveaxis(x, 2, 1)
    return x.reshape((-1,) + x.shape[2:])


def sample_gaussian(backend: str, mu, var, kernel_kwargs: dict, *, num_samples: int, num_warmup: int = 0,
                    seed: int = 0, site: str = "x"):
    """Run SGHMC on ``N(μ, diag σ²)`` (potential form) started from an exact draw of
    the tempered target; return ``(draws, stats)`` as numpy arrays.

    ``draws`` has shape ``(chain, draw) + μ.shape`` (a ``{site: array}`` dict when
    ``mu`` and ``var`` are dicts); ``stats`` is :func:`ppl_kernels._host.get_stats`
    of the run.
    """
    from ppl_kernels import runner
    from ppl_kernels._host import get_draws, get_stats

    temperature = kernel_kwargs.get("temperature", 1.0)
    mcmc = runner.sample(
        backend, potential_fn=gaussian_potential(backend, mu, var, site),
        init_params=gaussian_init(backend, mu, var, temperature, seed, site), kernel_kwargs=kernel_kwargs,
        num_samples=num_samples, num_warmup=num_warmup, seed=seed,
    )
    draws = get_draws(mcmc)
    return (draws if isinstance(mu, Mapping) else draws[site]), get_stats(mcmc)


def sample_conjugate(backend: str, kernel_kwargs: dict, *, replicas: int = 64, num_samples: int,
                     num_warmup: int, seed: int = 0):
    """Run SGHMC on :func:`conjugate_model` with ``replicas`` copies of θ, the data of
    :func:`conjugate_data` and the prior and noise of :data:`CONJUGATE`; return ``(theta, stats)`` with
    ``theta`` as ``(replicas, draw)`` chains (:func:`replica_chains`)."""
    from ppl_kernels import runner
    from ppl_kernels._host import get_draws, get_stats

    mcmc = runner.sample(
        backend, model=conjugate_model(backend, replicas=replicas),
        model_args=(as_array(backend, conjugate_data()), *CONJUGATE.values()), kernel_kwargs=kernel_kwargs,
        num_samples=num_samples, num_warmup=num_warmup, seed=seed,
    )
    return replica_chains(get_draws(mcmc)["theta"]), get_stats(mcmc)


def z_score(a, se_a, b, se_b=0.0) -> float:
    """``|a − b| / √(se_a² + se_b²)``: the two-sample (or one-sample) z statistic."""
    return abs(a - b) / float(np.hypot(se_a, se_b))
