"""The SGHMC integrator for NumPyro: pure functions over an :data:`SGHMCState`.

The twin of :mod:`ppl_kernels.pyro.integrator`: the same functions with the
same signatures and return values.  :func:`sghmc_init` starts a chain,
:func:`sghmc_step` is one integrator step, :func:`sghmc_draw` one draw (an
optional momentum resampling, then ``num_steps`` steps in one ``lax.scan``)
and :func:`sghmc_sample` one kept sample (``thinning`` draws).  Inside a draw
θ, r and ∇Ũ are one flat vector over the sites (:class:`Layout`); the
arithmetic is :mod:`ppl_kernels.dynamics`', the settings of each draw
:meth:`ppl_kernels.config.SGHMCConfig.draw_settings`.  Every random draw comes
from the state's key, and the state holds everything that changes, so a chain
continues exactly from any state.
"""

from __future__ import annotations

from collections import namedtuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax, random
from jax.flatten_util import ravel_pytree

from .. import adaptation, dynamics
from ..config import STAT_FIELDS, DrawNoise, resolve_site_values
from . import epochs

__all__ = ["SGHMCState", "Static", "Layout", "make_static", "adapted", "sghmc_init", "sghmc_step", "sghmc_draw", "sghmc_sample"]

SGHMCState = namedtuple("SGHMCState", ["i", "z", "r", "grad", "potential_energy", *STAT_FIELDS, "divergence_run", "kinetic_check",
                                       "friction_rate", "epochs", "adapt", "rng_key"])
SGHMCState.__doc__ = """State of the SGHMC chain (the same fields in both backends).

- **i** - draw index (warmup and sampling together), drives the schedules.
- **z** - latent values in unconstrained space (dict site -> array).
- **r** - momentum, same structure as ``z``.
- **grad** - ∇Ũ(z) of the dynamics' potential at ``z`` (carried for the half kick).
- **potential_energy** - the dynamics' potential Ũ(z) (likelihood / T in likelihood tempering).
- the per-draw statistics (``lp`` ... ``diverging``, :data:`ppl_kernels.config.STAT_FIELDS`).
- **divergence_run** - how many kept samples in a row, up to this one, diverged (0 when
  this one did not); the kernels warn when it reaches :data:`ppl_kernels.config.FROZEN_RUN`.
- **kinetic_check** - the in-run kinetic-temperature check's accumulators
  (:func:`ppl_kernels.adaptation.kinetic_track`); the kernels warn when it finds a miss.
- **friction_rate** - the friction rate per coordinate (flat): the thermostat ξ of
  ``integrator="sgnht"``, else ``C' M'⁻¹``; its mean is the ``thermostat`` statistic.
- **epochs** - per subsampled plate ``(base permutation, (stride, offset, batches left))``
  (:mod:`ppl_kernels.numpyro.epochs`).
- **adapt** - the warmup adaptation's :data:`ppl_kernels.adaptation.AdaptState`
  (the adapted step factor, mass and friction are read from it after warmup too).
- **rng_key** - the random key of every later draw.
"""

Static = namedtuple("Static", ["cfg", "layout", "inv_mass", "friction", "mass", "dim", "plates", "plan",
                               "value_and_grad", "num_warmup"])
Static.__doc__ = """What a draw needs besides the state; fixed for a run.

``inv_mass``, ``friction`` and ``mass`` are the given coefficients of the flat
vector (``1/(αM)``, ``γC`` and the base ``M``: a float when the same on every
coordinate, else a flat array), used as they are when nothing adapts; ``dim`` the
number of coordinates (1 for a model with no latent site, whose per-coordinate
statistics are then 0); ``plan`` the warmup adaptation's
:class:`~ppl_kernels.adaptation.AdaptPlan`;
``value_and_grad(z_flat, indices, args, kwargs) -> (Ũ, lp, ∇Ũ flat)``."""

#: The array operations of :mod:`ppl_kernels.adaptation`.
OPS = adaptation.Ops(xp=jnp, set_at=lambda a, k, v: a.at[k].set(v),
                     zeros=lambda shape, like: jnp.zeros(shape, jnp.result_type(like)))


