"""The warmup adaptation, written once for both kernels.

During the warmup draws each chain tunes three things from what it samples
(``docs/warmup.rst``):

- **mass**: a diagonal ``M = E[∂ᵢ²Ũ]`` per coordinate, the potential's mean
  curvature over each of Stan's doubling windows, measured by Hutchinson probes
  (``vᵢ (∇Ũ_B(θ + h v) − ∇Ũ_B(θ))ᵢ / hᵢ`` with Rademacher ``v`` and both
  gradients on the same minibatch ``B``, so the minibatch noise cancels), so
  that every coordinate oscillates at about unit frequency (whitened units).
  Unlike ``T / Var θ`` the curvature does not depend on how far the chain has
  explored, nor on how hot it runs; where it is not positive (a non-convex
  region) the window's ``T / Var θ`` is used, and a floor keeps it from
  collapsing on a chain pushed along an exponential tail (:func:`update`);
- **friction**: ``C = 2 · friction · M``, critical damping of a unit-frequency
  oscillator times the dimensionless ``friction`` factor;
- **step size**: in whitened units a fixed :data:`WHITENED_STEP` (a Gaussian's
  Var θ is then biased by ~2 %), halved by every diverging draw, and, for
  models with a subsampled plate, capped by :func:`noise_limited_step` so that
  the minibatch-gradient noise, estimated from pairs of gradients at the same θ
  (``V̂ = E (g_a − g_b)² / 2``), heats Var θ by at most :data:`NOISE_HEATING`.

After the last warmup draw the values are frozen; α, γ and β act on top of
them (``M' = α M``, ``C' = γ C``, resampling ``N(0, β M)``).

The functions are pure arithmetic over an :data:`AdaptState` of arrays, with
the array namespace ``ops.xp`` (``torch`` for Pyro, ``jax.numpy`` for NumPyro),
so both backends run exactly the same estimators on the same schedule.
"""

from __future__ import annotations

from collections import namedtuple
from typing import Any, Callable, NamedTuple

import numpy as np

from . import dynamics
from . import schedules as _sched

__all__ = [
    "AdaptPlan",
    "AdaptState",
    "Ops",
    "WHITENED_STEP",
    "NOISE_HEATING",
    "noise_limited_step",
    "noise_estimate",
    "blown_up",
    "probe_offset",
    "curvature_probe",
    "measure",
    "HEATING_TOLERANCE",
    "mass_windows",
    "make_plan",
    "init_state",
    "coefficients",
    "adapts",
    "summary",
    "by_site",
    "kinetic_warning",
    "kinetic_track",
    "kinetic_after_sample",
    "kinetic_found",
    "warn_kinetic",
    "SLOW_DRAW",
    "MAX_STEPS",
    "steps_per_draw",
    "draw_time",
    "slow_now",
    "warn_slow",
    "update",
]

#: The step in whitened units (unit-frequency coordinates, critical damping) once the
#: mass is adapted: a Gaussian's Var θ is then biased by ``ε²/(4 − 4ε)`` ≈ 2 %.
WHITENED_STEP = 0.25
#: The heating of Var θ by minibatch-gradient noise the step size allows (a fraction of T).
NOISE_HEATING = 0.02
#: The kinetic-temperature excess beyond which a sampling phase warns.
HEATING_TOLERANCE = 0.05
#: Energy growth within a warmup draw, relative to its scale, that counts as a divergence.
BLOWUP = 100.0
#: The largest ``ε √(c_i / M'_i)`` (``c`` the curvature probe after the draw) a warmup
#: draw may reach before its step is halved, as a divergence halves it: the integrator
#: is unstable beyond 2, a minibatch's curvature scatters around the probe's, and an
#: instability that grows by a factor per draw, not 100 within one, escapes ``BLOWUP``.
STABLE_REACH = 1.0
#: Size of the Hutchinson probe's displacement, in posterior scales ``1/√M``.
PROBE = 1e-3
#: Pseudo-count of the previous window's noise estimate in the current window's.
NOISE_PRIOR = 10.0
#: Largest friction step ``a = ε C'/M'`` the adapted step may take (a = 1 empties the
#: momentum every step: the Langevin limit; a ≥ 2 is unstable).
MAX_FRICTION_STEP = 1.0
#: The smallest mass a window may give, as a fraction of the smaller of its ``T / Var θ`` and
#: its mean score over ``T`` (:func:`update`): both are the mean curvature under the posterior.
SPREAD_FLOOR = 0.5

