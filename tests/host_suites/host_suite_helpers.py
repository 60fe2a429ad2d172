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