class Layout:
    """Sites ↔ one flat vector (:func:`jax.flatten_util.ravel_pytree` of an example state)."""

    def __init__(self, z: dict):
        self.names = sorted(z)  # the order in which a dict's leaves are ravelled
        self.shapes = {k: tuple(jnp.shape(z[k])) for k in self.names}
        self.size = sum(int(np.prod(s)) for s in self.shapes.values())
        self._unravel = ravel_pytree(z)[1]

    def flatten(self, tree: dict):
        return ravel_pytree(tree)[0]

    def unflatten(self, flat) -> dict:
        return self._unravel(flat)


def make_static(cfg, parts, z: dict, plates, num_warmup: int = 0, *, forward_mode: bool = False) -> Static:
    """The static part of a run from the config, the potential ``parts(z, indices,
    args, kwargs) -> (Ũ, lp)`` of :func:`ppl_kernels.numpyro.model.potential` (or a
    ``potential_fn``'s), one chain's unconstrained example ``z`` and the number of
    warmup samples (the adaptation runs over their ``num_warmup · thinning`` draws).
    ``forward_mode``: the gradient by forward-mode differentiation (:func:`jax.jacfwd`)."""
    layout = Layout(z)
    mass = resolve_site_values("mass", cfg.mass, layout.shapes)
    factor = resolve_site_values("friction", cfg.friction, layout.shapes)
    friction = dynamics.base_friction(factor, mass, cfg.adapt_mass_matrix)
    inv_mass, fric = dynamics.effective_coefficients(mass, friction, cfg.boost, cfg.friction_scale)
    plan = adaptation.make_plan(cfg, num_warmup * cfg.thinning, dynamics.flat_coefficient(factor, layout.shapes),
                                layout.size, plates)

    def flat_parts(z_flat, indices, model_args, model_kwargs):
        return parts(layout.unflatten(z_flat), indices, model_args, model_kwargs)

    if forward_mode:  # for models that reverse mode cannot differentiate (e.g. a lax.while_loop)
        def with_value(z_flat, *args):
            u, lp = flat_parts(z_flat, *args)
            return u, (u, lp)

        fwd = jax.jacfwd(with_value, has_aux=True)

        def value_and_grad(z_flat, indices, model_args, model_kwargs):
            g, (u, lp) = fwd(z_flat, indices, model_args, model_kwargs)
            return u, lp, g
    else:
        vg = jax.value_and_grad(flat_parts, has_aux=True)

        def value_and_grad(z_flat, indices, model_args, model_kwargs):
            (u, lp), g = vg(z_flat, indices, model_args, model_kwargs)
            return u, lp, g

    # numpy constants, not jnp: set-up may run under a trace (pmap)
    coefficients = [dynamics.flat_coefficient(c, layout.shapes) for c in (inv_mass, fric, mass)]
    return Static(cfg, layout, *coefficients, max(layout.size, 1), tuple(plates), plan, value_and_grad, int(num_warmup))


def _normal(key, like):
    return random.normal(key, jnp.shape(like), jnp.result_type(like))


def _finite(*values):
    ok = jnp.array(True)
    for v in values:
        ok = ok & jnp.all(jnp.isfinite(v))
    return ok


def _state(static, i, z, r, grad, rate, u, lp, eps, beta, phase, diverging, run, kinetic, epochs_, adapt, key) -> SGHMCState:
    lay, dtype = static.layout, jnp.result_type(float)
    inv_mass = _coefficients(static, adapt)[1]
    kinetic_r = dynamics.thermometer_momentum(static.cfg.integrator, r, grad, eps)
    stats = dynamics.draw_statistics(z, r, grad, inv_mass, static.dim, kinetic_r, rate)
    return SGHMCState(
        i=i, z=lay.unflatten(z), r=lay.unflatten(r), grad=lay.unflatten(grad), potential_energy=u, lp=lp, **stats,
        step_size=jnp.asarray(eps, dtype), resample_scale=jnp.asarray(beta, dtype), phase=jnp.asarray(phase, jnp.int32),
        diverging=jnp.asarray(diverging), divergence_run=jnp.asarray(run, jnp.int32), kinetic_check=kinetic,
        friction_rate=rate, epochs=epochs_, adapt=adapt, rng_key=key,
    )


