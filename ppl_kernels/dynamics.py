"""The integrator, the per-draw statistics and the epoch arithmetic, written once.

Every function here is pure arithmetic on arrays using only operators, ``**``
and ``.sum()``, so the same code runs on ``torch.Tensor`` (Pyro, eagerly) and
on ``jax.Array`` (NumPyro, traced inside ``lax.scan``).  Both kernels keep θ,
r and ∇Ũ of a draw as one flat vector over all latent sites (per-site
coefficients become flat vectors, or one float when equal everywhere), so each
update is a handful of array operations whatever the number of sites.  The
backends supply the random draws and the gradients; these functions supply
the mathematics of ``docs/theory.rst``:

.. code-block:: none

    θ ← θ + ε M'⁻¹ r                                          (drift)
    r ← r − ε ∇Ũ(θ) − ε C' M'⁻¹ r + √(2 ε C' T) ξ              (kick)

with ``M' = boost · M`` and ``C' = friction_scale · C``, and after a momentum
resampling ``r ~ N(0, β M)`` a half kick ``r ← r − ε/2 ∇Ũ(θ)``.  That is the
``"euler"`` integrator; ``"baoab"`` splits the same dynamics as

.. code-block:: none

    r ← r − ε/2 ∇Ũ(θ);  θ ← θ + ε/2 M'⁻¹ r                      (B, A)
    r ← c r + √(T M' (1 − c²)) ξ,  c = exp(−ε C' M'⁻¹)          (O: exact friction and noise)
    θ ← θ + ε/2 M'⁻¹ r;  r ← r − ε/2 ∇Ũ(θ)                      (A, B)

with one gradient per step (the last B's is the next step's first), and takes a
resampled momentum as it is.  ``"sgnht"`` replaces the fixed friction rate
``C' M'⁻¹`` by a thermostat ξ per coordinate that moves with the measured kinetic
temperature, ``dξ = (r² M'⁻¹ / T − 1) dt``, in the order B A D O D A B
(Leimkuhler & Shang 2016): D is ``ξ ← ξ + ε/2 (r² M'⁻¹ / T − 1)`` and O the exact
friction step at rate ξ with the noise of ``C'``, so ξ settles where the friction
carries off the injected and the minibatch noise together.
"""

from __future__ import annotations

import functools
import math

import numpy as np

__all__ = [
    "INTEGRATORS",
    "effective_coefficients",
    "base_friction",
    "flat_coefficient",
    "drift",
    "kick",
    "half_kick",
    "friction_step",
    "thermostat_step",
    "fresh_momentum",
    "thermometer_momentum",
    "resampled_momentum",
    "draw_statistics",
    "integrator_step",
    "tempered_potential",
    "stride_table",
]


#: The integrators both kernels run (``integrator=``), the default first.
INTEGRATORS = ("euler", "baoab", "sgnht")


def effective_coefficients(mass: dict, friction: dict, boost: float, friction_scale: float):
    """Return ``(inv_mass', friction')`` per site: ``1 / (α M)`` and ``γ C``."""
    inv_mass = {k: 1.0 / (boost * m) for k, m in mass.items()}
    fric = {k: friction_scale * c for k, c in friction.items()}
    return inv_mass, fric


def base_friction(friction: dict, mass: dict, relative: bool) -> dict:
    """The base friction C per site: ``friction`` itself, or with ``relative`` (the mass
    adapts) ``2 · friction · M``, the given factor times critical damping at unit frequency."""
    if not relative:
        return friction
    return {k: 2.0 * np.asarray(friction[k], dtype=float) * np.asarray(mass[k], dtype=float) for k in friction}


def flat_coefficient(per_site: dict, shapes: dict):
    """A per-site coefficient as one of the flat vector (numpy; sites in ``shapes``' order):
    a float when it is the same scalar on every site (the fewest array operations per
    step), else one flat array.  A model with no latent site gets ``1.0``."""
    values = [np.asarray(per_site[k], dtype=float) for k in shapes]
    if all(v.size == 1 for v in values) and len({float(v) for v in values}) <= 1:
        return float(values[0]) if values else 1.0
    return np.concatenate([np.broadcast_to(v, shape).reshape(-1) for v, shape in zip(values, shapes.values())])


def drift(theta, r, step_size, inv_mass):
    """Position update ``θ + ε M'⁻¹ r``."""
    return theta + step_size * inv_mass * r


def kick(r, grad, step_size, friction, inv_mass, noise_temperature, xi):
    """Momentum update with friction and injected noise of variance ``2 ε C' T``.

    ``noise_temperature`` may be 0 (the T = 0 limit, or an exploration phase
    without noise); ``xi`` may then be ``0.0`` (no draw).
    """
    return (
        r
        - step_size * grad
        - step_size * friction * inv_mass * r
        + (2.0 * step_size * friction * noise_temperature) ** 0.5 * xi
    )


