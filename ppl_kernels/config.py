"""Argument validation and defaults shared by the Pyro and NumPyro kernels.

Both kernels build one :class:`SGHMCConfig` from their keyword arguments, so
the two backends accept exactly the same values and raise exactly the same
errors, at construction time (or, for per-site values that need the model,
at setup time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from numbers import Real
from typing import Any, Mapping, NamedTuple

import numpy as np

from . import dynamics as _dyn
from . import schedules as _sched

__all__ = [
    "SGHMCConfig",
    "KernelArguments",
    "TEMPERINGS",
    "STAT_FIELDS",
    "positive_int",
    "check_flag",
    "resolve_site_values",
    "check_latent_site",
    "SubsamplePlate",
    "Minibatches",
    "DrawNoise",
    "nonfinite_start_error",
    "FROZEN_RUN",
    "FrozenChainWarning",
    "frozen_advice",
    "frozen_now",
    "warn_frozen_chain",
    "unindexed_plate_error",
    "other_indices",
]

#: The two tempering modes.
TEMPERINGS = ("posterior", "likelihood")

#: Per-draw statistics, in recording order, with their dtypes.  Both backends
#: produce exactly these names (the ``sample_stats`` group of the ArviZ export).
STAT_FIELDS: dict[str, str] = {
    "lp": "float",
    "theta_sq_norm": "float",
    "theta_dot_r": "float",
    "r_sq_norm": "float",
    "kinetic_temperature": "float",
    "configurational_temperature": "float",
    "thermostat": "float",
    "step_size": "float",
    "resample_scale": "float",
    "phase": "int",
    "diverging": "bool",
}


class SubsamplePlate(NamedTuple):
    """A plate that draws a minibatch: ``subsample_size`` of its ``size`` indices."""

    name: str
    size: int
    subsample_size: int
    fed: bool = False  # a Minibatches' epochs, not a plate of the model


def _take_rows(x, idx, size):
    if isinstance(x, (tuple, list)):
        return type(x)(_take_rows(v, idx, size) for v in x)
    shape = getattr(x, "shape", None)
    return x[idx] if shape is not None and len(shape) > 0 and shape[0] == size else x


class Minibatches:
    """Minibatches handed to a model that takes its data batch from outside.

    For models whose plate does not draw its own subsample: a Pyro plate given
    ``subsample=`` (TyXe's likelihoods), or a NumPyro ``plate(N, subsample_size=len(x))``
    over data already batched.  At every integrator step the kernel draws the
    minibatch's indices as it does for a subsampled plate (epochs of a random
    permutation, every point once per epoch) and calls the model with
    ``select(indices, args, kwargs)`` in place of the run's arguments.  The model must
    scale its likelihood by ``size / batch_size`` itself, as those plates do.

    Parameters
    ----------
    size : int
        Rows of the full data set (N).
    batch_size : int
        Rows per minibatch (B), at most ``size``.
    select : callable, optional
        ``select(indices, args, kwargs) -> (args, kwargs)``: the model's arguments for
        the minibatch ``indices`` (an integer array of B indices in the backend's array
        type; traced under ``jit``, so array operations only).  By default every
        argument (also inside tuples and lists) whose leading dimension is ``size``
        is indexed by ``indices`` and the others are passed as they are.
    name : str
        The name of the minibatch's epochs (it must not be a plate of the model).

    Examples
    --------
    >>> SGHMC(model, minibatches=Minibatches(size=len(x), batch_size=100))  # doctest: +SKIP
    """

    def __init__(self, size, batch_size, select=None, name="minibatches"):
        self.size = positive_int("minibatches.size", size)
        self.batch_size = positive_int("minibatches.batch_size", batch_size)
        if self.batch_size > self.size:
            raise ValueError(f"minibatches.batch_size must be at most minibatches.size={size!r}, got {batch_size!r}")
        if select is not None and not callable(select):
            raise ValueError(f"minibatches.select must be a function (indices, args, kwargs) -> (args, kwargs), "
                             f"got {select!r}")
        if not isinstance(name, str) or not name:
            raise ValueError(f"minibatches.name must be a non-empty string, got {name!r}")
        self.select, self.name = select, name

    def __repr__(self):
        return f"Minibatches(size={self.size}, batch_size={self.batch_size}, select={self.select!r}, name={self.name!r})"

    @property
    def plate(self) -> SubsamplePlate:
        """The minibatch as the epochs see it: a plate of ``size`` indices, ``batch_size`` at a time."""
        return SubsamplePlate(self.name, self.size, self.batch_size, fed=True)

    def arguments(self, indices, args, kwargs):
        """The model's arguments for the minibatch ``indices``."""
        if self.select is not None:
            args, kwargs = self.select(indices, tuple(args), dict(kwargs))
            return tuple(args), dict(kwargs)
        return _take_rows(tuple(args), indices, self.size), {k: _take_rows(v, indices, self.size)
                                                               for k, v in kwargs.items()}

    def potential(self, parts, model_plates):
        """``parts(z, indices, args, kwargs)`` called at the minibatch's arguments; raises
        if the name is one of the model's subsampled plates."""
        if any(p.name == self.name for p in model_plates):
            raise ValueError(f"minibatches.name {self.name!r} is a subsampled plate of the model: choose another name")
        name = self.name

        def fed(z, indices, model_args, model_kwargs):
            args, kwargs = self.arguments(indices[name], model_args, model_kwargs)
            return parts(z, {k: v for k, v in indices.items() if k != name}, args, kwargs)

        return fed


