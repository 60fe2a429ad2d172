"""Exact posterior moments and z-scores shared by the two host-suite ports.

Imported as a top-level module (pytest puts ``tests/host_suites`` on ``sys.path`` for the
test files in it, as it puts ``tests`` for ``targets``).
"""

import numpy as np
from targets import mc_mean, z_score

#: The z-score a posterior mean or variance may reach (fixed seeds; a bias shows as a larger one).
Z_MAX = 4.5


def mean_z(draws, truth, se_truth=0.0, chains=False):
    """Per-coordinate ``(mean, z)`` of ``draws`` against ``truth``: ``z = |mean − truth| / √(se² + se_truth²)``
    with ``se = sd / √ESS``.  ``draws`` is ``(draw, ...)``, or ``(chain, draw, ...)`` with ``chains=True``."""
    draws = np.asarray(draws, dtype=float)
    if not chains:
        draws = draws[None]
    flat = draws.reshape(draws.shape[:2] + (-1,))
    truth = np.broadcast_to(np.asarray(truth, dtype=float), draws.shape[2:]).reshape(-1)
    se_truth = np.broadcast_to(np.asarray(se_truth, dtype=float), draws.shape[2:]).reshape(-1)
    out = []
    for j in range(flat.shape[-1]):
        mean, se = mc_mean(flat[..., j])
        out.append((mean, z_score(mean, se, truth[j], se_truth[j])))
    return np.array(out)


def report(case, **values):
    """Print the measured values; ``pytest -rP`` shows them (the port's table is made from them)."""
    print(case, {k: np.round(np.asarray(v, dtype=float), 4).tolist() for k, v in values.items()})