def half_kick(r, grad, step_size):
    """``r − ε/2 ∇Ũ(θ)``: turns a freshly drawn momentum into the half-step momentum
    the drift-first integrator expects (without it resampling biases Var θ)."""
    return r - 0.5 * step_size * grad


def thermostat_step(rate, r, step_size, inv_mass, temperature, noise_temperature):
    """D: the thermostat ``ξ ← ξ + ε (r² M'⁻¹ / T − 1)`` per coordinate, ``T`` the
    run's noise temperature (> 0).  In a draw without noise (``noise_temperature`` 0,
    a schedule's exploration phase) ξ stays: it would otherwise turn negative and heat
    the chain that the phase lets cool."""
    return rate + (noise_temperature / temperature) * step_size * (inv_mass * r * r / temperature - 1.0)


def friction_step(r, step_size, rate, friction, noise_temperature, xi):
    """O: the exact solution of ``dr = −ρ r dt + √(2 C' T) dW`` over ``ε`` at the friction
    rate ``ρ`` per coordinate (``C' M'⁻¹`` for ``"baoab"``, which keeps ``N(0, T M')``
    whatever the step; the thermostat ξ for ``"sgnht"``):
    ``r ← c r + √(C' T (1 − c²) / ρ) ξ'`` with ``c = exp(−ε ρ)`` (``noise_temperature``
    0: damping alone; at ρ → 0 the variance tends to ``2 ε C' T``; for ρ < 0, a thermostat
    heating a cold chain, the formula holds as it is)."""
    c = math.e ** (-(step_size * rate))
    x = 2.0 * step_size * rate
    small = abs(x) < 1e-4  # (1 − c²) / x by its series there: no 0/0
    ratio = (~small) * ((1.0 - c * c) / (x + small * 1.0)) + small * (1.0 - 0.5 * x)
    return c * r + (2.0 * step_size * friction * noise_temperature * ratio) ** 0.5 * xi


def fresh_momentum(integrator: str, r, grad, step_size):
    """A freshly drawn momentum (resampling, early warmup) as the integrator carries it:
    ``"euler"`` expects the half-step momentum (:func:`half_kick`), ``"baoab"`` and
    ``"sgnht"`` the full-step one, which the drawn one is."""
    return half_kick(r, grad, step_size) if integrator == "euler" else r


def thermometer_momentum(integrator: str, r, grad, step_size):
    """The momentum whose kinetic temperature the draw statistics report: the state's for
    ``"euler"`` (mean ``T/(1 − a/2)``, :func:`expected_kinetic`), for ``"baoab"`` and
    ``"sgnht"`` the half-step one ``r − ε/2 ∇Ũ(θ)`` that enters the friction step, whose
    law on a Gaussian is exactly ``N(0, T M')`` for ``"baoab"`` (the full-step one's
    variance is ``T M'(1 − ε²ω²/4)``, which depends on the curvature ω²) and the one
    whose mean the thermostat of ``"sgnht"`` holds at T."""
    return r if integrator == "euler" else half_kick(r, grad, step_size)


def resampled_momentum(xi, resample_scale, mass):
    """``r ~ N(0, β M)`` from standard normal draws ``xi`` (base mass ``M``, not ``αM``)."""
    return (resample_scale * mass) ** 0.5 * xi


def expected_kinetic(noise_t, eps, inv_mass, friction, like, integrator: str = "euler"):
    """The mean kinetic temperature of a draw at step ``eps`` with the flat ``1/M'`` and
    ``C'`` (arrays or floats): for ``"euler"`` ``T (1/(1 − a/2))`` averaged over the
    coordinates of ``like``, ``a = ε C' / M'``; for ``"baoab"`` and ``"sgnht"`` ``T``
    (:func:`thermometer_momentum`, ``docs/theory.rst``)."""
    a = eps * friction * inv_mass + 0.0 * like
    if integrator != "euler":
        return noise_t + 0.0 * a.mean()
    return noise_t * (1.0 / (1.0 - 0.5 * a)).mean()


def draw_statistics(theta, r, grad, inv_mass, dim: int, kinetic_r=None, rate=None) -> dict:
    """The thermodynamic statistics of one state (flat θ, r, ∇Ũ); the kinetic temperature
    of ``kinetic_r`` when given (:func:`thermometer_momentum`), else of ``r``; with
    ``rate`` (the friction rate per coordinate) also its mean, ``thermostat``.

    Returns
    -------
    dict
        ``theta_sq_norm`` ‖θ‖², ``theta_dot_r`` θᵀr, ``r_sq_norm`` ‖r‖²,
        ``kinetic_temperature`` rᵀM'⁻¹r / d and ``configurational_temperature``
        θᵀ∇Ũ(θ) / d (and ``thermostat``), all scalars.
    """
    kinetic_r = r if kinetic_r is None else kinetic_r
    return {
        "theta_sq_norm": (theta * theta).sum(),
        "theta_dot_r": (theta * r).sum(),
        "r_sq_norm": (r * r).sum(),
        "kinetic_temperature": (inv_mass * kinetic_r * kinetic_r).sum() / dim,
        "configurational_temperature": (theta * grad).sum() / dim,
        **({} if rate is None else {"thermostat": (rate + 0.0 * theta).sum() / dim}),
    }


