"""The SGHMC integrator for Pyro: pure functions over an :data:`SGHMCState`.

The twin of :mod:`ppl_kernels.numpyro.integrator`: the same functions with the
same signatures and return values.  :func:`sghmc_init` starts a chain,
:func:`sghmc_step` is one integrator step, :func:`sghmc_draw` one draw (an
optional momentum resampling, then ``num_steps`` steps in a Python loop: the
Pyro kernel runs eagerly) and :func:`sghmc_sample` one kept sample
(``thinning`` draws).  Inside a draw θ, r and ∇Ũ are one flat tensor over the
sites (:class:`Layout`; the model sees per-site views), so the integrator costs
a handful of torch operations per step whatever the number of sites; the
arithmetic is :mod:`ppl_kernels.dynamics`', the settings of each draw
:meth:`ppl_kernels.config.SGHMCConfig.draw_settings`.  Every random draw comes
from the state's generator state (``rng_key``), and the state holds everything
that changes, so a chain continues exactly from any state.

With ``jit_compile=True`` the potential (model trace, log densities,
transforms) is traced once with :func:`torch.jit.trace`, the minibatch
indices being inputs of the graph.
"""

from __future__ import annotations

import warnings
from collections import namedtuple

import numpy as np
import pyro
import torch

from .. import adaptation, dynamics
from ..config import STAT_FIELDS, DrawNoise, resolve_site_values
from . import epochs

__all__ = ["SGHMCState", "Static", "Layout", "make_static", "adapted", "sghmc_init", "sghmc_move", "sghmc_step",
           "sghmc_draw", "sghmc_sample"]

SGHMCState = namedtuple("SGHMCState", ["i", "z", "r", "grad", "potential_energy", *STAT_FIELDS, "divergence_run", "kinetic_check",
                                       "friction_rate", "epochs", "adapt", "rng_key"])
SGHMCState.__doc__ = """State of the SGHMC chain (the same fields in both backends).

- **i** - draw index (warmup and sampling together), drives the schedules.
- **z** - latent values in unconstrained space (dict site -> tensor).
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
  (:mod:`ppl_kernels.pyro.epochs`).
- **adapt** - the warmup adaptation's :data:`ppl_kernels.adaptation.AdaptState`
  (the adapted step factor, mass and friction are read from it after warmup too).
- **rng_key** - the state of the chain's :class:`torch.Generator` (a byte tensor),
  which every later draw continues.
"""

Static = namedtuple("Static", ["cfg", "layout", "inv_mass", "friction", "mass", "dim", "plates", "plan",
                               "value_and_grad", "generator", "num_warmup"])
Static.__doc__ = """What a draw needs besides the state; fixed for a run.

``inv_mass``, ``friction`` and ``mass`` are the given coefficients of the flat
vector (``1/(αM)``, ``γC`` and the base ``M``: a float when the same on every
coordinate, else a flat tensor), used as they are when nothing adapts; ``dim`` the
number of coordinates (1 for a model with no latent site, whose per-coordinate
statistics are then 0); ``plan`` the warmup adaptation's
:class:`~ppl_kernels.adaptation.AdaptPlan`;
``value_and_grad(z_flat, indices, args, kwargs) -> (Ũ, lp, ∇Ũ flat)``; ``generator`` is a scratch
:class:`torch.Generator` that each draw sets to the state's ``rng_key`` (the
state, not the generator, carries the random stream)."""


def _set_at(a, k, v):
    a = a.clone()
    a[k] = v
    return a


#: The array operations of :mod:`ppl_kernels.adaptation`.
OPS = adaptation.Ops(xp=torch, set_at=_set_at,
                     zeros=lambda shape, like: torch.zeros(shape, dtype=like.dtype, device=like.device))