class DrawNoise(NamedTuple):
    """Random inputs of one draw, given instead of drawn (tests compare backends with it).

    Each field may be ``None`` (drawn from the state's random state):

    - **resample** - standard normal ξ of the momentum resampling, per site;
    - **steps** - standard normal ξ of every integrator step, per site with a
      leading ``num_steps`` axis;
    - **renew** - per plate, ``(stride index, offset)`` arrays of length
      ``num_steps`` for the epochs that may start during the draw;
    - **probe** - per site, the Rademacher ``v`` (±1) of the warmup's curvature probe.
    """

    resample: Any = None
    steps: Any = None
    renew: Any = None
    probe: Any = None


def positive_int(name: str, value: Any) -> int:
    """``value`` as an ``int`` if it is a positive integer (not a bool), else ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def check_flag(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``, else ``ValueError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def _real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    return float(value)


def _positive(name: str, value: Any) -> float:
    v = _real(name, value)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    return v


def _positive_values(name: str, value: Any):
    """A float, or a mapping site -> float/array, all entries finite and > 0."""
    if isinstance(value, Mapping):
        out = {}
        for site, v in value.items():
            try:
                arr = np.asarray(v, dtype=float)
            except (TypeError, ValueError):  # numpy's message names neither the argument nor the site
                raise ValueError(f"{name}[{site!r}] must be a positive number or array, got {v!r}") from None
            if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
                raise ValueError(f"{name}[{site!r}] must be finite and > 0, got {v!r}")
            out[site] = float(arr) if arr.ndim == 0 else arr
        return out
    return _positive(name, value)


def _schedule(name: str, value: Any, *, strict: bool) -> _sched.Schedule:
    if isinstance(value, _sched.Schedule):
        s = value
    else:
        _real(name, value)
        s = _sched.constant(value)
    lo = _sched.schedule_min(s)
    if lo < 0 or (strict and lo == 0):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be {op} 0 at every draw, got {value!r}")
    return s


@dataclass(frozen=True)
class SGHMCConfig:
    """Validated kernel arguments (their meaning: :class:`ppl_kernels.pyro.SGHMC`).

    Raises
    ------
    ValueError
        Naming the offending argument and its value.
    """

    step_size: Any = 0.01
    num_steps: int = 10
    temperature: float = 1.0
    tempering: str = "posterior"
    mass: Any = 1.0
    friction: Any = 1.0
    boost: float = 1.0
    friction_scale: float = 1.0
    resample_scale: Any = None
    explore_noise: bool = True
    thinning: int = 1
    adapt_step_size: bool = True
    adapt_mass_matrix: bool = True
    integrator: str = "euler"
    trajectory_length: Any = None

    def __post_init__(self):
        def set_(name, value):  # the dataclass is frozen
            object.__setattr__(self, name, value)

        set_("step_size", _schedule("step_size", self.step_size, strict=True))
        set_("num_steps", positive_int("num_steps", self.num_steps))
        if self.trajectory_length is not None:
            set_("trajectory_length", _positive("trajectory_length", self.trajectory_length))
        set_("thinning", positive_int("thinning", self.thinning))
        t = _real("temperature", self.temperature)
        if t < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature!r}")
        if self.tempering not in TEMPERINGS:
            raise ValueError(f"tempering must be one of {TEMPERINGS}, got {self.tempering!r}")
        if self.tempering == "likelihood" and t == 0:
            raise ValueError("temperature must be > 0 with tempering='likelihood' (the likelihood is divided by T), got 0")
        set_("temperature", t)
        set_("mass", _positive_values("mass", self.mass))
        set_("friction", _positive_values("friction", self.friction))
        set_("boost", _positive("boost", self.boost))
        set_("friction_scale", _positive("friction_scale", self.friction_scale))
        if self.resample_scale is not None:
            set_("resample_scale", _schedule("resample_scale", self.resample_scale, strict=False))
        set_("explore_noise", check_flag("explore_noise", self.explore_noise))
        set_("adapt_step_size", check_flag("adapt_step_size", self.adapt_step_size))
        set_("adapt_mass_matrix", check_flag("adapt_mass_matrix", self.adapt_mass_matrix))
        if self.integrator not in _dyn.INTEGRATORS:
            raise ValueError(f"integrator must be one of {_dyn.INTEGRATORS}, got {self.integrator!r}")
        if self.integrator == "sgnht" and t == 0:
            raise ValueError("temperature must be > 0 with integrator='sgnht' (its thermostat holds the kinetic "
                             "temperature at T), got 0")
        if self.integrator == "euler":  # the splittings' friction step is exact at any step
            self._check_friction_step()

    def _check_friction_step(self):
        """The friction step must not overshoot: ``ε γC / (αM) < 2`` on every coordinate
        (else the momentum's damping factor ``1 - a`` flips sign and grows), checked here
        so that a sweep fails before it samples anything.  Per-site arrays are compared
        site by site (their broadcast when both are given; else the largest friction over
        the smallest mass, a bound)."""
        eps = _sched.schedule_max(self.step_size)
        sites = set(self.mass) if isinstance(self.mass, Mapping) else set()
        sites |= set(self.friction) if isinstance(self.friction, Mapping) else set()
        worst = 0.0
        for site in sites or {None}:
            m = self.mass.get(site, 1.0) if isinstance(self.mass, Mapping) else self.mass
            c = self.friction.get(site, 1.0) if isinstance(self.friction, Mapping) else self.friction
            if self.adapt_mass_matrix:  # C = 2 · friction · M: the ratio is the factor's
                m = 0.5
            try:
                ratio = np.max(np.asarray(c, float) / np.asarray(m, float))
            except ValueError:  # shapes that broadcast only to the site's shape, unknown here
                ratio = np.max(c) / np.min(m)
            worst = max(worst, float(ratio))
        a = eps * self.friction_scale * worst / self.boost
        if a >= 2:
            raise ValueError(
                f"step_size * friction_scale * friction / (boost * mass) must be < 2 for a stable integrator, "
                f"got {a:.4g} (step_size={eps!r}, friction_scale={self.friction_scale!r}, boost={self.boost!r})"
            )

    # -- quantities the dynamics need -------------------------------------------------
    @property
    def noise_temperature(self) -> float:
        """Temperature of the injected noise: T, or 1 when only the likelihood is tempered."""
        return self.temperature if self.tempering == "posterior" else 1.0

    @property
    def likelihood_weight(self) -> float:
        """Factor on the log-likelihood inside the dynamics' potential."""
        return 1.0 if self.tempering == "posterior" else 1.0 / self.temperature

    def draw_settings(self, k, xp=None):
        """Step size, resampling scale, phase and noise temperature of draw ``k``.

        ``xp`` is the array namespace (``None``: Python scalars, as the Pyro
        kernel evaluates them; ``jax.numpy`` inside a NumPyro program).  The
        phase is "explore" if either schedule explores; no noise is injected
        while exploring with ``explore_noise=False``.  ``beta`` is NaN without
        resampling.

        Returns
        -------
        (step_size, beta, phase, noise_temperature)
        """
        where = _sched._MATH.where if xp is None else xp.where
        eps, phase = self.step_size(k, xp)
        beta = math.nan
        if self.resample_scale is not None:
            beta, phase_b = self.resample_scale(k, xp)
            phase = where(phase_b > phase, phase_b, phase)
        noise_t = self.noise_temperature
        if not self.explore_noise:
            noise_t = where(phase == _sched.EXPLORE, 0.0, noise_t)
        return eps, beta, phase, noise_t

    @property
    def checks_kinetic(self) -> bool:
        """Whether the kinetic temperature of the sampling phase is checked against its
        expected value: not when the momentum is cooled on purpose (``resample_scale``), the
        schedule explores without noise, or T = 0."""
        return self.resample_scale is None and self.explore_noise and self.noise_temperature != 0.0

    @property
    def injects_noise(self) -> bool:
        """Whether any draw injects noise (false at T = 0): the kernels draw no ξ otherwise."""
        return self.noise_temperature != 0.0

    def to_json(self) -> str:
        """Every argument as JSON (schedules as :meth:`~ppl_kernels.schedules.Schedule.to_dict`,
        arrays as nested lists); :meth:`from_json` reads it back."""
        import json

        def fmt(v):
            if isinstance(v, _sched.Schedule):
                return v.to_dict()
            if isinstance(v, Mapping):
                return {k: np.asarray(x).tolist() for k, x in v.items()}
            return v

        return json.dumps({f.name: fmt(getattr(self, f.name)) for f in fields(self)})

    @classmethod
    def from_json(cls, text: str) -> "SGHMCConfig":
        """The config that :meth:`to_json` wrote (fields it does not know are ignored:
        a file written by a newer version still reads)."""
        import json

        d = json.loads(text)
        known = {f.name for f in fields(cls)}
        for name in ("step_size", "resample_scale"):
            if isinstance(d.get(name), dict):
                d[name] = _sched.from_dict(d[name])
        return cls(**{k: v for k, v in d.items() if k in known})

    def to_attrs(self) -> dict[str, Any]:
        """Every argument in a readable, NetCDF-friendly form (strings and numbers);
        :meth:`to_json` is the machine-readable one."""
        return {f.name: _attr(getattr(self, f.name)) for f in fields(self)}


def _attr(v):
    """One config value as a NetCDF attribute: numbers stay, the rest become readable strings."""
    if isinstance(v, _sched.Schedule):
        return str(v)
    if isinstance(v, Mapping):
        return "{" + ", ".join(f"{k}: {np.asarray(x).tolist()}" for k, x in v.items()) + "}"
    if isinstance(v, bool):
        return int(v)  # NetCDF has no boolean attributes
    return "None" if v is None else v


def nonfinite_start_error(sites: list) -> ValueError:
    """The error both kernels raise at setup when the potential or its gradient is not
    finite at the initial point (NUTS's "cannot find valid initial parameters")."""
    where = f" (non-finite gradient of {sorted(sites)})" if sites else ""
    return ValueError(
        f"the potential energy or its gradient is not finite at the initial point{where}: check the model's data "
        "for NaN or inf, and that init_strategy / initial values lie inside the supports"
    )


#: Kept draws in a row that all diverged, after which a chain counts as frozen: every
#: diverging draw restarts from the draw's start, so the chain stands still.
FROZEN_RUN = 20


class TemperatureWarning(RuntimeWarning):
    """A sampling phase whose kinetic temperature misses its expected value: the chain does
    not sample the temperature that was asked for."""


class SlowMixingWarning(RuntimeWarning):
    """The adapted step makes a sampling draw cover a small part of the posterior's own time
    scale: the chain mixes slowly, and a run of the planned length has a small ESS."""


class FrozenChainWarning(RuntimeWarning):
    """A chain diverged on :data:`FROZEN_RUN` kept draws in a row: it stands still, and a
    summary of it would show a zero-width interval."""


def frozen_advice() -> str:
    """What to do about a frozen chain (the tail of both kernels' and the runner's message)."""
    return ("the step is too large for the posterior's curvature; give a smaller step_size, or let the warmup "
            "adapt it (adapt_step_size=True, num_warmup > 0)")


def frozen_now(run, sampling_count):
    """Whether a kept sample completes :data:`FROZEN_RUN` diverging sampling draws in a row
    (true once per such stretch): ``run`` is the state's ``divergence_run``, which may have
    begun in warmup, and ``sampling_count`` the kept sampling draws so far, this one
    included.  Python ints or backend arrays alike."""
    return (run >= FROZEN_RUN) & (sampling_count >= FROZEN_RUN) & ((run == FROZEN_RUN) | (sampling_count == FROZEN_RUN))


def warn_frozen_chain(draw: int, step_size: float, chain: int | None = None) -> None:
    """The warning both kernels give while a run goes when :func:`frozen_now` holds at kept
    draw ``draw`` (counted from the first warmup draw)."""
    import warnings

    who = "a chain" if chain is None else f"chain {chain}"
    warnings.warn(f"{who} froze: the {FROZEN_RUN} kept draws up to draw {draw} (counted from the first warmup draw) "
                  f"all diverged at step_size {step_size:.3g}; " + frozen_advice(), FrozenChainWarning, stacklevel=2)


def unindexed_plate_error(plate: str, fed: bool = False) -> ValueError:
    """The error both kernels raise at setup when a subsampled plate's likelihood does not
    change with the plate's indices (data sliced as ``X[:B]`` instead of ``X[idx]``), or a
    :class:`Minibatches`' likelihood with its minibatch (``fed``)."""
    if fed:
        return ValueError(
            f"the model's log density does not change with the minibatch that minibatches={plate!r} hands it: "
            "its select must return the minibatch's rows of the data arguments (by default, every argument whose "
            "leading dimension is minibatches.size is indexed)"
        )
    return ValueError(
        f"the model's log density does not change with the minibatch indices of the subsampled plate {plate!r}: "
        f"index the data with the plate's indices (`with plate({plate!r}, N, subsample_size=B) as idx: ... y[idx]`)"
    )


def other_indices(size: int, subsample_size: int) -> list:
    """A minibatch unlike the first ``subsample_size`` indices (the last ones, reversed), to
    check at setup that the model reads its data through the plate's indices."""
    return list(range(size - 1, size - subsample_size - 1, -1))


def resolve_site_values(name: str, spec, sites: Mapping[str, tuple]) -> dict[str, Any]:
    """Expand a float or a per-site mapping into one entry per latent site.

    Sites missing from a mapping get 1.0; unknown sites and arrays that do not
    broadcast to the site's unconstrained shape raise ``ValueError``.
    """
    if not isinstance(spec, Mapping):
        return {s: spec for s in sites}
    unknown = sorted(set(spec) - set(sites))
    if unknown:
        raise ValueError(f"{name} names unknown latent sites {unknown}; latent sites are {sorted(sites)}")
    out = {}
    for s, shape in sites.items():
        v = spec.get(s, 1.0)
        if np.ndim(v) and not _broadcasts_to(np.shape(v), tuple(shape)):
            raise ValueError(f"{name}[{s!r}] has shape {np.shape(v)}, which does not broadcast to the site shape {tuple(shape)}")
        out[s] = v
    return out


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    try:
        return np.broadcast_shapes(shape, target) == target
    except ValueError:  # numpy's own message names neither the argument nor the site
        return False


def check_latent_site(name: str, is_discrete: bool, in_subsampled_plate: str | None, enumerate=None,
                      enumerable: bool = False) -> bool:
    """Whether a latent site is summed out (``True``: discrete, as the hosts' NUTS sums it)
    or moved by the kernel (``False``); raise for a site the kernel can do neither with.

    ``enumerate``: the site's ``infer["enumerate"]``; ``enumerable``: its distribution
    has a finite support to sum over (``has_enumerate_support``)."""
    if is_discrete:
        if not enumerable:
            raise ValueError(
                f"latent site {name!r} is discrete with no finite support to sum over; SGHMC moves continuous sites and "
                "sums out discrete ones whose distribution enumerates its support (Bernoulli, Categorical, ...): "
                "sum it out of the model by hand or give it a bounded distribution")
        if enumerate not in (None, "parallel"):
            raise ValueError(
                f"latent site {name!r} is marked infer={{'enumerate': {enumerate!r}}}; the kernel sums discrete sites out "
                "in parallel only: mark it 'parallel' or leave it unmarked")
        return True
    if in_subsampled_plate is not None:
        raise ValueError(
            f"latent site {name!r} lies inside the subsampled plate {in_subsampled_plate!r}; "
            "its shape would change with every minibatch (local latents are not supported)"
        )
    return False


#: The parameter section shared by both kernels' docstrings.
_PARAMETERS_DOC = """\
    model : callable, optional
        {host} model.  Either ``model`` or ``potential_fn`` is required.
    potential_fn : callable, optional
        ``z -> U(z)`` on a dict of unconstrained values (as for
        :class:`{hmc}`); {init_params}.
    step_size : float or Schedule
        Integrator step ε: used as given with ``adapt_step_size=False``, else
        the step of the warmup's first draws, which the warmup then replaces
        by its adapted value (a schedule keeps its shape and is rescaled).
    num_steps : int
        Integrator steps per draw (without ``trajectory_length``).
    trajectory_length : float, optional
        As for :class:`{hmc}`: the length ``ε · n`` of a draw's trajectory, so
        that a draw takes ``n = ⌈trajectory_length / ε⌉`` steps of the step ε it
        runs with (at most ``adaptation.MAX_STEPS``), whatever the warmup makes
        of ε.  With the adapted mass the posterior's own time unit is
        ``√boost``: ``trajectory_length=1`` moves a chain about one posterior
        scale a draw, also where the minibatch noise keeps the step small.
        ``None`` (the default): ``num_steps`` steps a draw.
    temperature : float
        T ≥ 0; the target is ``exp(-U / T)``.  ``T = 0`` is SGD with momentum.
    tempering : {{"posterior", "likelihood"}}
        Temper the whole potential (noise scaled by T) or only the likelihood.
    mass, friction : float or dict
        Base mass M and friction: scalars or per-site floats/arrays (diagonal).
        ``mass`` is the starting value of the adapted mass.  With
        ``adapt_mass_matrix=True`` ``friction`` is dimensionless, the friction
        relative to critical damping, ``C = 2 · friction · M`` (1: critical);
        with ``adapt_mass_matrix=False`` it is the friction C itself.
    boost : float
        α; the mass becomes ``α M``.
    friction_scale : float
        γ; the friction becomes ``γ C``.
    resample_scale : float, Schedule or None
        β; at each draw the momentum is redrawn from ``N(0, β M)`` followed by a
        half kick.  ``None`` never resamples.  Only ``β = α T`` keeps the target
        exact; smaller β cools the chain (the norm-adjusting heuristic).
    explore_noise : bool
        Whether to inject noise during a schedule's exploration phase.
    integrator : {{"euler", "baoab", "sgnht"}}
        ``"euler"`` (the default): drift, then a kick with the friction and the
        noise (Chen et al. 2014, Algorithm 2); its kinetic temperature is
        ``T / (1 − a/2)``, ``a = ε C' / M'``.  ``"baoab"``: half kick, half drift,
        the exact friction-and-noise step, half drift, half kick, one gradient
        per step; on a Gaussian its θ-marginal is exact at any stable step, and
        no friction step limit applies.  ``"sgnht"``: the same splitting with a
        Nosé–Hoover thermostat per coordinate in place of the fixed friction
        rate (B A D O D A B), which adapts until the kinetic temperature is T
        and so absorbs the unknown minibatch noise; needs T > 0; its mean rate
        is the ``thermostat`` statistic (``docs/theory.rst``).
    adapt_step_size : bool
        Adapt ε during warmup (NUTS's name): a fixed step in whitened units,
        halved by divergences, capped so that the measured minibatch-gradient
        noise heats Var θ by at most 2 % (``docs/warmup.rst``).
    adapt_mass_matrix : bool
        Adapt a diagonal mass during warmup (NUTS's name): the potential's
        mean curvature per coordinate over Stan's doubling windows; the
        friction follows it.  The adapted values are read with
        :meth:`adapted` and exported to ArviZ.  At ``T = 0`` nothing adapts.
    thinning : int
        Draws per kept sample: each :meth:`sample` call runs ``thinning``
        consecutive draws (the schedules advance per draw) and keeps the last;
        its statistics are the last draw's, except ``diverging``, which is true
        if any of the ``thinning`` draws diverged.  Warmup counts kept samples,
        as the host's ``MCMC`` does, so it runs ``warmup * thinning`` draws.
        (Pyro's ``MCMC`` has no thinning of its own.)
    init_strategy : callable, optional
        A {host} init strategy, e.g. ``init_to_median``; default
        ``init_to_uniform``, as for :class:`{nuts}`.
    minibatches : Minibatches, optional
        Minibatches for a model that takes its data batch from outside
        (:class:`ppl_kernels.config.Minibatches`): every integrator step calls the
        model at the arguments of a minibatch that the kernel draws.
"""

_CLASS_DOC = """Tempered, norm-adjusting stochastic-gradient HMC for {host}.

    A drop-in for :class:`{nuts}` that also runs models with
    ``{plate}(..., subsample_size=B)``: every integrator step sees a fresh
    minibatch (drawn without replacement within an epoch) and the likelihood is
    scaled by ``N / B``.  The dynamics, with ``M' = boost · mass`` and
    ``C' = friction_scale · friction``, are

    .. math::

        d\\theta = M'^{{-1}} r\\,dt, \\qquad
        dr = (-\\nabla \\tilde U(\\theta) - C' M'^{{-1}} r)\\,dt + \\mathcal N(0, 2 C' T\\,dt),

    whose stationary law is :math:`\\propto \\exp(-U(\\theta)/T)`
    (``docs/theory.rst``).  Discrete latent sites with a finite support are
    summed out of the potential, as NUTS sums them, also inside a subsampled
    plate (:mod:`ppl_kernels.enumeration`).  The kernel is a thin shell over the
    pure functions of :mod:`{package}.integrator`.

    Parameters
    ----------
{parameters}{extra}
    Attributes
    ----------
    config : SGHMCConfig
        The validated arguments.
    plates : list
        The model's subsampled plates ``(name, size, subsample_size)``, known after setup.
    transforms : dict
        Constrained → unconstrained bijections per latent site, known after setup
        (Pyro's ``MCMC`` reads them to constrain the draws).
    rng_seed : int or None
        The run's seed, for the ArviZ attrs (:func:`ppl_kernels.runner.sample` sets it).

    Examples
    --------
{example}
"""


#: NUTS/HMC arguments that have no meaning for SGHMC, and what to use instead.
HOST_ALTERNATIVES = {
    "full_mass": "SGHMC's mass is diagonal: adapt_mass_matrix=True adapts it per coordinate from the "
                 "curvature, or give a fixed diagonal as mass= (per site or one value)",
    "dense_mass": "SGHMC's mass is diagonal: adapt_mass_matrix=True adapts it per coordinate from the "
                  "curvature, or give a fixed diagonal as mass= (per site or one value)",
    "inverse_mass_matrix": "give the mass itself as mass= (per site or one value), or let adapt_mass_matrix adapt it",
    "target_accept_prob": "SGHMC has no accept step: the warmup (adapt_step_size=True) sets the step from the "
                          "curvature and the gradient noise",
    "find_heuristic_step_size": "the warmup (adapt_step_size=True) sets the step from the curvature and the "
                                "gradient noise",
    "max_tree_depth": "SGHMC builds no tree: num_steps sets the integrator steps per draw",
    "kinetic_fn": "SGHMC's kinetic energy is the Gaussian one of mass=",
}


class KernelArguments:
    """The constructor both kernels share: one signature, one validation, one docstring.

    A backend kernel subclasses this and its host's ``MCMCKernel``, and lists its
    host-only keywords (e.g. Pyro's ``jit_compile``) with their defaults in
    ``host_options``; they become attributes of the same name.  The class
    docstring is :meth:`docstring`'s.
    """

    #: Backend-only keyword arguments and their defaults.
    host_options: dict = {}
    #: The host's ``init_to_uniform``, set by each backend.
    default_init_strategy = None

    def __init__(
        self,
        model=None,
        potential_fn=None,
        *,
        step_size=0.01,
        num_steps=10,
        temperature=1.0,
        tempering="posterior",
        mass=1.0,
        friction=1.0,
        boost=1.0,
        friction_scale=1.0,
        resample_scale=None,
        explore_noise=True,
        thinning=1,
        adapt_step_size=True,
        adapt_mass_matrix=True,
        integrator="euler",
        trajectory_length=None,
        init_strategy=None,
        minibatches=None,
        **host_options,
    ):
        if (model is None) == (potential_fn is None):
            raise ValueError("give exactly one of model and potential_fn")
        unknown = sorted(set(host_options) - set(self.host_options))
        for name in unknown:
            if name in HOST_ALTERNATIVES:
                raise TypeError(f"{type(self).__name__}() does not take {name}={host_options[name]!r} "
                                f"(an argument of NUTS/HMC): {HOST_ALTERNATIVES[name]}")
        if unknown:
            raise TypeError(f"{type(self).__name__}() got unexpected keyword arguments {unknown}")
        self.config = SGHMCConfig(
            step_size=step_size, num_steps=num_steps, temperature=temperature, tempering=tempering,
            mass=mass, friction=friction, boost=boost, friction_scale=friction_scale,
            resample_scale=resample_scale, explore_noise=explore_noise, thinning=thinning,
            adapt_step_size=adapt_step_size, adapt_mass_matrix=adapt_mass_matrix, integrator=integrator,
            trajectory_length=trajectory_length,
        )
        if potential_fn is not None and self.config.tempering == "likelihood":
            raise ValueError("tempering='likelihood' needs a model (a potential_fn has no separate likelihood)")
        if init_strategy is not None and not callable(init_strategy):
            raise ValueError(f"init_strategy must be an init strategy function such as init_to_median, got {init_strategy!r}")
        for name, default in self.host_options.items():
            value = host_options.get(name, default)
            if isinstance(default, bool):
                value = check_flag(name, value)
            setattr(self, name, value)
        self.model = model
        self.potential_fn = potential_fn
        self.init_strategy = init_strategy if init_strategy is not None else self.default_init_strategy
        if minibatches is not None and not isinstance(minibatches, Minibatches):
            raise ValueError(f"minibatches must be a ppl_kernels.Minibatches, got {minibatches!r}")
        if minibatches is not None and potential_fn is not None:
            raise ValueError("minibatches needs a model (a potential_fn takes no data arguments)")
        self.minibatches = minibatches
        self.rng_seed = None
        self.plates: list = []
        if "transforms" not in self.host_options:
            self.transforms: dict = {}

    def _fed(self, parts):
        """The potential and the step's plates with :class:`Minibatches`, if given: the
        minibatch's epochs join the model's subsampled plates."""
        if self.minibatches is None:
            return parts, list(self.plates)
        return self.minibatches.potential(parts, self.plates), [*self.plates, self.minibatches.plate]

    @property
    def step_size(self):
        """The given integrator step: a float for a constant step, else its schedule (the
        step a chain sampled with after its warmup is ``adapted(...)["step_size"]``)."""
        s = self.config.step_size
        return s.v if isinstance(s, _sched.Constant) else s

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        import inspect

        # One visible signature with the host-only keywords in place of ``**host_options``.
        params = list(inspect.signature(KernelArguments.__init__).parameters.values())[1:-1]
        params += [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v) for k, v in cls.host_options.items()]
        cls.__signature__ = inspect.Signature(params)

    @staticmethod
    def docstring(*, host, package, nuts, hmc, plate, init_params, extra, example) -> str:
        """The class docstring of a backend's kernel from its few host-specific parts."""
        params = _PARAMETERS_DOC.format(host=host, hmc=hmc, nuts=nuts, init_params=init_params)
        return _CLASS_DOC.format(host=host, nuts=nuts, plate=plate, package=package, parameters=params,
                                 extra=extra, example=example)