def logistic_posterior_mean(X, y, num_draws=10000, seed=0):
    """Posterior mean of ``β ~ N(0, I)``, ``y ~ Bernoulli(logits = Xβ)`` by importance sampling
    from the Laplace approximation widened 1.2 times (tails wider than the posterior's).

    Returns
    -------
    (mean, se)
        The mean and its standard error ``sd / √(importance-sampling ESS)``.
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    d = X.shape[1]
    w = np.zeros(d)
    for _ in range(50):  # Newton's method for the mode
        p = 1.0 / (1.0 + np.exp(-X @ w))
        hess = (X * (p * (1 - p))[:, None]).T @ X + np.eye(d)
        w = w + np.linalg.solve(hess, X.T @ (y - p) - w)
    chol = np.linalg.cholesky(1.44 * np.linalg.inv(hess))
    draws = w + np.random.default_rng(seed).standard_normal((num_draws, d)) @ chol.T
    log_w = np.empty(num_draws)
    for lo in range(0, num_draws, 2000):
        b = draws[lo:lo + 2000]
        logits = b @ X.T
        delta = np.linalg.solve(chol, (b - w).T)
        log_lik = (y * logits - np.logaddexp(0.0, logits)).sum(1)
        log_w[lo:lo + 2000] = log_lik - 0.5 * (b * b).sum(1) + 0.5 * (delta * delta).sum(0)
    weights = np.exp(log_w - log_w.max())
    weights /= weights.sum()
    mean = weights @ draws
    return mean, np.sqrt(weights @ (draws - mean) ** 2 * (weights * weights).sum())


def gamma_beta_posterior_mean(x, prior_rate=1.0):
    """Posterior means of ``alpha, beta ~ Gamma(1, prior_rate)``, ``x ~ Beta(alpha, beta)`` by
    quadrature: a coarse grid finds the posterior, a fine one (±8 sd) integrates it."""
    from scipy.special import gammaln

    x = np.asarray(x, dtype=float)
    n, s1, s0 = x.size, np.log(x).sum(), np.log1p(-x).sum()

    def moments(a_axis, b_axis):
        a, b = np.meshgrid(a_axis, b_axis, indexing="ij")
        log_post = n * (gammaln(a + b) - gammaln(a) - gammaln(b)) + (a - 1) * s1 + (b - 1) * s0 - prior_rate * (a + b)
        w = np.exp(log_post - log_post.max())
        w /= w.sum()
        return [((w * v).sum(), np.sqrt((w * v * v).sum() - (w * v).sum() ** 2)) for v in (a, b)]

    coarse = moments(np.geomspace(0.01, 100, 600), np.geomspace(0.01, 100, 600))
    fine = moments(*[np.linspace(max(m - 8 * s, 1e-6), m + 8 * s, 801) for m, s in coarse])
    return {"alpha": fine[0][0], "beta": fine[1][0]}


def _bernoulli_latent_site_likelihoods(data):
    """``log Σ_z p(z | y) N(x | 2z, 1)`` for y = 0 and 1, per data point (``z ~ Bernoulli(0.65 y + 0.1)``)."""
    from scipy.stats import norm

    x = np.asarray(data, dtype=float)
    return [np.logaddexp(np.log1p(-(0.65 * y + 0.1)) + norm(0, 1).logpdf(x), np.log(0.65 * y + 0.1) + norm(2, 1).logpdf(x))
            for y in (0, 1)]


def bernoulli_latent_posterior_mean(data, local):
    """Posterior mean of ``y_prob ~ Beta(1, 1)`` in the Bernoulli latent model, with ``y``
    global (``local=False``: a mixture of Beta(1, 2) and Beta(2, 1) weighted by the two
    values' likelihoods) or one ``y`` per data point (``local=True``: quadrature of
    ``Π_i ((1 − p) m₀ᵢ + p m₁ᵢ)`` on a fine grid)."""
    from scipy.special import expit

    m0, m1 = _bernoulli_latent_site_likelihoods(data)
    if not local:
        w1 = expit(m1.sum() - m0.sum())
        return w1 * 2 / 3 + (1 - w1) / 3
    p = np.linspace(1e-6, 1 - 1e-6, 20001)
    log_post = np.logaddexp(np.log1p(-p)[:, None] + m0, np.log(p)[:, None] + m1).sum(1)
    w = np.exp(log_post - log_post.max())
    return float((w * p).sum() / w.sum())


def change_point_posterior_mean(counts, alpha):
    """Posterior means of ``λ₁, λ₂ ~ Exponential(alpha)`` in NumPyro's change-point model
    (``τ`` uniform on 0..69, counts Poisson with rate λ₁ before ``τ`` and λ₂ from it): for
    each ``τ`` the rates are Gamma-conjugate, and ``τ``'s posterior is the Gamma-Poisson
    marginal."""
    from scipy.special import gammaln

    c = np.asarray(counts, dtype=float)
    n = c.size
    idx = np.arange(n)
    log_w, m1, m2 = [], [], []
    for tau in range(70):
        before = tau > idx
        a1, b1 = 1 + c[before].sum(), alpha + before.sum()
        a2, b2 = 1 + c[~before].sum(), alpha + (~before).sum()
        # ∫ λ^(a-1) e^(-bλ) dλ = Γ(a) / b^a for each rate, times the priors' alpha
        log_w.append(gammaln(a1) - a1 * np.log(b1) + gammaln(a2) - a2 * np.log(b2))
        m1.append(a1 / b1)
        m2.append(a2 / b2)
    w = np.exp(np.array(log_w) - max(log_w))
    w /= w.sum()
    return {"lambda_1": float(w @ m1), "lambda_2": float(w @ m2)}


def mixture_posterior_mean(data, prior_locs, num_draws=20000, seed=0):
    """Posterior means of the hosts' Gaussian mixture (``phi ~ Dirichlet(1)``, ``mu_k ~
    N(prior_locs_k, 1)``, ``x ~ Σ_k phi_k N(mu_k, 1)``) in the mode whose means increase
    with k, by importance sampling from a multivariate t centred on the mode, with
    the Laplace approximation's covariance (in additive log-ratios of ``phi`` and the
    means) widened 1.2 times.

    Each labelling of the components is a mode of its own, and as the priors' locations
    differ they are not copies: the component that takes the smallest cluster is pulled
    towards its own prior location.  Give ``prior_locs`` in the chain's labelling (the
    prior location of its component with the smallest mean first).

    Returns
    -------
    dict
        ``{"phi": (mean, se), "cluster_means": (mean, se)}``, arrays over the components.
    """
    from scipy.optimize import minimize
    from scipy.special import logsumexp
    from scipy.stats import norm

    x = np.asarray(data, dtype=float)
    mu0 = np.asarray(prior_locs, dtype=float)
    K = mu0.size

    def unpack(u):
        a = np.concatenate([u[..., :K - 1], np.zeros(u.shape[:-1] + (1,))], -1)
        return a - logsumexp(a, -1, keepdims=True), u[..., K - 1:]

    def log_post(u):  # the log-Jacobian of phi = softmax(a, 0) is Σ_k log phi_k
        log_phi, mu = unpack(u)
        lik = logsumexp(log_phi[..., None, :] + norm.logpdf(x[:, None], mu[..., None, :], 1.0), -1).sum(-1)
        return lik - 0.5 * ((mu - mu0) ** 2).sum(-1) + log_phi.sum(-1)

    start = np.concatenate([np.zeros(K - 1), np.quantile(x, (np.arange(K) + 0.5) / K)])
    mode = minimize(lambda u: -log_post(u), start, method="BFGS").x
    h, d = 1e-4, mode.size
    hess = np.empty((d, d))
    for i in range(d):
        for j in range(d):
            e_i, e_j = np.eye(d)[i] * h, np.eye(d)[j] * h
            hess[i, j] = -(log_post(mode + e_i + e_j) - log_post(mode + e_i - e_j) - log_post(mode - e_i + e_j)
                           + log_post(mode - e_i - e_j)) / (4 * h * h)
    chol = np.linalg.cholesky(1.44 * np.linalg.inv(hess))
    rng = np.random.default_rng(seed)
    # A multivariate t proposal (4 degrees of freedom): the means' posterior has a tail towards the neighbouring
    # cluster that a Gaussian proposal misses (its weights then look fine and the mean is biased).
    df = 4.0
    scale = np.sqrt(df / rng.chisquare(df, num_draws))
    draws = mode + (rng.standard_normal((num_draws, d)) @ chol.T) * scale[:, None]
    delta = np.linalg.solve(chol, (draws - mode).T)
    log_q = -0.5 * (df + d) * np.log1p((delta**2).sum(0) / df)
    log_w = np.concatenate([log_post(draws[lo:lo + 1000]) for lo in range(0, num_draws, 1000)]) - log_q
    w = np.exp(log_w - log_w.max())
    w /= w.sum()
    out = {}
    log_phi, mu = unpack(draws)
    for name, v in (("phi", np.exp(log_phi)), ("cluster_means", mu)):
        mean = w @ v
        out[name] = (mean, np.sqrt(w @ (v - mean) ** 2 * (w * w).sum()))
    return out


def check_mixture(draws, data):
    """The hosts' Gaussian-mixture case (three components, priors N(k, 1)): the host's
    tolerances on the sorted weights (0.05) and means (0.2) about the values that made the
    data, and ESS z-scores against the exact posterior means in the chain's labelling."""
    order = np.argsort(draws["cluster_means"].mean(0))  # the chain's labelling, as the hosts sort
    truth = mixture_posterior_mean(data, np.arange(3.0)[order])
    for name, target in (("phi", [0.1, 0.3, 0.6]), ("cluster_means", [1.0, 5.0, 10.0])):
        v = draws[name][:, order]
        z = mean_z(v, *truth[name])[:, 1]
        report(f"gaussian_mixture_model {name}", mean=v.mean(0), exact=truth[name][0], z=z)
        assert np.allclose(v.mean(0), target, atol=0.05 if name == "phi" else 0.2)  # the hosts' tolerances
        assert (z < Z_MAX).all()