def _coefficients(static, adapt):
    """``(step factor, 1/M', C', M, noise rate)`` of the next draw: the adaptation's, else
    the given ones (:func:`ppl_kernels.adaptation.coefficients`)."""
    if adaptation.adapts(static.plan):
        return adaptation.coefficients(static.plan, OPS.xp, adapt)
    return 1.0, static.inv_mass, static.friction, static.mass, 0.0


def sghmc_init(static: Static, z: dict, rng_key, model_args=(), model_kwargs=None) -> SGHMCState:
    """Initial state at unconstrained ``z``: momentum drawn from ``N(0, α T M)`` (the
    stationary law), gradient from a first minibatch."""
    cfg = static.cfg
    key_r, key_e, key_b, key = random.split(rng_key, 4)
    bases, counters = epochs.split(epochs.init_epochs(static.plates, key_e))
    renew = {k: (a[0], o[0]) for k, (a, o) in epochs.renew_draws(static.plates, key_b, 1).items()}
    idx, counters = epochs.next_batch(static.plates, bases, counters, renew)
    z_flat = static.layout.flatten(z)
    u, lp, grad = static.value_and_grad(z_flat, idx, model_args, model_kwargs or {})
    adapt = adaptation.init_state(static.plan, OPS, static.mass + jnp.zeros_like(z_flat))
    factor, inv_mass, friction, mass, _ = _coefficients(static, adapt)
    rate = friction * inv_mass + 0.0 * z_flat
    r = dynamics.resampled_momentum(_normal(key_r, z_flat), cfg.boost * cfg.noise_temperature, mass)
    eps, beta, _, _ = cfg.draw_settings(0, jnp)
    return _state(static, jnp.array(0, jnp.int32), z_flat, r, grad, rate, u, lp, factor * eps, beta, 0, False, 0,
                  tuple(jnp.asarray(v, jnp.result_type(float)) for v in adaptation.KINETIC_START),
                  epochs.join(bases, counters), adapt, key)


def sghmc_step(static: Static, state: SGHMCState, step_size, noise_temperature, xi, renew,
               model_args=(), model_kwargs=None) -> SGHMCState:
    """One integrator step (``drift``, the next minibatch, its gradient, ``kick`` for the default).

    ``xi`` is the step's standard normal noise (flat, or ``0.0`` for none) and
    ``renew`` the per-plate ``(stride index, offset)`` used if an epoch starts.
    Only ``z``, ``r``, ``grad``, ``friction_rate``, ``potential_energy``, ``lp`` and the epoch
    counters change (the statistics and ``i`` are :func:`sghmc_draw`'s).
    """
    lay = static.layout
    _, inv_mass, friction, _, _ = _coefficients(static, state.adapt)
    bases, counters = epochs.split(state.epochs)
    z, r, grad, rate, u, lp, counters = dynamics.integrator_step(
        static, inv_mass, friction, epochs.next_batch, lay.flatten(state.z), lay.flatten(state.r),
        lay.flatten(state.grad), state.friction_rate, bases, counters, step_size, noise_temperature, xi, renew,
        model_args, model_kwargs or {})
    return state._replace(z=lay.unflatten(z), r=lay.unflatten(r), grad=lay.unflatten(grad), friction_rate=rate,
                          potential_energy=u, lp=lp, epochs=epochs.join(bases, counters))


