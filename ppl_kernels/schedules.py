"""Value schedules shared by both backends.

A schedule maps the draw index ``k`` (0-based, counted over warmup and
sampling together) to a value and a phase.  Schedules are plain frozen data:
the Pyro kernel evaluates them eagerly on Python integers, the NumPyro kernel
evaluates the very same objects on traced integers inside ``jit`` by passing
``jax.numpy`` as the array namespace.

Phases follow cyclical SG-MCMC (Zhang et al., 2020): ``1`` ("explore") while
the position inside the cycle is below ``explore_fraction``, ``0`` ("sample")
otherwise.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from numbers import Real
from typing import Any

__all__ = [
    "Schedule",
    "Constant",
    "Cyclical",
    "constant",
    "cyclical",
    "as_schedule",
    "from_dict",
    "SAMPLE",
    "EXPLORE",
]

#: Phase codes recorded in the ``phase`` statistic.
SAMPLE = 0
EXPLORE = 1


class _MathNamespace:
    """Minimal array namespace over the :mod:`math` module for Python scalars."""

    cos = staticmethod(math.cos)
    pi = math.pi

    @staticmethod
    def where(cond, a, b):
        return a if cond else b


_MATH = _MathNamespace()


class Schedule:
    """Base class of value schedules.

    Subclasses implement :meth:`value` and :meth:`phase`; both take the draw
    index ``k`` and an optional array namespace ``xp`` (``math`` semantics by
    default, ``jax.numpy`` inside JAX programs).
    """

    kind: str = ""

    def value(self, k, xp=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def phase(self, k, xp=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, k, xp=None):
        """Return ``(value, phase)`` at draw ``k``."""
        return self.value(k, xp), self.phase(k, xp)

    def to_dict(self) -> dict[str, Any]:
        """Readable, JSON-serialisable description (used in ArviZ attrs)."""
        return {"kind": self.kind, **asdict(self)}

    def __str__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in asdict(self).items())
        return f"{self.kind}({args})"


@dataclass(frozen=True)
class Constant(Schedule):
    """A constant value, always in the sample phase.

    Parameters
    ----------
    v : float
        The value.
    """

    v: float
    kind = "constant"

    def value(self, k, xp=None):
        return self.v

    def phase(self, k, xp=None):
        return SAMPLE


@dataclass(frozen=True)
class Cyclical(Schedule):
    """Cosine cyclical schedule with an exploration phase.

    ``value(k) = v_min + (v_max - v_min) / 2 * (cos(pi * (k mod L) / L) + 1)``
    and the phase is "explore" while ``(k mod L) / L < explore_fraction``.

    Parameters
    ----------
    v_max, v_min : float
        Values at the start and (in the limit) at the end of each cycle.
    cycle_length : int
        Cycle length ``L`` in draws.
    explore_fraction : float
        Fraction of each cycle spent exploring, in ``[0, 1]``.
    """

    v_max: float
    v_min: float
    cycle_length: int
    explore_fraction: float
    kind = "cyclical"

    def _position(self, k, xp):
        j = k % self.cycle_length
        if xp is not _MATH:
            # JAX divides int32 by int in float32 even with x64 enabled
            j = xp.asarray(j, dtype=float)
        return j / self.cycle_length

    def value(self, k, xp=None):
        xp = _MATH if xp is None else xp
        return self.v_min + 0.5 * (self.v_max - self.v_min) * (xp.cos(xp.pi * self._position(k, xp)) + 1.0)

    def phase(self, k, xp=None):
        xp = _MATH if xp is None else xp
        return xp.where(self._position(k, xp) < self.explore_fraction, EXPLORE, SAMPLE)


def _check_real(name, value, *, minimum=None, strict=False):
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}")
    if minimum is not None and (value < minimum or (strict and value == minimum)):
        op = ">" if strict else ">="
        raise ValueError(f"{name} must be {op} {minimum}, got {value!r}")
    return float(value)


def constant(v: float) -> Constant:
    """Constant schedule (see :class:`Constant`)."""
    return Constant(_check_real("v", v))


def cyclical(v_max: float, v_min: float = 0.0, cycle_length: int = 100, explore_fraction: float = 0.5) -> Cyclical:
    """Cosine cyclical schedule (see :class:`Cyclical`).

    Examples
    --------
    >>> s = cyclical(1.0, 0.0, cycle_length=4, explore_fraction=0.5)
    >>> [round(s.value(k), 3) for k in range(5)]
    [1.0, 0.854, 0.5, 0.146, 1.0]
    >>> [s.phase(k) for k in range(4)]
    [1, 1, 0, 0]
    """
    v_max = _check_real("v_max", v_max)
    v_min = _check_real("v_min", v_min)
    if isinstance(cycle_length, bool) or not isinstance(cycle_length, int) or cycle_length < 1:
        raise ValueError(f"cycle_length must be a positive integer, got {cycle_length!r}")
    explore_fraction = _check_real("explore_fraction", explore_fraction, minimum=0.0)
    if explore_fraction > 1.0:
        raise ValueError(f"explore_fraction must lie in [0, 1], got {explore_fraction!r}")
    return Cyclical(v_max, v_min, int(cycle_length), explore_fraction)


def as_schedule(x) -> Schedule:
    """Return ``x`` if it is a schedule, else ``constant(x)``."""
    return x if isinstance(x, Schedule) else constant(x)


def from_dict(d: dict[str, Any]) -> Schedule:
    """Inverse of :meth:`Schedule.to_dict`."""
    d = dict(d)
    kind = d.pop("kind")
    factories = {"constant": constant, "cyclical": cyclical}
    if kind not in factories:
        raise ValueError(f"unknown schedule kind {kind!r}")
    return factories[kind](**d)


def schedule_max(s: Schedule) -> float:
    """Largest value a schedule takes (a cyclical value is monotone over a cycle)."""
    if isinstance(s, Constant):
        return s.v
    return max(s.value(0), s.value(s.cycle_length - 1))


def schedule_min(s: Schedule) -> float:
    """Smallest value a schedule takes (used for validation).

    A cyclical value is monotone over a cycle and never reaches ``v_min``
    itself, so ``cyclical(v_max)`` (``v_min = 0``) is a valid step size.
    """
    if isinstance(s, Constant):
        return s.v
    return min(s.value(0), s.value(s.cycle_length - 1))
