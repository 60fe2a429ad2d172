"""Reference posteriors for the self-tuning warmup tests, each written once for both
backends, with its exact (or long-NUTS) moments, and the checks every case shares:
means and variances within ESS-derived tolerances, split-R̂ and the kinetic
temperature of the sampling phase.  Every run uses the kernel's defaults
(``SGHMC(model)`` plus the temperature), 400 warmup draws and 2 chains."""

from __future__ import annotations

import arviz as az
import numpy as np
from targets import _ppl, as_array, mc_mean, mc_var

from ppl_kernels import runner
from ppl_kernels._host import get_adaptation, get_draws, get_stats

NUM_WARMUP = 400
#: Largest |z| of a mean or a variance against ground truth (about 30 z-scores per case).
Z_MAX = 4.5

# -- Gaussians: four scales from 0.01 to 100 and a correlated pair ----------------------------
LOC = np.array([3.0, -1.0, 0.0, 50.0])
SCALE = np.array([0.01, 1.0, 100.0, 5.0])
PAIR_LOC = np.array([1.0, -2.0])
PAIR_COV = np.array([[4.0, 0.9 * 2.0 * 0.5], [0.9 * 2.0 * 0.5, 0.25]])


def gaussian_model(backend: str):
    ppl, dist = _ppl(backend)
    loc, scale = as_array(backend, LOC), as_array(backend, SCALE)
    pair_loc, pair_cov = as_array(backend, PAIR_LOC), as_array(backend, PAIR_COV)

    def model():
        ppl.sample("x", dist.Normal(loc, scale).to_event(1))
        ppl.sample("pair", dist.MultivariateNormal(pair_loc, covariance_matrix=pair_cov))

    return model


def gaussian_truth(temperature: float) -> dict:
    """``{site: (mean, variance)}`` of the tempered target ``exp(-U/T)``."""
    return {"x": (LOC, temperature * SCALE**2), "pair": (PAIR_LOC, temperature * np.diag(PAIR_COV))}


# -- a conjugate linear regression with a subsampled plate ------------------------------------
N, D, NOISE, PRIOR = 400, 4, 0.5, 3.0
BATCH = N // 8


def regression_data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((N, D))
    y = X @ (2.0 * rng.standard_normal(D)) + NOISE * rng.standard_normal(N)
    return X, y


def regression_model(backend: str, subsample_size=BATCH):
    """``subsample_size=None``: the full-data model (for NUTS)."""
    ppl, dist = _ppl(backend)

    def model(X, y):
        w = ppl.sample("w", dist.Normal(0.0 * X[0], PRIOR).to_event(1))
        with ppl.plate("data", N, subsample_size=subsample_size) as idx:
            ppl.sample("y", dist.Normal((X[idx] * w).sum(-1), NOISE), obs=y[idx])

    return model


def regression_truth(temperature: float) -> dict:
    """The exact posterior tempered as a whole: mean unchanged, covariance times T."""
    X, y = regression_data()
    precision = X.T @ X / NOISE**2 + np.eye(D) / PRIOR**2
    cov = np.linalg.inv(precision)
    return {"w": (cov @ (X.T @ y) / NOISE**2, temperature * np.diag(cov))}


# -- the shared run and checks ---------------------------------------------------------------
def run(backend, model, model_args=(), *, temperature=1.0, num_samples=1000, seed=0, pyro_jit=False, **kernel_kwargs):
    """``SGHMC(model, temperature=T)`` with nothing else set: draws, statistics, adapted values.
    ``pyro_jit``: Pyro's potential through TorchScript (``jit_compile=True``: the same function
    and warmup, in about half the time); the Gaussians keep every argument at its default."""
    if backend == "pyro" and pyro_jit:
        kernel_kwargs["jit_compile"] = True
    mcmc = runner.sample(backend, model=model, model_args=model_args,
                         kernel_kwargs=dict(temperature=temperature, **kernel_kwargs), num_samples=num_samples,
                         num_warmup=NUM_WARMUP, num_chains=2, seed=seed)
    return mcmc, get_draws(mcmc), get_stats(mcmc), get_adaptation(mcmc)


def z_scores(draws: dict, truth: dict) -> dict:
    """Per site and coordinate, z of the mean and of the variance (centred on the true mean)
    against the truth, with ESS-based standard errors."""
    out = {}
    for site, (mean, var) in truth.items():
        x = draws[site].reshape(draws[site].shape[:2] + (-1,))
        zm, zv = [], []
        for i in range(x.shape[-1]):
            m, se_m = mc_mean(x[..., i])
            v, se_v = mc_var(x[..., i], mean=np.ravel(mean)[i])
            zm.append((m - np.ravel(mean)[i]) / se_m)
            zv.append((v - np.ravel(var)[i]) / se_v)
        out[site] = (np.array(zm), np.array(zv))
    return out


def rhat(draws: dict, site: str) -> np.ndarray:
    x = draws[site].reshape(draws[site].shape[:2] + (-1,))
    return np.array([float(az.rhat(x[..., i])) for i in range(x.shape[-1])])


def kinetic_ratio(mcmc) -> tuple:
    """Mean kinetic temperature of the sampling phase over its expected value, and the
    warning the run would give (``None`` when inside its band)."""
    kinetic, expected, _ = runner.kinetic_temperature_series(mcmc)
    return float(np.mean(kinetic / expected)), runner.warn_kinetic_temperature(mcmc)


# -- eight schools (non-centred) and a logistic regression, against long NUTS runs ------------
SCHOOLS_Y = np.array([28.0, 8.0, -3.0, 7.0, -1.0, 1.0, 18.0, 12.0])
SCHOOLS_SIGMA = np.array([15.0, 10.0, 16.0, 11.0, 9.0, 11.0, 10.0, 18.0])


def schools_model(backend: str):
    ppl, dist = _ppl(backend)
    y, sigma = as_array(backend, SCHOOLS_Y), as_array(backend, SCHOOLS_SIGMA)

    def model():
        mu = ppl.sample("mu", dist.Normal(0.0, 5.0))
        tau = ppl.sample("tau", dist.HalfCauchy(5.0))
        with ppl.plate("schools", 8):
            theta_tilde = ppl.sample("theta_tilde", dist.Normal(0.0, 1.0))
            ppl.sample("obs", dist.Normal(mu + tau * theta_tilde, sigma), obs=y)

    return model


def two_sample_z(draws: dict, ref: dict) -> dict:
    """Per site and coordinate, z of the mean and of the variance against reference draws
    (both Monte Carlo errors; ``tau`` on the log scale, where its moments exist)."""
    out = {}
    for site, r in ref.items():
        x, r = draws[site], r
        if site == "tau":
            x, r = np.log(x), np.log(r)
        x = x.reshape(x.shape[:2] + (-1,))
        r = r.reshape(r.shape[:2] + (-1,))
        zm, zv = [], []
        for i in range(x.shape[-1]):
            (m, se_m), (mr, se_mr) = mc_mean(x[..., i]), mc_mean(r[..., i])
            (v, se_v), (vr, se_vr) = mc_var(x[..., i]), mc_var(r[..., i])
            zm.append((m - mr) / np.hypot(se_m, se_mr))
            zv.append((v - vr) / np.hypot(se_v, se_vr))
        out[site] = (np.array(zm), np.array(zv))
    return out
