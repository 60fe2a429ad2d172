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

from .enumeration import variables_in, varies

__all__ = ["Site", "site_info", "site_kind", "site_outputs", "output_axis", "is_factor", "to_numpy", "shared_summed_site",
           "summed_log_prob", "summed_outputs"]


class Site(NamedTuple):
    """A model site as the chunked evaluation needs it."""

    kind: str  # "latent", "summed" (a discrete latent site the kernel sums out), "observed" or "deterministic"
    plate: str | None  # the subsampled plate the site lies in, if any
    dim: int  # that plate's dim, counted from the right of the batch shape
    event_dim: int
    support: Any  # enumerated support values (numpy) or None
    shared: str | None = None  # a summed site all the members of one of this site's plates share


def to_numpy(x) -> np.ndarray:
    """A torch tensor, jax array or array-like as a numpy array (integers as int64:
    JAX gives int32 where torch gives int64, and the export must not depend on it)."""
    x = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x)
    return x.astype(np.int64) if np.issubdtype(x.dtype, np.signedinteger) else x


def site_kind(name, site, draw) -> str:
    """``"latent"``, ``"summed"`` or ``"observed"``; Pyro's conditioning marks the latent
    sites observed, so the latent sites are the draw's keys, and a discrete latent site
    that is not one (the kernel summed it out) is ``"summed"``."""
    if name in draw:
        return "latent"
    if site["is_observed"]:
        return "observed"
    return "summed" if site["fn"].support.is_discrete else "latent"


def is_factor(fn) -> bool:
    """``factor`` sites (Unit distributions) carry no data point: not part of the likelihood."""
    return type(fn).__name__ == "Unit"


def site_info(name, site, kind, subsampled, shared=None) -> Site:
    """The :class:`Site` of a traced site; ``subsampled`` holds the subsampled plates' names."""
    plates = [f for f in site["cond_indep_stack"] if f.name in subsampled]
    if len(plates) > 1:
        raise ValueError(f"site {name!r} lies in several subsampled plates {[f.name for f in plates]}; not supported")
    fn = site.get("fn")
    event_dim = len(fn.event_shape) if fn is not None and kind != "deterministic" else 0
    support = None
    if kind == "observed" and getattr(fn, "has_enumerate_support", False):
        support = to_numpy(fn.enumerate_support(expand=False)).reshape(-1)
    return Site(kind, plates[0].name if plates else None, plates[0].dim if plates else 0, event_dim, support, shared)


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


# -- observed sites of a model whose discrete sites are summed out -------------------------------------
def _summed_parents(nodes, name):
    """The enumerated sites that the log density of ``nodes[name]`` depends on, with theirs."""
    enumerated = {dim: n for dim, (n, _) in variables_in(nodes).items()}
    site = nodes[name]
    lp = site["fn"].log_prob(site["value"])
    todo = [n for d, n in enumerated.items() if varies(lp, d) and n != name]
    found = {}
    while todo:
        n = todo.pop()
        if n in found:
            continue
        s = nodes[n]
        found[n] = s["fn"].log_prob(s["value"])
        todo += [m for d, m in enumerated.items() if varies(found[n], d) and m not in found and m != name]
    return lp, found, enumerated


def shared_summed_site(nodes, name) -> str | None:
    """The first summed site that ``name``'s log density depends on and that lies outside one
    of ``name``'s plates (all members share it), if any: then the site has no pointwise log
    density.  ``nodes``: a trace under the enumeration."""
    plates = {f.name for f in nodes[name]["cond_indep_stack"]}
    _, found, _ = _summed_parents(nodes, name)
    return next((n for n in found if not plates <= {f.name for f in nodes[n]["cond_indep_stack"]}), None)


def summed_log_prob(nodes, name, logsumexp, batch_ndim, moveaxis=None):
    """Each plate member's log density of the observed site ``name`` with the summed sites it
    depends on (all local to the member: see :func:`shared_summed_site`) summed over their
    values, ``log Σ_z p(z) p(xᵢ | z)``.

    ``nodes``: a trace under the enumeration; ``logsumexp(x, dim)`` keeps ``dim``;
    ``batch_ndim``: the site's batch dims without the enumeration.  With ``moveaxis``, the
    site is itself enumerated (a held-out discrete site): the log density of each of its
    values, support last (the ``classes`` output of :func:`site_outputs`).
    """
    lp, found, enumerated = _summed_parents(nodes, name)
    for x in found.values():
        lp = lp + x
    for dim, n in sorted(enumerated.items()):
        if n in found and lp.ndim >= -dim:
            lp = logsumexp(lp, dim)
    keep = batch_ndim
    if moveaxis is not None:
        own = nodes[name]["infer"]["_enumerate_dim"]
        lp, keep = moveaxis(lp, own, -1), batch_ndim + 1
    return lp.reshape(lp.shape[lp.ndim - keep:]) if lp.ndim > keep else lp


def summed_outputs(out, requests, nodes, targets, enumerated_nodes, logsumexp, moveaxis) -> dict:
    """``out`` (:func:`site_outputs` per site) with its densities made marginal over the
    summed sites: ``log_prob`` and ``classes`` from a trace under the enumeration, ``target``
    from one whose observed sites hold the ``targets``.  ``nodes``: the plain trace;
    ``enumerated_nodes(values)``: a trace under the enumeration with ``values`` substituted."""
    plain = with_targets = None
    for n, whats in requests.items():
        batch_ndim = len(nodes[n]["fn"].batch_shape)
        for what in sorted(whats & {"log_prob", "classes"}):
            plain = enumerated_nodes({}) if plain is None else plain
            out[n][what] = summed_log_prob(plain, n, logsumexp, batch_ndim, moveaxis if what == "classes" else None)
        if "target" in whats:
            with_targets = enumerated_nodes(targets) if with_targets is None else with_targets
            out[n]["target"] = summed_log_prob(with_targets, n, logsumexp, batch_ndim)
    return out