def sghmc_draw(static: Static, state: SGHMCState, model_args=(), model_kwargs=None, noise: DrawNoise | None = None):
    """One draw: optional momentum resampling with a half kick (early warmup draws start
    from a fresh momentum ``N(0, α T M)``, :func:`ppl_kernels.adaptation.refreshes`), then
    ``num_steps`` integrator steps, then the statistics.

    A draw in which θ, r or Ũ becomes non-finite is flagged ``diverging``: the chain
    stays at the draw's starting point (no earlier draw is lost) with a momentum
    redrawn from ``N(0, α T M)``, and the epoch counters and the key move on.
    ``noise`` (tests) gives the draw's random inputs instead of drawing them
    (:class:`ppl_kernels.config.DrawNoise`).
    """
    cfg, lay, plan = static.cfg, static.layout, static.plan
    model_kwargs = model_kwargs or {}
    noise = noise or DrawNoise()
    k = state.i
    eps, beta, phase, noise_t = cfg.draw_settings(k, jnp)
    factor, inv_mass, friction, mass, _ = _coefficients(static, state.adapt)
    eps = factor * eps
    key, key_res, key_loop, key_b, key_div = random.split(state.rng_key, 5)
    z0, r, g0 = lay.flatten(state.z), lay.flatten(state.r), lay.flatten(state.grad)
    # early warmup draws start from the stationary law: their heat is shed at once (adaptation.refreshes)
    if cfg.resample_scale is not None or plan.refresh_draws:
        scale = beta if cfg.resample_scale is not None else cfg.boost * cfg.noise_temperature
        xi = _normal(key_res, r) if noise.resample is None else lay.flatten(noise.resample)
        fresh = dynamics.fresh_momentum(cfg.integrator, dynamics.resampled_momentum(xi, scale, mass), g0, eps)
        r = fresh if cfg.resample_scale is not None else jnp.where(adaptation.refreshes(plan, k), fresh, r)
    r0 = r
    bases, counters = epochs.split(state.epochs)

    def step(carry, xs):
        z, r, grad, rate, u, lp, counters = carry
        key_xi, xi, renew = xs
        if xi is None:
            xi = _normal(key_xi, r) if cfg.injects_noise else 0.0
        else:
            xi = lay.flatten(xi)
        z, r, grad, rate, u, lp, counters = dynamics.integrator_step(
            static, inv_mass, friction, epochs.next_batch, z, r, grad, rate, bases, counters, eps, noise_t, xi,
            renew, model_args, model_kwargs)
        return (z, r, grad, rate, u, lp, counters), None

    init = (z0, r, g0, state.friction_rate, state.potential_energy, state.lp, counters)
    if cfg.trajectory_length is None:
        renew = epochs.renew_draws(static.plates, key_b, cfg.num_steps) if noise.renew is None else noise.renew
        xs = (random.split(key_loop, cfg.num_steps), noise.steps, renew)
        (z, r, grad, rate, u, lp, counters), _ = lax.scan(step, init, xs, length=cfg.num_steps)
    else:  # as many steps as trajectory_length takes at this draw's step: a loop of traced length
        if noise.steps is not None or noise.renew is not None:
            raise ValueError("given per-step noise needs a fixed num_steps (trajectory_length=None)")

        def one(j, carry):
            renew_j = jax.tree.map(lambda a: a[0], epochs.renew_draws(static.plates, random.fold_in(key_b, j), 1))
            return step(carry, (random.fold_in(key_loop, j), None, renew_j))[0]

        n = adaptation.steps_per_draw(cfg, jnp, eps).astype(jnp.int32)
        z, r, grad, rate, u, lp, counters = lax.fori_loop(0, n, one, init)
    diverging = ~_finite(z, r, u, rate)
    if adaptation.adapts(plan):
        energy0 = state.potential_energy + 0.5 * (inv_mass * r0 * r0).sum()
        energy = u + 0.5 * (inv_mass * r * r).sum()
        diverging = diverging | adaptation.blown_up(plan, jnp, k, energy0, energy, static.dim)

    def keep(new, old):
        return jnp.where(diverging, old, new)

    # After a divergence the chain restarts from the draw's start with a fresh momentum from
    # its stationary law: the old momentum would only lead it back into the same region.
    fresh = dynamics.resampled_momentum(_normal(key_div, r), cfg.boost * cfg.noise_temperature, mass)
    z, r, grad, rate = keep(z, z0), keep(r, fresh), keep(grad, g0), keep(rate, state.friction_rate)
    u, lp = keep(u, state.potential_energy), keep(lp, state.lp)
    adapt = state.adapt
    if adaptation.adapts(plan):

        def adapt_fn(args):
            ad, counters = args
            v = None if noise.probe is None else lay.flatten(noise.probe)
            curvature, difference, counters = _probe(static, ad, z, grad, bases, counters, random.fold_in(key_div, 1),
                                                     model_args, model_kwargs, v)
            ad, momentum_factor = adaptation.update(plan, OPS, ad, k, z, eps, diverging, curvature, difference)
            return ad, counters, momentum_factor

        adapt, counters, momentum_factor = lax.cond(
            k < plan.num_draws, adapt_fn, lambda args: (*args, jnp.ones_like(z)), (adapt, counters))
        r = r * momentum_factor
        # where the mass moved, the friction rate restarts from the new C'M'⁻¹ (the thermostat's too)
        _, new_inv_mass, new_friction, _, _ = _coefficients(static, adapt)
        rate = jnp.where(momentum_factor != 1.0, new_friction * new_inv_mass + 0.0 * z, rate)
    return _state(static, k + 1, z, r, grad, rate, u, lp, eps, beta, phase, diverging, state.divergence_run, state.kinetic_check,
                  epochs.join(bases, counters), adapt,
                  key)


