"""The integrator and the per-draw statistics, written once for both backends.

Every function here is pure arithmetic over ``dict`` s of arrays (one entry per
latent site, unconstrained space) using only operators, ``**`` and
``.sum()``, so the same code runs on ``torch.Tensor`` (Pyro, eagerly) and on
``jax.Array`` (NumPyro, traced inside ``lax.scan``).  Each update is written
once on one array (``*_array``: one site, or all sites raveled into one
vector, as the Pyro kernel uses them) and mapped over the sites by its
``dict`` form.  The backends supply the
random draws and the gradients; these functions supply the mathematics of
``DESIGN.md``:

.. code-block:: none

    θ ← θ + ε M'⁻¹ r                                          (drift)
    r ← r − ε ∇Ũ(θ) − ε C' M'⁻¹ r + √(2 ε C' T) ξ              (kick)

with ``M' = boost · M`` and ``C' = friction_scale · C``, and after a momentum
resampling ``r ~ N(0, β M)`` a half kick ``r ← r − ε/2 ∇Ũ(θ)``.
"""

from __future__ import annotations

__all__ = [
    "effective_coefficients",
    "drift",
    "kick",
    "half_kick",
    "resampled_momentum",
    "drift_array",
    "kick_array",
    "half_kick_array",
    "resampled_momentum_array",
    "draw_statistics",
]


def effective_coefficients(mass: dict, friction: dict, boost: float, friction_scale: float):
    """Return ``(inv_mass', friction')`` per site: ``1 / (α M)`` and ``γ C``."""
    inv_mass = {k: 1.0 / (boost * m) for k, m in mass.items()}
    fric = {k: friction_scale * c for k, c in friction.items()}
    return inv_mass, fric


def drift_array(theta, r, step_size, inv_mass):
    """Position update ``θ + ε M'⁻¹ r`` of one array."""
    return theta + step_size * inv_mass * r


def kick_array(r, grad, step_size, friction, inv_mass, noise_temperature, xi):
    """Momentum update of one array, with friction and injected noise of variance
    ``2 ε C' T``.

    ``noise_temperature`` may be 0 (no noise: the T = 0 limit, or an
    exploration phase without noise).
    """
    return (
        r
        - step_size * grad
        - step_size * friction * inv_mass * r
        + (2.0 * step_size * friction * noise_temperature) ** 0.5 * xi
    )


def half_kick_array(r, grad, step_size):
    """``r − ε/2 ∇Ũ(θ)`` of one array: turns a freshly drawn momentum into the
    half-step momentum the drift-first integrator expects (without it
    resampling biases Var θ)."""
    return r - 0.5 * step_size * grad


def resampled_momentum_array(xi, resample_scale, mass):
    """``r ~ N(0, β M)`` of one array from standard normal draws ``xi`` (base mass
    ``M``, not ``αM``)."""
    return (resample_scale * mass) ** 0.5 * xi


def drift(theta: dict, r: dict, step_size, inv_mass: dict) -> dict:
    """:func:`drift_array` per site."""
    return {k: drift_array(theta[k], r[k], step_size, inv_mass[k]) for k in theta}


def kick(r: dict, grad: dict, step_size, friction: dict, inv_mass: dict, noise_temperature, xi: dict) -> dict:
    """:func:`kick_array` per site."""
    return {k: kick_array(r[k], grad[k], step_size, friction[k], inv_mass[k], noise_temperature, xi[k]) for k in r}


def half_kick(r: dict, grad: dict, step_size) -> dict:
    """:func:`half_kick_array` per site."""
    return {k: half_kick_array(r[k], grad[k], step_size) for k in r}


def resampled_momentum(xi: dict, resample_scale, mass: dict) -> dict:
    """:func:`resampled_momentum_array` per site."""
    return {k: resampled_momentum_array(xi[k], resample_scale, mass[k]) for k in xi}


def draw_statistics(theta: dict, r: dict, grad: dict, inv_mass: dict, dim: int) -> dict:
    """The thermodynamic statistics of one state.

    Returns
    -------
    dict
        ``theta_sq_norm`` ‖θ‖², ``theta_dot_r`` θᵀr, ``r_sq_norm`` ‖r‖²,
        ``kinetic_temperature`` rᵀM'⁻¹r / d and ``configurational_temperature``
        θᵀ∇Ũ(θ) / d, all scalars.
    """
    keys = list(theta)
    return {
        "theta_sq_norm": sum((theta[k] * theta[k]).sum() for k in keys),
        "theta_dot_r": sum((theta[k] * r[k]).sum() for k in keys),
        "r_sq_norm": sum((r[k] * r[k]).sum() for k in keys),
        "kinetic_temperature": sum((inv_mass[k] * r[k] * r[k]).sum() for k in keys) / dim,
        "configurational_temperature": sum((theta[k] * grad[k]).sum() for k in keys) / dim,
    }