class Layout:
    """Sites ↔ one flat vector: ``flatten`` ravels a dict of per-site tensors,
    ``unflatten`` gives per-site views of a flat tensor (autograd flows through
    them into the flat tensor)."""

    def __init__(self, z: dict):
        self.names = list(z)
        self.shapes = {k: tuple(v.shape) for k, v in z.items()}
        self.numels = [v.numel() for v in z.values()]
        self.size = sum(self.numels)

    def flatten(self, tree: dict) -> torch.Tensor:
        if not self.names:  # a model with no latent site (only observed or deterministic ones)
            return torch.zeros(0)
        return torch.cat([tree[k].reshape(-1) for k in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict:
        return {k: p.view(self.shapes[k]) for k, p in zip(self.names, flat.split(self.numels))}


def make_static(cfg, parts, z: dict, plates, num_warmup: int = 0, *, jit_compile=False, ignore_jit_warnings=False,
                model_args=(), model_kwargs=None) -> Static:
    """The static part of a run from the config, the potential ``parts(z, indices,
    args, kwargs) -> (Ũ, lp)`` of :func:`ppl_kernels.pyro.model.potential` (or a
    ``potential_fn``'s), the unconstrained initial ``z`` and the number of warmup
    samples (the adaptation runs over their ``num_warmup · thinning`` draws).  With
    ``jit_compile`` the potential is traced at ``model_args`` / ``model_kwargs``."""
    layout = Layout(z)
    mass = resolve_site_values("mass", cfg.mass, layout.shapes)
    factor = resolve_site_values("friction", cfg.friction, layout.shapes)
    friction = dynamics.base_friction(factor, mass, cfg.adapt_mass_matrix)
    inv_mass, fric = dynamics.effective_coefficients(mass, friction, cfg.boost, cfg.friction_scale)
    plan = adaptation.make_plan(cfg, num_warmup * cfg.thinning, dynamics.flat_coefficient(factor, layout.shapes),
                                layout.size, plates)
    z0 = layout.flatten(z).detach()

    def flat_parts(z_flat, indices, model_args, model_kwargs):
        return parts(layout.unflatten(z_flat), indices, model_args, model_kwargs)

    if jit_compile:
        flat_parts = _compiled(flat_parts, z0, plates, model_args, model_kwargs or {}, ignore_jit_warnings)
    generator = torch.Generator(device=z0.device)

    def as_flat(c):
        return c if isinstance(c, float) else torch.as_tensor(c, dtype=z0.dtype, device=z0.device)

    coefficients = [as_flat(dynamics.flat_coefficient(c, layout.shapes)) for c in (inv_mass, fric, mass)]
    plan = plan._replace(friction_factor=as_flat(plan.friction_factor))
    return Static(cfg, layout, *coefficients, max(layout.size, 1), tuple(plates), plan, _value_and_grad(flat_parts),
                  generator, int(num_warmup))


#: How torch.distributions' argument validation words its errors.
_VALIDATION_ERRORS = ("Expected value argument", "Expected parameter")


def _value_and_grad(flat_parts):
    """Flat ``(z, indices, args, kwargs) -> (Ũ, lp, ∇Ũ)`` with no graph kept."""

    def value_and_grad(z_flat, indices, model_args, model_kwargs):
        zg = z_flat.detach().requires_grad_(True)
        try:
            u, lp = flat_parts(zg, indices, model_args, model_kwargs)
        except ValueError as e:
            # A distribution made with validate_args=True (validation on when the user built it) refuses
            # a non-finite value: the step diverged, which the kernel records and restarts from.
            if not str(e).startswith(_VALIDATION_ERRORS) or bool(torch.isfinite(z_flat).all()):
                raise
            nan = torch.full((), float("nan"), dtype=z_flat.dtype)
            return nan, nan, torch.full_like(z_flat, float("nan"))
        # a potential_fn may return a Python number (Pyro's initialize_model does, for a model with no
        # latent site), as jax.numpy takes one in the NumPyro twin
        u, lp = (v if isinstance(v, torch.Tensor) else torch.as_tensor(v, dtype=z_flat.dtype) for v in (u, lp))
        if not u.requires_grad:  # nothing latent to differentiate (or a potential free of z)
            return u.detach(), lp.detach(), torch.zeros_like(zg)
        (g,) = torch.autograd.grad(u, zg, allow_unused=True)
        return u.detach(), lp.detach(), torch.zeros_like(zg) if g is None else g.detach()

    return value_and_grad


def _normal(generator, like):
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def _finite(*values) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in values)


def _state(static, i, z, r, grad, rate, u, lp, eps, beta, phase, diverging, run, kinetic, epochs_, adapt, key) -> SGHMCState:
    lay = static.layout
    inv_mass = _coefficients(static, adapt)[1]
    kinetic_r = dynamics.thermometer_momentum(static.cfg.integrator, r, grad, eps)
    stats = dynamics.draw_statistics(z, r, grad, inv_mass, static.dim, kinetic_r, rate)
    return SGHMCState(
        i=i, z=lay.unflatten(z), r=lay.unflatten(r), grad=lay.unflatten(grad), potential_energy=u, lp=lp, **stats,
        step_size=float(eps), resample_scale=float(beta), phase=int(phase), diverging=bool(diverging),
        divergence_run=int(run), kinetic_check=kinetic, friction_rate=rate, epochs=epochs_, adapt=adapt, rng_key=key,
    )


def _coefficients(static, adapt):
    """``(step factor, 1/M', C', M, noise rate)`` of the next draw: the adaptation's, else
    the given ones (:func:`ppl_kernels.adaptation.coefficients`)."""
    if adaptation.adapts(static.plan):
        return adaptation.coefficients(static.plan, OPS.xp, adapt)
    return 1.0, static.inv_mass, static.friction, static.mass, 0.0


def _next_gradient(static, z_flat, bases, counters, model_args, model_kwargs):
    """Ũ, lp and ∇Ũ at ``z_flat`` on the next minibatch (the generator already set)."""
    renew = {k: (a[0], o[0]) for k, (a, o) in epochs.renew_draws(static.plates, static.generator, 1).items()}
    idx, counters = epochs.next_batch(static.plates, bases, counters, renew)
    return (*static.value_and_grad(z_flat, idx, model_args, model_kwargs or {}), counters)


def sghmc_init(static: Static, z: dict, rng_key, model_args=(), model_kwargs=None) -> SGHMCState:
    """Initial state at unconstrained ``z``: momentum drawn from ``N(0, α T M)`` (the
    stationary law), gradient from a first minibatch.  ``rng_key`` is an integer
    seed or a generator state."""
    cfg, g = static.cfg, static.generator
    if isinstance(rng_key, torch.Tensor):
        g.set_state(rng_key)
    else:
        g.manual_seed(int(rng_key))
    bases, counters = epochs.split(epochs.init_epochs(static.plates, g))
    z_flat = static.layout.flatten(z).detach()
    u, lp, grad, counters = _next_gradient(static, z_flat, bases, counters, model_args, model_kwargs)
    adapt = adaptation.init_state(static.plan, OPS, static.mass + torch.zeros_like(z_flat))
    factor, inv_mass, friction, mass, _ = _coefficients(static, adapt)
    rate = friction * inv_mass + 0.0 * z_flat
    r = dynamics.resampled_momentum(_normal(g, z_flat), cfg.boost * cfg.noise_temperature, mass)
    eps, beta, _, _ = cfg.draw_settings(0)
    return _state(static, 0, z_flat, r, grad, rate, u, lp, factor * eps, beta, 0, False, 0, adaptation.KINETIC_START,
                  epochs.join(bases, counters), adapt, g.get_state())


def sghmc_move(static: Static, state: SGHMCState, z: dict, model_args=(), model_kwargs=None) -> SGHMCState:
    """``state`` moved to ``z`` with its momentum, draw index and streams kept: the
    gradient at ``z`` on the next minibatch.  (Pyro's ``MCMC`` hands the kernel
    only values, and a caller that moves the chain hands new ones; NumPyro hands
    back the state itself and needs no such step.)"""
    g, lay = static.generator, static.layout
    g.set_state(state.rng_key)
    bases, counters = epochs.split(state.epochs)
    u, lp, grad, counters = _next_gradient(static, lay.flatten(z).detach(), bases, counters, model_args, model_kwargs)
    return state._replace(z=z, grad=lay.unflatten(grad), potential_energy=u, lp=lp,
                          epochs=epochs.join(bases, counters), rng_key=g.get_state())


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
    redrawn from ``N(0, α T M)``, and the epoch counters and the random state move on.
    ``noise`` (tests) gives the draw's random inputs instead of drawing them
    (:class:`ppl_kernels.config.DrawNoise`).
    """
    cfg, lay, g, plan = static.cfg, static.layout, static.generator, static.plan
    model_kwargs = model_kwargs or {}
    noise = noise or DrawNoise()
    k = state.i
    eps, beta, phase, noise_t = cfg.draw_settings(k)
    factor, inv_mass, friction, mass, _ = _coefficients(static, state.adapt)
    eps = factor * eps
    g.set_state(state.rng_key)
    z0, r, g0 = lay.flatten(state.z), lay.flatten(state.r), lay.flatten(state.grad)
    # early warmup draws start from the stationary law: their heat is shed at once (adaptation.refreshes)
    if cfg.resample_scale is not None or adaptation.refreshes(plan, k):
        scale = beta if cfg.resample_scale is not None else cfg.boost * cfg.noise_temperature
        xi = _normal(g, r) if noise.resample is None else lay.flatten(noise.resample)
        r = dynamics.fresh_momentum(cfg.integrator, dynamics.resampled_momentum(xi, scale, mass), g0, eps)
    r0 = r
    bases, counters = epochs.split(state.epochs)
    n = int(adaptation.steps_per_draw(cfg, np, float(eps)))  # num_steps, or those trajectory_length takes
    renew = epochs.renew_draws(static.plates, g, n) if noise.renew is None else noise.renew
    z, grad, rate, u, lp = z0, g0, state.friction_rate, state.potential_energy, state.lp
    for j in range(n):
        if noise.steps is None:
            xi = _normal(g, r) if cfg.injects_noise else 0.0
        else:
            xi = lay.flatten({k_: v[j] for k_, v in noise.steps.items()})
        renew_j = {name: (a[j], o[j]) for name, (a, o) in renew.items()}
        z, r, grad, rate, u, lp, counters = dynamics.integrator_step(
            static, inv_mass, friction, epochs.next_batch, z, r, grad, rate, bases, counters, eps, noise_t, xi,
            renew_j, model_args, model_kwargs)
    diverging = not _finite(z, r, u, rate)
    if not diverging and adaptation.adapts(plan) and k < plan.num_draws:
        energy0 = state.potential_energy + 0.5 * (inv_mass * r0 * r0).sum()
        energy = u + 0.5 * (inv_mass * r * r).sum()
        diverging = bool(adaptation.blown_up(plan, torch, k, energy0, energy, static.dim))
    if diverging:
        # The chain restarts from the draw's start with a fresh momentum from its stationary
        # law: the old momentum would only lead it back into the same region.
        fresh = dynamics.resampled_momentum(_normal(g, z0), cfg.boost * cfg.noise_temperature, mass)
        z, r, grad, rate, u, lp = z0, fresh, g0, state.friction_rate, state.potential_energy, state.lp
    adapt = state.adapt
    if adaptation.adapts(plan) and k < plan.num_draws:
        v = None if noise.probe is None else lay.flatten(noise.probe)
        curvature, difference, counters = _probe(static, adapt, z, grad, bases, counters, model_args, model_kwargs, v)
        adapt, momentum_factor = adaptation.update(plan, OPS, adapt, k, z, eps, diverging, curvature, difference)
        r = r * momentum_factor
        # where the mass moved, the friction rate restarts from the new C'M'⁻¹ (the thermostat's too)
        _, new_inv_mass, new_friction, _, _ = _coefficients(static, adapt)
        rate = torch.where(momentum_factor != 1.0, new_friction * new_inv_mass + 0.0 * z, rate)
    return _state(static, k + 1, z, r, grad, rate, u, lp, eps, beta, phase, diverging, state.divergence_run, state.kinetic_check,
                  epochs.join(bases, counters), adapt,
                  g.get_state())


def _probe(static, ad, z, grad, bases, counters, model_args, model_kwargs, v=None):
    """:func:`ppl_kernels.adaptation.measure` at ``z`` with this backend's fresh minibatch and
    Rademacher ``v`` (``v`` given: tests).  Returns ``(curvature, difference, counters)``."""
    plan, g = static.plan, static.generator
    if not (plan.adapt_mass or (plan.adapt_step and static.plates)):
        return None, None, counters
    renew = {n: (a[0], o[0]) for n, (a, o) in epochs.renew_draws(static.plates, g, 1).items()}
    idx, counters = epochs.next_batch(static.plates, bases, counters, renew)
    if v is None and plan.adapt_mass:
        v = 2.0 * torch.randint(0, 2, z.shape, generator=g, device=z.device).to(z.dtype) - 1.0

    def grad_on_batch(theta):
        return static.value_and_grad(theta, idx, model_args, model_kwargs)[2]

    return (*adaptation.measure(plan, ad, z, grad, grad_on_batch, v, bool(static.plates)), counters)


def adapted(static: Static, state: SGHMCState) -> dict:
    """The adapted (or, without adaptation, the given) step size, mass, friction and
    gradient-noise estimate of one chain's state, per site, with the warmup trace
    (:func:`ppl_kernels.adaptation.by_site`; numpy arrays)."""
    values = adaptation.summary(static.plan, OPS.xp, state.adapt)
    values = {k: v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for k, v in values.items()}
    return adaptation.by_site(values, static.layout.shapes)


def sghmc_sample(static: Static, state: SGHMCState, model_args=(), model_kwargs=None) -> SGHMCState:
    """One kept sample: ``thinning`` consecutive draws, the statistics of the last
    one, and ``diverging`` if any of them diverged (a fault is never thinned away);
    ``divergence_run`` counts such samples in a row."""
    diverged = False
    for _ in range(static.cfg.thinning):
        state = sghmc_draw(static, state, model_args, model_kwargs)
        diverged = diverged or state.diverging
    return _tracked(static, state._replace(diverging=diverged, divergence_run=state.divergence_run + 1 if diverged else 0))


def _tracked(static: Static, state: SGHMCState) -> SGHMCState:
    """``state`` with the in-run kinetic-temperature check moved on by its sample
    (:func:`ppl_kernels.adaptation.kinetic_after_sample`; runs that are not checked keep it)."""
    if not (static.cfg.checks_kinetic and static.layout.size):
        return state
    _, inv_mass, friction, _, _ = _coefficients(static, state.adapt)
    sums = adaptation.kinetic_after_sample(static.cfg, static.num_warmup, state.kinetic_check, state.i,
                                           state.kinetic_temperature, state.step_size, inv_mass, friction,
                                           static.layout.flatten(state.z))
    return state._replace(kinetic_check=tuple(float(v) for v in sums))


# -- jit_compile -----------------------------------------------------------------------------
def _check_indices(plates) -> dict:
    """Indices unlike :func:`~ppl_kernels.pyro.epochs.first_indices`' (the last B points,
    reversed) to check that a traced potential did not freeze the ones it saw."""
    return {p.name: torch.arange(p.size - 1, p.size - p.subsample_size - 1, -1) for p in plates}


def _compiled(flat_parts, z0, plates, model_args, model_kwargs, ignore_warnings):
    """``flat_parts`` traced by :func:`torch.jit.trace` (flat θ and the plates' index
    tensors as inputs, the model arguments as constants), or ``flat_parts`` itself,
    with a warning, when tracing fails or the traced graph disagrees with it at
    other θ and indices."""
    names = [p.name for p in plates]

    def positional(z, *idx):
        return flat_parts(z, dict(zip(names, idx)), model_args, model_kwargs)

    idx0 = tuple(epochs.first_indices(plates).values())
    # Pyro's own jit_compile freezes the param store while tracing: params enter the graph as constants.
    frozen = [p for _, p in pyro.get_param_store().named_parameters() if p.requires_grad]
    try:
        with pyro.validation_enabled(False), warnings.catch_warnings():
            if ignore_warnings:
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
            for p in frozen:
                p.requires_grad_(False)
            traced = torch.jit.trace(positional, (z0, *idx0), check_trace=False)

            def compiled(z, indices, model_args, model_kwargs):
                return traced(z, *[indices[n] for n in names])

            # Check at other θ and indices, through the same autograd path as the sampler.
            z1 = z0 + 0.1 * torch.linspace(-1.0, 1.0, z0.numel(), dtype=z0.dtype, device=z0.device)
            other = _check_indices(plates)
            got = _value_and_grad(compiled)(z1, other, model_args, model_kwargs)
            want = _value_and_grad(flat_parts)(z1, other, model_args, model_kwargs)
    except Exception as e:  # noqa: BLE001  (any tracing failure: run eagerly, loudly)
        warnings.warn(f"jit_compile=True: tracing the potential failed ({type(e).__name__}: {e}); "
                      "SGHMC runs it eagerly", RuntimeWarning, stacklevel=4)
        return flat_parts
    finally:
        for p in frozen:
            p.requires_grad_(True)
    for name, a, b in zip(("potential", "log density", "gradient"), got, want):
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max().clamp(min=1.0))):
            warnings.warn(f"jit_compile=True: the traced potential's {name} differs from the eager one at other "
                          "latents or minibatch indices (data-dependent control flow in the model?); "
                          "SGHMC runs it eagerly", RuntimeWarning, stacklevel=4)
            return flat_parts
    return compiled