def _probe(static, ad, z, grad, bases, counters, key, model_args, model_kwargs, v=None):
    """:func:`ppl_kernels.adaptation.measure` at ``z`` with this backend's fresh minibatch and
    Rademacher ``v`` (``v`` given: tests).  Returns ``(curvature, difference, counters)``."""
    plan = static.plan
    if not (plan.adapt_mass or (plan.adapt_step and static.plates)):
        return None, None, counters
    key_b, key_v = random.split(key)
    renew = {n: (a[0], o[0]) for n, (a, o) in epochs.renew_draws(static.plates, key_b, 1).items()}
    idx, counters = epochs.next_batch(static.plates, bases, counters, renew)
    if v is None and plan.adapt_mass:
        v = random.rademacher(key_v, jnp.shape(z), jnp.result_type(z))

    def grad_on_batch(theta):
        return static.value_and_grad(theta, idx, model_args, model_kwargs)[2]

    return (*adaptation.measure(plan, ad, z, grad, grad_on_batch, v, bool(static.plates)), counters)


def adapted(static: Static, state: SGHMCState) -> dict:
    """The adapted (or, without adaptation, the given) step size, mass, friction and
    gradient-noise estimate of one chain's state, per site, with the warmup trace
    (:func:`ppl_kernels.adaptation.by_site`; numpy arrays)."""
    values = adaptation.summary(static.plan, OPS.xp, state.adapt)
    values = {k: np.asarray(v) for k, v in values.items()}
    return adaptation.by_site(values, static.layout.shapes)


def sghmc_sample(static: Static, state: SGHMCState, model_args=(), model_kwargs=None) -> SGHMCState:
    """One kept sample: ``thinning`` consecutive draws, the statistics of the last
    one, and ``diverging`` if any of them diverged (a fault is never thinned away);
    ``divergence_run`` counts such samples in a row."""
    if static.cfg.thinning == 1:
        new = sghmc_draw(static, state, model_args, model_kwargs)
        diverged = new.diverging
    else:

        def one(_, carry):
            state, diverged = carry
            state = sghmc_draw(static, state, model_args, model_kwargs)
            return state, diverged | state.diverging

        new, diverged = lax.fori_loop(0, static.cfg.thinning, one, (state, jnp.array(False)))
    return _tracked(static, new._replace(diverging=diverged, divergence_run=jnp.where(diverged, state.divergence_run + 1, 0)))


def _tracked(static: Static, state: SGHMCState) -> SGHMCState:
    """``state`` with the in-run kinetic-temperature check moved on by its sample
    (:func:`ppl_kernels.adaptation.kinetic_after_sample`; runs that are not checked keep it)."""
    if not (static.cfg.checks_kinetic and static.layout.size):
        return state
    _, inv_mass, friction, _, _ = _coefficients(static, state.adapt)
    sums = adaptation.kinetic_after_sample(static.cfg, static.num_warmup, state.kinetic_check, state.i,
                                           state.kinetic_temperature, state.step_size, inv_mass, friction,
                                           static.layout.flatten(state.z))
    return state._replace(kinetic_check=sums)
