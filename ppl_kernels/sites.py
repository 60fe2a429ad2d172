"""What a traced model site is, for evaluating a model at posterior draws.

Backend-free rules that both backends' ``host.Evaluator`` and the ArviZ export
share: which sites are latent, observed or deterministic, where a site's
subsampled plate lies, and what to read off a traced site (its value, its
unscaled log density, the log density of every support value, of a held-out
target).  Duck-typed over Pyro's and NumPyro's distribution objects, so the
same code runs on torch and jax values.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["Site", "site_info", "site_kind", "site_outputs", "output_axis", "is_factor", "to_numpy"]


class Site(NamedTuple):
    """A model site as the chunked evaluation needs it."""

    kind: str  # "latent", "observed" or "deterministic"
    plate: str | None  # the subsampled plate the site lies in, if any
    dim: int  # that plate's dim, counted from the right of the batch shape
    event_dim: int
    support: Any  # enumerated support values (numpy) or None


def to_numpy(x) -> np.ndarray:
    """A torch tensor, jax array or array-like as a numpy array (integers as int64:
    JAX gives int32 where torch gives int64, and the export must not depend on it)."""
    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    return x.astype(np.int64) if np.issubdtype(x.dtype, np.signedinteger) else x


def site_kind(name, site, draw) -> str:
    """``"latent"`` or ``"observed"``; Pyro's conditioning marks the latent sites
    observed, so the latent sites are the draw's keys."""
    return "latent" if name in draw or not site["is_observed"] else "observed"


def is_factor(fn) -> bool:
    """``factor`` sites (Unit distributions) carry no data point: not part of the likelihood."""
    return type(fn).__name__ == "Unit"


def site_info(name, site, kind, subsampled) -> Site:
    """The :class:`Site` of a traced site; ``subsampled`` holds the subsampled plates' names."""
    plates = [f for f in site["cond_indep_stack"] if f.name in subsampled]
    if len(plates) > 1:
        raise ValueError(f"site {name!r} lies in several subsampled plates {[f.name for f in plates]}; not supported")
    fn = site.get("fn")
    event_dim = len(fn.event_shape) if fn is not None and kind != "deterministic" else 0
    support = None
    if kind == "observed" and getattr(fn, "has_enumerate_support", False):
        support = to_numpy(fn.enumerate_support(expand=False)).reshape(-1)
    return Site(kind, plates[0].name if plates else None, plates[0].dim if plates else 0, event_dim, support)


def site_outputs(site, whats, target, moveaxis) -> dict:
    """The requested quantities of one traced site.

    ``value``: the site's value; ``log_prob``: its unscaled log density;
    ``classes``: the log density of every support value, support last;
    ``target``: the log density of the held-out target.
    """
    fn, value = site.get("fn"), site["value"]
    out = {}
    if "value" in whats:
        out["value"] = value
    if "log_prob" in whats:
        out["log_prob"] = fn.log_prob(value)
    if "classes" in whats:
        out["classes"] = moveaxis(fn.log_prob(fn.enumerate_support(expand=False)), 0, -1)
    if "target" in whats:
        out["target"] = fn.log_prob(target)
    return out


def output_axis(site: Site, what: str) -> int:
    """Axis of the subsampled plate in an output of :func:`site_outputs` (negative, from
    the right)."""
    if what == "value":
        return site.dim - site.event_dim
    return site.dim - 1 if what == "classes" else site.dim