def integrator_step(static, inv_mass, friction, next_batch, z, r, grad, rate, bases, counters, eps, noise_t, xi, renew,
                    model_args, model_kwargs):
    """One integrator step on flat θ, r, ∇Ũ with coefficients ``inv_mass = 1/M'`` and
    ``friction = C'``: drift, the next minibatch (``next_batch`` is the backend's
    ``epochs.next_batch``), its gradient (``static.value_and_grad``), kick.

    With ``static.cfg.integrator == "baoab"``: half kick with the carried gradient, half
    drift, the exact friction step, half drift, the next minibatch's gradient, half kick;
    ``"sgnht"``: the same with a half thermostat step (on ``rate``, ξ per coordinate)
    before and after the friction step.  ``rate`` is the state's friction rate, which
    the friction step of both splittings uses (``C' M'⁻¹`` but for the thermostat's ξ);
    it is returned as it came but for ``"sgnht"``.

    Returns ``(z, r, grad, rate, Ũ, lp, counters)``.
    """
    split = static.cfg.integrator != "euler"
    if split:
        r = half_kick(r, grad, eps)
        z = drift(z, r, 0.5 * eps, inv_mass)
        thermostat = static.cfg.integrator == "sgnht"
        if thermostat:
            rate = thermostat_step(rate, r, 0.5 * eps, inv_mass, static.cfg.noise_temperature, noise_t)
        r = friction_step(r, eps, rate, friction, noise_t, xi)
        if thermostat:
            rate = thermostat_step(rate, r, 0.5 * eps, inv_mass, static.cfg.noise_temperature, noise_t)
        z = drift(z, r, 0.5 * eps, inv_mass)
    else:
        z = drift(z, r, eps, inv_mass)
    idx, counters = next_batch(static.plates, bases, counters, renew)
    u, lp, grad = static.value_and_grad(z, idx, model_args, model_kwargs)
    r = half_kick(r, grad, eps) if split else kick(r, grad, eps, friction, inv_mass, noise_t, xi)
    return z, r, grad, rate, u, lp, counters


def tempered_potential(log_joint_parts, model, transforms, likelihood_weight: float):
    """``(z, indices, args, kwargs) -> (Ũ, lp)`` from a backend's ``model.log_joint_parts``:
    the dynamics' potential ``-(w · log-likelihood + log-prior)`` (``w = 1/T`` with
    likelihood tempering, else 1) and the untempered log density."""

    def parts(z, indices, model_args, model_kwargs):
        lik, prior = log_joint_parts(model, model_args, model_kwargs, transforms, z, indices)
        return -(likelihood_weight * lik + prior), lik + prior

    return parts


# -- minibatch epochs --------------------------------------------------------------------------
_INT32_MAX = 2**31 - 1


@functools.lru_cache(maxsize=None)
def stride_table(size: int, subsample_size: int, max_strides: int = 1024) -> np.ndarray:
    """Strides ``a`` with ``gcd(a, size) = 1`` for the per-epoch visiting orders of
    both backends' ``epochs.next_batch``.

    An epoch visits the positions of a random base permutation (drawn once per
    chain) in the order ``o, o + a, o + 2a, ... (mod N)`` for a random offset
    ``o`` and a random stride ``a`` from this table: every point once per
    epoch (the last ``N mod B`` positions are skipped, as with ``drop_last``),
    a different grouping every epoch, O(B) work per step and no O(N)
    reshuffle (XLA's CPU sort takes ~2.4 ms per 10^4 points).  ``a`` is
    bounded so that ``o + a * B`` stays inside int32 (JAX's default integer).
    The table is a fixed function of the sizes.
    """
    amax = min(size - 1, (_INT32_MAX - size) // subsample_size)
    if amax < 1:
        raise ValueError(f"plate size {size} with subsample_size {subsample_size} does not fit int32 indices")
    if amax <= 4 * max_strides:
        cand = np.arange(1, amax + 1)
    else:
        cand = np.unique(np.random.default_rng(size).integers(1, amax + 1, size=4 * max_strides))
    units = cand[np.gcd(cand, size) == 1]
    rng = np.random.default_rng([size, subsample_size])
    return np.sort(rng.permutation(units)[:max_strides]).astype(np.int32)