AdaptState = namedtuple(
    "AdaptState",
    ["step_ratio", "nominal", "mass", "friction", "count", "mean", "m2", "curvature", "score", "noise_n",
     "noise_sum", "noise_prev", "step_trace", "mass_trace"],
)
AdaptState.__doc__ = """Adaptation state of one chain (the same fields in both backends).

- **step_ratio** - the shrink factor ρ ∈ (0, 1] of the step (halved by a divergence,
  back to 1 after each mass window).
- **nominal** - the factor that turns the step schedule into its nominal value
  (1 until the first mass window, then ``WHITENED_STEP / max schedule``).
- **mass**, **friction** - the base M and C per coordinate (flat).
- **count**, **mean**, **m2** - Welford accumulators of θ over the current mass window.
- **curvature** - the sum of the window's Hutchinson probes of ``∂ᵢ²Ũ``.
- **score** - the sum of the window's products ``(∂ᵢŨ_a)(∂ᵢŨ_b)`` of two gradients at
  the draw's θ (two minibatches with a subsampled plate), whose mean over the
  posterior is ``T E[∂ᵢ²Ũ]`` (:func:`update`).
- **noise_n**, **noise_sum** - the minibatch-gradient noise estimate of the current
  window: the number of paired gradients and the per-coordinate sum of ``(g_a − g_b)² / 2``.
- **noise_prev** - the previous windows' estimate, which the current one starts from.
- **step_trace** - the step size of every warmup draw.
- **mass_trace** - the mass after each mass window (row 0: the initial mass).
"""


class Ops(NamedTuple):
    """What the arithmetic needs from a backend: the array namespace and ``set_at(a, k, v)``
    (``a`` with entry ``k`` replaced by ``v``; a copy)."""

    xp: Any
    set_at: Callable
    zeros: Callable  # zeros(shape, like): an array of like's dtype and device


class AdaptPlan(NamedTuple):
    """The fixed part of the adaptation for a run of ``num_draws`` adapting warmup draws
    (0: nothing adapts)."""

    num_draws: int
    adapt_step: bool
    adapt_mass: bool
    relative_friction: bool  # adapt_mass_matrix: C = 2 · friction_factor · M
    friction_factor: Any  # the given friction, flat or a float
    mass_end: np.ndarray  # per warmup draw: a mass window ends after it
    in_window: np.ndarray  # per warmup draw: it lies in a mass window
    num_windows: int
    epoch_batches: int  # minibatches per epoch of the subsampled plates (the largest; 0: none)
    step_max: float  # the step schedule's largest value
    noise_temperature: float
    boost: float
    friction_scale: float
    refresh_draws: int  # warmup draws that start from a fresh momentum: those before the first mass window ends


def mass_windows(num_draws: int, init_buffer: int = 75, term_buffer: int = 50, base_window: int = 25) -> list:
    """Stan's slow windows ``[(start, end), ...]`` over ``num_draws`` warmup draws:
    a fast initial buffer, windows doubling from ``base_window`` (the last one stretched
    to the terminal buffer) and a fast terminal buffer.  Short warmups scale the
    buffers to 15 % / 75 % / 10 % as Stan does; under 20 draws there is no window."""
    if num_draws < 20:
        return []
    if init_buffer + base_window + term_buffer > num_draws:
        init_buffer = int(0.15 * num_draws)
        term_buffer = int(0.1 * num_draws)
        base_window = num_draws - init_buffer - term_buffer
    windows, start, size = [], init_buffer, base_window
    end_slow = num_draws - term_buffer
    while start < end_slow:
        end = start + size
        if end + 2 * size > end_slow:  # the next window would not fit: stretch this one
            end = end_slow
        windows.append((start, end))
        start, size = end, 2 * size
    return windows


