"""Cross-backend statistical agreement: the same target and settings give the same
stationary moments in Pyro and NumPyro.

The two runs use independent random streams, so each comparison is a
two-sample z statistic ``|a − b| / √(se_a² + se_b²)`` with ESS-based standard
errors, required below ``Z_MAX``.
"""

import numpy as np

from targets import (
    BACKENDS,
    anisotropic_gaussian,
    mc_mean,
    mc_var,
    replica_chains,
    sample_conjugate,
    sample_gaussian,
    z_score,
)

Z_MAX = 5.0
STATS = ("lp", "theta_sq_norm", "theta_dot_r", "r_sq_norm", "kinetic_temperature", "configurational_temperature")


def _compare(label, pyro_values, numpyro_values):
    """Two-sample comparison of ``{name: (estimate, se)}`` from both backends; prints the table rows."""
    for name in pyro_values:
        (a, se_a), (b, se_b) = pyro_values[name], numpyro_values[name]
        z = z_score(a, se_a, b, se_b)
        print(f"{label} | {name} | pyro {a:.5g} ± {se_a:.2g} | numpyro {b:.5g} ± {se_b:.2g} | z {z:.2f}")
        assert z < Z_MAX, name


def test_gaussian_with_every_knob_agrees():
    """10-D anisotropic Gaussian (8 replicas), T = 0.3, boost, friction scale and
    momentum resampling at every draw: per-coordinate mean and variance of θ and the
    mean of every per-draw statistic agree between the backends."""
    mu, var = anisotropic_gaussian(10)
    mu, var = np.tile(mu, (8, 1)), np.tile(var, (8, 1))
    kernel = dict(step_size=0.2, num_steps=5, temperature=0.3, mass=1.0, boost=2.0, friction=2.0,
                  friction_scale=0.5, resample_scale=0.6)
    out = {}
    for i, backend in enumerate(BACKENDS):
        draws, stats = sample_gaussian(backend, mu, var, kernel, num_samples=1000, seed=11 + i)
        x = replica_chains(draws)
        values = {}
        for j in range(x.shape[-1]):
            values[f"mean θ[{j}]"] = mc_mean(x[..., j])
            values[f"var θ[{j}]"] = mc_var(x[..., j])
        values.update({f"E {s}": mc_mean(stats[s]) for s in STATS})
        out[backend] = values
    _compare("gaussian-10d", out["pyro"], out["numpyro"])


def test_conjugate_model_agrees():
    """The conjugate Gaussian model (64 replicas of θ, model path: plate, prior and
    likelihood), posterior tempering at T = 0.3: mean and variance of θ and the
    mean of every per-draw statistic agree between the backends."""
    out = {}
    for i, backend in enumerate(BACKENDS):
        x, stats = sample_conjugate(backend, dict(step_size=0.1, num_steps=10, temperature=0.3),
                                    num_samples=300, num_warmup=30, seed=21 + i)
        values = {"mean θ": mc_mean(x), "var θ": mc_var(x)}
        values.update({f"E {s}": mc_mean(stats[s]) for s in STATS})
        out[backend] = values
    _compare("conjugate", out["pyro"], out["numpyro"])
