"""Argument validation and defaults shared by the Pyro and NumPyro kernels.

Both kernels build one :class:`SGHMCConfig` from their keyword arguments, so
the two backends accept exactly the same values and raise exactly the same
errors, at construction time (or, for per-site values that need the model,
at setup time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from numbers import Real
from typing import Any, Mapping

import numpy as np

from . import schedules as _sched

__all__ = ["SGHMCConfig", "TEMPERINGS", "STAT_FIELDS", "resolve_site_values", "check_latent_site"]

#: The two tempering modes.
TEMPERINGS = ("posterior", "likelihood")

#: Per-draw statistics, in recording order, with their dtypes.  Both backends
#: produce exactly these names (see DESIGN.md, "Per-draw statistics").
STAT_FIELDS: dict[str, str] = {
    "lp": "float",
    "theta_sq_norm": "float",
    "theta_dot_r": "float",
    "r_sq_norm": "float",
    "kinetic_temperature": "float",
    "configurational_temperature": "float",
    "step_size": "float",
    "resample_scale": "float",
    "phase": "int",
    "diverging": "bool",
}


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
            arr = np.asarray(v, dtype=float)
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
    """Validated kernel arguments (see ``DESIGN.md`` for their meaning).

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

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731  (frozen dataclass)
        set_("step_size", _schedule("step_size", self.step_size, strict=True))
        if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, (int, np.integer)) or self.num_steps < 1:
            raise ValueError(f"num_steps must be a positive integer, got {self.num_steps!r}")
        set_("num_steps", int(self.num_steps))
        if isinstance(self.thinning, bool) or not isinstance(self.thinning, (int, np.integer)) or self.thinning < 1:
            raise ValueError(f"thinning must be a positive integer, got {self.thinning!r}")
        set_("thinning", int(self.thinning))
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
        if not isinstance(self.explore_noise, (bool, np.bool_)):
            raise ValueError(f"explore_noise must be True or False, got {self.explore_noise!r}")

    # -- quantities the dynamics need -------------------------------------------------
    @property
    def noise_temperature(self) -> float:
        """Temperature of the injected noise: T, or 1 when only the likelihood is tempered."""
        return self.temperature if self.tempering == "posterior" else 1.0

    @property
    def likelihood_weight(self) -> float:
        """Factor on the log-likelihood inside the dynamics' potential."""
        return 1.0 if self.tempering == "posterior" else 1.0 / self.temperature

    @property
    def schedules(self) -> tuple:
        return (self.step_size,) + (() if self.resample_scale is None else (self.resample_scale,))

    def to_attrs(self) -> dict[str, Any]:
        """Every argument in a readable, NetCDF-friendly form (strings and numbers)."""

        def fmt(v):
            if isinstance(v, _sched.Schedule):
                return str(v)
            if isinstance(v, Mapping):
                return "{" + ", ".join(f"{k}: {np.asarray(x).tolist()}" for k, x in v.items()) + "}"
            if v is None:
                return "None"
            return v

        return {
            "step_size": fmt(self.step_size),
            "num_steps": self.num_steps,
            "temperature": self.temperature,
            "tempering": self.tempering,
            "mass": fmt(self.mass),
            "friction": fmt(self.friction),
            "boost": self.boost,
            "friction_scale": self.friction_scale,
            "resample_scale": fmt(self.resample_scale),
            "explore_noise": int(bool(self.explore_noise)),
            "thinning": self.thinning,
        }


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


def check_latent_site(name: str, is_discrete: bool, in_subsampled_plate: str | None) -> None:
    """Reject latent sites SGHMC cannot move."""
    if is_discrete:
        raise ValueError(f"latent site {name!r} is discrete; SGHMC needs continuous latent sites (marginalise or enumerate it out)")
    if in_subsampled_plate is not None:
        raise ValueError(
            f"latent site {name!r} lies inside the subsampled plate {in_subsampled_plate!r}; "
            "its shape would change with every minibatch (local latents are not supported)"
        )
