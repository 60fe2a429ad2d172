"""The integrator and the per-draw statistics, written once for both backends.

Every function here is pure arithmetic over ``dict`` s of arrays (one entry per
latent site, unconstrained space) using only operators, ``**`` and
``.sum()``, so the same code runs on ``torch.Tensor`` (Pyro, eagerly) and on
``jax.Array`` (NumPyro, traced inside ``lax.scan``).  The backends supply the
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
    "draw_statistics",
]


def effective_coefficients(mass: dict, friction: dict, boost: float, friction_scale: float):
    """Return ``(inv_mass', friction')`` per site: ``1 / (α M)`` and ``γ C``."""
    inv_mass = {k: 1.0 / (boost * m) for k, m in mass.items()}
    fric = {k: friction_scale * c for k, c in friction.items()}
    return inv_mass, fric


def drift(theta: dict, r: dict, step_size, inv_mass: dict) -> dict:
    """Position update ``θ + ε M'⁻¹ r``."""
    return {k: theta[k] + step_size * inv_mass[k] * r[k] for k in theta}


def kick(r: dict, grad: dict, step_size, friction: dict, inv_mass: dict, noise_temperature, xi: dict) -> dict:
    """Momentum update with friction and injected noise of variance ``2 ε C' T``.

    ``noise_temperature`` may be 0 (no noise: the T = 0 limit, or an
    exploration phase without noise).
    """
    return {
        k: r[k]
        - step_size * grad[k]
        - step_size * friction[k] * inv_mass[k] * r[k]
        + (2.0 * step_size * friction[k] * noise_temperature) ** 0.5 * xi[k]
        for k in r
    }


def half_kick(r: dict, grad: dict, step_size) -> dict:
    """``r − ε/2 ∇Ũ(θ)``: turns a freshly drawn momentum into the half-step momentum
    the drift-first integrator expects (without it resampling biases Var θ)."""
    return {k: r[k] - 0.5 * step_size * grad[k] for k in r}


def resampled_momentum(xi: dict, resample_scale, mass: dict) -> dict:
    """``r ~ N(0, β M)`` from standard normal draws ``xi`` (base mass ``M``, not ``αM``)."""
    return {k: (resample_scale * mass[k]) ** 0.5 * xi[k] for k in xi}


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