def make_plan(cfg, num_draws: int, friction_factor, dim: int, plates=()) -> AdaptPlan:
    """The plan of a run from its config, its number of warmup draws (``num_warmup ·
    thinning``), the flat ``friction``, the number of coordinates ``dim`` and the
    subsampled plates."""
    noise_t = cfg.noise_temperature
    if dim == 0 or noise_t == 0:  # nothing to move, or T = 0: no temperature to measure or scale by
        num_draws = 0
    adapt_mass = bool(cfg.adapt_mass_matrix)
    windows = mass_windows(num_draws) if adapt_mass else []
    mass_end = np.zeros(max(num_draws, 1), bool)
    in_window = np.zeros(max(num_draws, 1), bool)
    for start, end in windows:
        mass_end[end - 1] = True
        in_window[start:end] = True
    return AdaptPlan(int(num_draws), bool(cfg.adapt_step_size) and num_draws > 0, adapt_mass and num_draws > 0,
                     adapt_mass, friction_factor, mass_end, in_window, len(windows),
                     max([p.size // p.subsample_size for p in plates], default=0), _sched.schedule_max(cfg.step_size),
                     noise_t, cfg.boost, cfg.friction_scale, windows[0][1] if windows and num_draws > 0 else 0)


def init_state(plan: AdaptPlan, ops: Ops, mass) -> AdaptState:
    """The state before the first draw from the given base ``mass`` as a flat array."""
    friction = (2.0 * mass if plan.relative_friction else 0.0 * mass + 1.0) * plan.friction_factor
    zero = 0.0 * mass.sum()
    mass_trace = ops.set_at(ops.zeros((plan.num_windows + 1, mass.shape[0]), mass), 0, mass)
    return AdaptState(
        step_ratio=zero + 1.0, nominal=zero + 1.0, mass=mass, friction=friction, count=zero, mean=0.0 * mass,
        m2=0.0 * mass, curvature=0.0 * mass, score=0.0 * mass, noise_n=zero, noise_sum=0.0 * mass, noise_prev=0.0 * mass,
        step_trace=ops.zeros((max(plan.num_draws, 1),), mass), mass_trace=mass_trace,
    )


def probe_offset(ad: AdaptState, v):
    """The Hutchinson probe's displacement ``h ⊙ v`` for Rademacher ``v``: ``hᵢ`` is
    :data:`PROBE` posterior scales ``1/√Mᵢ`` (small against the curvature's variation,
    large against float32 round-off)."""
    return PROBE * v / ad.mass ** 0.5


def curvature_probe(ad: AdaptState, v, grad_plus, grad):
    """``vᵢ (∇Ũ(θ + h v) − ∇Ũ(θ))ᵢ / hᵢ``, whose mean is ``∂ᵢ²Ũ`` (Hutchinson)."""
    return v * (grad_plus - grad) * ad.mass ** 0.5 / PROBE


def measure(plan: AdaptPlan, ad: AdaptState, z, grad, grad_on_probe_batch, v, subsampled: bool):
    """The warmup's measurements at ``z`` given the backend's random inputs: ``(curvature,
    difference)``.  ``curvature`` is the pair of a :func:`curvature_probe` with Rademacher
    ``v`` and the score product ``grad ⊙ g_b`` (:func:`update`); ``difference`` (``subsampled``)
    is ``grad − g_b`` (:func:`noise_estimate`).  ``grad`` is the draw's last minibatch
    gradient and ``g_b`` a fresh one at ``z`` (``grad`` itself without subsampling); either
    result is ``None`` when not needed.
    ``grad_on_probe_batch(θ)`` is ∇Ũ at θ on one fresh minibatch (the same for both calls)."""
    grad_b = grad_on_probe_batch(z) if subsampled else grad
    difference = grad - grad_b if subsampled and plan.adapt_step else None
    curvature = None
    if plan.adapt_mass:
        curvature = (curvature_probe(ad, v, grad_on_probe_batch(z + probe_offset(ad, v)), grad_b), grad * grad_b)
    return curvature, difference


def _maximum(xp, a, b):
    return xp.where(a > b, a, b)


def _minimum(xp, a, b):
    return xp.where(a < b, a, b)


def coefficients(plan: AdaptPlan, xp, ad: AdaptState):
    """``(step factor, 1/M', C', M, noise rate)`` of the next draw.

    The step of draw k is ``step factor · schedule(k)``: ``ρ`` times the smaller of the
    nominal step and :func:`noise_limited_step`.  ``noise rate`` is ``V̂ / (2 C' T)`` per
    coordinate, the momentum's heating by the gradient noise per unit step.
    """
    inv_mass, fric = 1.0 / (plan.boost * ad.mass), plan.friction_scale * ad.friction
    rate = noise_estimate(xp, ad) / (2.0 * fric * plan.noise_temperature)
    nominal = ad.nominal * plan.step_max
    if plan.epoch_batches:
        # the heating model holds in whitened units: only once a mass window has ended
        worst = rate.max()
        capped = _minimum(xp, nominal, noise_limited_step(xp, worst, plan.epoch_batches))
        if not plan.adapt_mass:
            step = capped
        elif plan.num_windows:
            step = xp.where(ad.mass_trace[1:].max() > 0.0, capped, nominal)
        else:
            step = nominal
    else:
        step = nominal
    return ad.step_ratio * step / plan.step_max, inv_mass, fric, ad.mass, rate


def noise_estimate(xp, ad: AdaptState):
    """``V̂`` per coordinate: the current window's mean of ``(g_a − g_b)² / 2``, starting
    from the previous windows' estimate with weight :data:`NOISE_PRIOR`."""
    prior = _where_positive(xp, ad.noise_prev, NOISE_PRIOR)
    return (ad.noise_sum + prior * ad.noise_prev) / _maximum(xp, ad.noise_n + prior, 1.0)


def _where_positive(xp, values, weight):
    """``weight`` if any of ``values`` is positive (an estimate exists), else 0."""
    return xp.where(values.max() > 0.0, weight, 0.0) if values.shape[0] else 0.0 * weight


def noise_limited_step(xp, rate, epoch_batches: int):
    """The largest step whose estimated heating of θ by the minibatch noise,
    ``ε · rate · min(1, K ε / 4)``, is :data:`NOISE_HEATING` (``K`` minibatches per epoch).

    ``ε · rate = ε V̂ / (2 C' T)`` is the momentum's heating (independent noise).  Within an
    epoch the minibatch noises sum to zero at fixed θ, so over θ's correlation time (about
    one whitened time unit, ``1/ε`` steps) only the partial sums of the running epoch remain:
    their variance is about ``K/6`` steps' worth instead of ``1/ε`` steps' (bounded here by
    ``K ε / 4``).  Measured on a linear regression with ``K = 8``: Var θ heated by 12 %, 0.3 %
    and 8 % where the momentum was heated by 43 %, 9 % and 90 % (``docs/warmup.rst``).
    """
    rate = _maximum(xp, rate, 1e-300)
    linear = NOISE_HEATING / rate
    quadratic = xp.sqrt(4.0 * NOISE_HEATING / (epoch_batches * rate))
    return xp.where(quadratic * epoch_batches < 4.0, quadratic, linear)


def blown_up(plan: AdaptPlan, xp, k, energy_start, energy_end, dim: int):
    """Whether warmup draw ``k`` blew up: its energy ``Ũ + ½ rᵀM'⁻¹r`` grew by more than
    :data:`BLOWUP` times ``|H_start| + d T``.  A step too large for the curvature grows the
    energy geometrically before it overflows; a chain falling towards the typical set only
    loses energy, and the minibatch noise of Ũ is of the order of ``|Ũ|``."""
    scale = xp.abs(energy_start) + dim * plan.noise_temperature
    return (k < plan.num_draws) & (energy_end - energy_start > BLOWUP * scale)


def summary(plan: AdaptPlan, xp, ad: AdaptState) -> dict:
    """The adapted values of one chain (backend arrays): ``step_size`` (the step the
    schedule's largest value becomes), base ``mass`` and ``friction`` per coordinate, the
    ``gradient_noise`` estimate V̂, and the warmup trace (``step_trace`` per warmup draw,
    ``mass_trace`` per mass window, row 0 the initial mass)."""
    factor = coefficients(plan, xp, ad)[0]
    return {"step_size": factor * plan.step_max, "mass": ad.mass, "friction": ad.friction,
            "gradient_noise": noise_estimate(xp, ad), "step_trace": ad.step_trace[:plan.num_draws],
            "mass_trace": ad.mass_trace}


def by_site(values: dict, shapes: dict) -> dict:
    """:func:`summary`'s values (numpy) with the flat vectors split per site (``shapes``:
    site -> unconstrained shape, in the flat vector's order); the mass trace keeps its
    leading window axis."""
    def split(flat, lead=()):
        flat = np.asarray(flat)
        out, start = {}, 0
        for site, shape in shapes.items():
            size = int(np.prod(shape))
            out[site] = flat[..., start:start + size].reshape(lead + tuple(shape))
            start += size
        return out

    out = {"step_size": float(values["step_size"]), "step_trace": np.asarray(values["step_trace"])}
    for name in ("mass", "friction", "gradient_noise"):
        out[name] = split(values[name])
    trace = np.asarray(values["mass_trace"])
    out["mass_trace"] = split(trace, trace.shape[:1])
    return out


#: Kept sampling draws per batch mean of the in-run kinetic-temperature check.
KINETIC_BATCH = 10
#: The in-run check's first checkpoint (kept sampling draws); the later ones double it.
KINETIC_CHECK = 200
#: :func:`kinetic_track`'s accumulators before the first draw.
KINETIC_START = (0.0, 0.0, 0.0, 0.0, 0.0)


def kinetic_after_sample(cfg, num_warmup: int, sums, i, kinetic, eps, inv_mass, friction, like):
    """:func:`kinetic_track` after the kept sample that ends at draw ``i`` (its kinetic
    temperature ``kinetic``, step ``eps``, flat ``1/M'`` and ``C'``; ``like`` the flat θ):
    the ratio to :func:`ppl_kernels.dynamics.expected_kinetic` and the sampling count from
    the run's ``num_warmup`` kept warmup samples."""
    expected = dynamics.expected_kinetic(cfg.noise_temperature, eps, inv_mass, friction, like, cfg.integrator)
    return kinetic_track(sums, kinetic / expected, i // cfg.thinning - num_warmup)


def _kinetic_summary(nb, s1, s2):
    """Mean and squared standard error of the batch means from their sums (no batch: 0, and
    under two batches a variance over one degree of freedom, so that nothing divides by 0)."""
    mean = s1 / (nb + (nb < 1))
    return mean, (s2 - nb * mean * mean) / (nb - 1.0 + (nb < 2) * (2.0 - nb)) / (nb + (nb < 1))


def kinetic_track(sums, ratio, count, level_z: float = 3.0):
    """The in-run kinetic-temperature check after a kept draw: ``sums`` is ``(open batch's
    sum, batches, Σ batch means, Σ squared batch means, warned)`` (Python floats or backend
    scalars), ``ratio`` the draw's kinetic temperature over its expected value and
    ``count`` the kept sampling draws so far, this one included (warmup draws: ≤ 0, not
    counted).  At ``count`` = 200, 400, 800, … the batch means are tested as
    :func:`kinetic_warning` tests a finished run's; the first failing checkpoint sets
    ``warned`` to 1 (:func:`kinetic_found`).  Pure arithmetic: both kernels run it."""
    acc, nb, s1, s2, warned = sums
    on = (count > 0) * 1.0
    acc = acc + on * ratio
    close = on * ((count % KINETIC_BATCH) == 0)
    m = acc / KINETIC_BATCH
    acc, nb, s1, s2 = acc * (1.0 - close), nb + close, s1 + close * m, s2 + close * m * m
    n = count // KINETIC_CHECK
    check = (count > 0) & (count % KINETIC_CHECK == 0) & (n >= 1) & ((n & (n - 1)) == 0)
    mean, se2 = _kinetic_summary(nb, s1, s2)
    off = abs(mean - 1.0) - HEATING_TOLERANCE
    hit = check & (warned == 0) & (off > 0) & (off * off > level_z * level_z * se2)
    return acc, nb, s1, s2, warned + hit * 1.0


def kinetic_found(old, new):
    """Whether :func:`kinetic_track` found the miss at this draw (``new``'s ``warned`` set)."""
    return new[4] > old[4]


def warn_kinetic(sums, count: int, dim: int, chain=None) -> None:
    """The warning both kernels give while a run goes when :func:`kinetic_found` holds
    after ``count`` kept sampling draws (:class:`~ppl_kernels.config.TemperatureWarning`)."""
    import warnings

    from .config import TemperatureWarning

    mean, se2 = _kinetic_summary(*(float(np.asarray(v)) for v in sums[1:4]))
    se = float(np.sqrt(max(se2, 0.0)))
    who = "a chain" if chain is None else f"chain {chain}"
    warnings.warn(f"{who}, after {count} sampling draws: " + kinetic_message(mean, se, dim), TemperatureWarning,
                  stacklevel=2)


def kinetic_message(mean: float, se: float, dim: int) -> str:
    """The text of a kinetic-temperature miss (its ratio's ``mean`` and standard error)."""
    if mean > 1.0:
        cause = ("the step is too large for the gradient noise or the curvature, or the chains had not converged: "
                 "raise num_warmup, or give a smaller step_size")
    else:
        cause = "the chains had not converged (raise num_warmup)"
    return (f"the kinetic temperature of the sampling phase is {mean:.3g} times its expected value "
            f"(± {se:.2g}, d = {dim}), not 1 within the tolerance {HEATING_TOLERANCE}: {cause}")


def kinetic_warning(kinetic, expected, dim: int, *, level_z: float = 3.0):
    """The warning for a sampling phase whose kinetic temperature misses its expected value
    (``T / (1 − a/2)`` at the adapted values), or ``None``.

    ``kinetic`` and ``expected`` are ``(chain, draw)``.  The ratio's mean must lie within
    ``level_z`` standard errors (batch means, 20 batches per chain: the draws are
    correlated) plus :data:`HEATING_TOLERANCE` of 1; a hot chain usually means a step too
    large for the gradient noise or the curvature, a cold or hot one a chain that has
    not converged.
    """
    ratio = np.asarray(kinetic, dtype=float) / np.asarray(expected, dtype=float)
    if ratio.ndim != 2 or ratio.shape[1] < 40 or not np.all(np.isfinite(ratio)):
        return None
    n = ratio.shape[1] // 20
    batches = ratio[:, : 20 * n].reshape(ratio.shape[0], 20, n).mean(-1).ravel()
    mean = float(ratio.mean())
    se = float(batches.std(ddof=1) / np.sqrt(batches.size))
    if abs(mean - 1.0) <= level_z * se + HEATING_TOLERANCE:
        return None
    return kinetic_message(mean, se, dim)


#: The least time, in the posterior's own unit (unit-frequency coordinates), a sampling draw
#: should cover: below it a chain needs more than ``1 / SLOW_DRAW`` draws to move one
#: posterior scale, and the kernels warn at the first sampling draw.  The nominal step
#: covers ``WHITENED_STEP · num_steps`` (2.5 with the defaults).
SLOW_DRAW = 0.5


#: The most integrator steps a draw takes with ``trajectory_length`` (as NUTS's 2¹⁰ leapfrog steps).
MAX_STEPS = 1024


def steps_per_draw(cfg, xp, step_size):
    """The draw's integrator steps: ``num_steps``, or with ``trajectory_length`` the
    ``⌈trajectory_length / ε⌉`` steps (1 to :data:`MAX_STEPS`) of the draw's step ε
    (a Python int, or a backend integer under a trace)."""
    if cfg.trajectory_length is None:
        return cfg.num_steps
    n = xp.ceil(cfg.trajectory_length / step_size)
    return xp.clip(n, 1, MAX_STEPS)


def draw_time(cfg, step_size, xp=np):
    """The time a draw of :func:`steps_per_draw` steps of ``step_size`` covers in the
    posterior's own unit, once the warmup has set the mass to the curvature (a
    coordinate's frequency is then ``1/√α``)."""
    return step_size * steps_per_draw(cfg, xp, step_size) / cfg.boost**0.5


def slow_now(cfg, num_warmup: int, step_size, sampling_count, xp=np):
    """Whether the kernels warn (:func:`warn_slow`) after a kept sample: the first sampling
    draw (``sampling_count`` 1) of a run whose warmup adapted the step and the mass, when a
    draw covers less than :data:`SLOW_DRAW`.  Python numbers or backend arrays alike."""
    watched = bool(cfg.adapt_step_size and cfg.adapt_mass_matrix and num_warmup > 0)
    return (sampling_count == 1) & (draw_time(cfg, step_size, xp) < SLOW_DRAW) & watched


def warn_slow(cfg, step_size: float, chain=None) -> None:
    """The warning of :func:`slow_now` (:class:`~ppl_kernels.config.SlowMixingWarning`)."""
    import math
    import warnings

    from .config import SlowMixingWarning

    unit = step_size / cfg.boost**0.5
    time = float(draw_time(cfg, step_size))
    who = "a chain" if chain is None else f"chain {chain}"
    steps = int(steps_per_draw(cfg, np, step_size))
    warnings.warn(
        f"{who}: the warmup adapted the step to {step_size:.3g}, {unit:.2g} of the posterior's own time unit, so a draw "
        f"of {steps} steps covers {time:.2g} of it and the chain needs about {max(1, round(1 / time))} draws to "
        "move one posterior scale: expect a small ESS for the draws asked.  The step is what the minibatch-gradient noise "
        f"(or the curvature) allows; raise num_steps (about {math.ceil(1 / unit)} for one unit a draw), or give "
        f"trajectory_length={cfg.boost**0.5:.3g} (the steps a draw takes follow the step), or raise the plate's "
        "subsample_size", SlowMixingWarning, stacklevel=2)


def refreshes(plan: AdaptPlan, k):
    """Whether warmup draw ``k`` starts from a fresh momentum ``N(0, α T M)``: until the
    first mass window ends.  Until then the mass is the given one, often far from the
    curvature, and the friction ``2M`` that goes with it far too weak to shed the energy a
    chain gains falling towards the typical set.  Later draws keep their momentum: the
    minibatch noise a draw adds to it is cancelled by the rest of the epoch's, which a
    refresh would throw away while the part already in θ stays (θ would heat up)."""
    return k < plan.refresh_draws


def adapts(plan: AdaptPlan) -> bool:
    """Whether anything adapts (else the kernels use their fixed coefficients)."""
    return plan.adapt_step or plan.adapt_mass


def update(plan: AdaptPlan, ops: Ops, ad: AdaptState, k, z, eps, diverging, curvature, grad_difference=None):
    """The adaptation after warmup draw ``k`` (``k < plan.num_draws``).

    ``z`` is the draw's flat θ, ``eps`` its step, ``diverging`` whether it diverged,
    ``curvature`` :func:`measure`'s pair (probe, score) at ``z`` and ``grad_difference``
    (models with a subsampled plate) ``g_a − g_b``, two minibatch gradients at ``z``.
    Returns ``(state, momentum factor)``: the momentum is multiplied by the factor
    (``√(M_new / M_old)`` after a mass update, keeping its temperature).

    At the end of a mass window the mass is the window's mean probe, kept at least
    :data:`SPREAD_FLOOR` times the smaller of ``T / Var θ`` and the mean score over ``T``.
    Under the posterior all three agree (the score by parts: ``E[(∂ᵢŨ)²] = T E[∂ᵢ²Ũ]``),
    and the floor leaves the probe alone.  The probe alone can collapse in an exponential
    tail (a bounded site piled up at its bound, seen through its logit): its curvature
    falls off with the distance while the force stays, so a chain thrown out there
    measures a small mass, crosses the bulk into the wall beyond it, and each window
    gives a smaller mass than the last.  Such a chain stays put while a force pushes on
    it: a small spread and a large score, the one case where both terms are large.  A
    chain that has not explored a wide coordinate has a small score, one falling towards
    the typical set a large spread: the floor stays low and the probe decides.
    """
    xp = ops.xp
    where = xp.where
    ok = ~xp.asarray(diverging)
    mass_end = xp.asarray(plan.mass_end)[k]
    # the initial buffer's draws, far from the typical set, are not the posterior's
    listening = xp.asarray(plan.in_window)[k] if plan.adapt_mass else ok
    w = where(ok & listening, 1.0, 0.0)

    step_ratio, noise_n, noise_sum, noise_prev = ad.step_ratio, ad.noise_n, ad.noise_sum, ad.noise_prev
    if plan.adapt_mass:
        probe, score = (where(ok, c, 0.0) for c in curvature)
    if plan.adapt_step:
        calm = ok
        if plan.adapt_mass:
            reach = eps * xp.sqrt((probe / (plan.boost * ad.mass)).max())
            calm = calm & ~(reach > STABLE_REACH)
        step_ratio = where(calm, step_ratio, 0.5 * step_ratio)
        if grad_difference is not None:
            noise_n = noise_n + w
            noise_sum = noise_sum + w * 0.5 * where(ok, grad_difference, 0.0) ** 2

    mass, friction, nominal, count, mean, m2 = ad.mass, ad.friction, ad.nominal, ad.count, ad.mean, ad.m2
    curv, score_sum = ad.curvature, ad.score
    factor = 0.0 * ad.mass + 1.0
    mass_trace = ad.mass_trace
    if plan.adapt_mass:
        count = count + w
        delta = z - mean
        mean = mean + w * delta / _maximum(xp, count, 1.0)
        m2 = m2 + w * delta * (z - mean)
        curv = curv + w * probe
        score_sum = score_sum + w * score
        n = _maximum(xp, count, 2.0)
        new_mass = curv / n
        # a non-convex coordinate (mean curvature not positive): T / Var θ, as Stan's
        fallback = plan.noise_temperature / _maximum(xp, m2 / (n - 1.0), 1e-300)
        new_mass = where(new_mass > 0.0, new_mass, fallback)
        new_mass = _maximum(xp, new_mass, SPREAD_FLOOR * _minimum(xp, fallback, score_sum / (n * plan.noise_temperature)))
        new_mass = where(xp.isfinite(new_mass) & (new_mass > 0.0), new_mass, ad.mass)
        at_end = mass_end & (count > 2.0)
        mass = where(at_end, new_mass, ad.mass)
        friction = where(at_end, 2.0 * plan.friction_factor * mass, ad.friction)
        factor = where(at_end, xp.sqrt(mass / ad.mass), 1.0)
        cap = MAX_FRICTION_STEP / (plan.friction_scale * friction / (plan.boost * mass)).max()
        if plan.adapt_step:  # (else the given step stays, in whatever units the mass now makes)
            nominal = where(at_end, _minimum(xp, xp.asarray(WHITENED_STEP, dtype=z.dtype), cap) / plan.step_max,
                            nominal)
            step_ratio = where(at_end, 1.0, step_ratio)
        count, mean, m2, curv, score_sum = (where(at_end, 0.0 * v, v) for v in (count, mean, m2, curv, score_sum))
        # the noise is re-estimated in each window, starting from the last window's estimate
        estimate = noise_estimate(xp, ad._replace(noise_n=noise_n, noise_sum=noise_sum))
        noise_prev = where(at_end & (noise_n > 0.0), estimate, noise_prev)
        noise_n, noise_sum = where(at_end, 0.0, noise_n), where(at_end, 0.0 * noise_sum, noise_sum)
        index = xp.asarray(np.cumsum(plan.mass_end))[k]  # row 0 holds the initial mass
        mass_trace = where(at_end, ops.set_at(ad.mass_trace, index, mass), ad.mass_trace)
    step_trace = ops.set_at(ad.step_trace, k, eps)
    new = ad._replace(step_ratio=step_ratio, nominal=nominal, mass=mass, friction=friction, count=count, mean=mean,
                      m2=m2, curvature=curv, score=score_sum, noise_n=noise_n, noise_sum=noise_sum, noise_prev=noise_prev,
                      step_trace=step_trace, mass_trace=mass_trace)
    return new, factor
