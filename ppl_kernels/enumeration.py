"""Summing discrete latent sites out of a plated model, written once.

Both backends trace a model with every enumerable discrete latent site set to
its whole support along a dimension of its own, to the left of the plates
(Pyro's ``poutine.enum`` convention; NumPyro's backend does the same without
funsor).  What is left is a list of log-density factors, each living in a set
of plates (its *ordinal*) and depending on some of those enumeration
dimensions.  :func:`sum_out` eliminates them by variable elimination over the
plate tree, deepest plates first: the factors of one ordinal are added, the
enumeration dimensions that belong to that ordinal are ``logsumexp``-ed out,
and the plates no remaining variable lives in are summed, which is the product
over the plate's independent members.

Subsampled plates are why this is not the hosts' contraction.  A minibatch
estimate of a plate's log density is ``N/B`` times the sum over the batch of
each member's *marginal*: the scale belongs outside the member's ``logsumexp``
(``(N/B) Σᵢ log Σ_z p(z) p(xᵢ|z)``), not inside it.  The factors come in
unscaled, and each plate's scale multiplies its sum when the plate is reduced.
A site enumerated outside the plate (a global discrete site with a subsampled
likelihood) gets ``log Σ_z p(z) exp((N/B) Σ_{i∈B} log p(xᵢ|z))``: the plug-in
estimate, as an unbiased estimate of the log-likelihood of every value of ``z``
is all a minibatch gives.  See ``docs/theory.rst`` (Discrete latent sites).

The arithmetic uses only ``+``, ``*``, ``ndim``, ``shape`` and the two
reductions the backend supplies, so it runs on ``torch.Tensor`` and on
``jax.Array`` (traced) alike.
"""

from __future__ import annotations

import functools
import operator
from collections import defaultdict
from typing import Any, Callable, NamedTuple

__all__ = ["Enumerated", "Factor", "Reductions", "sum_out", "ordinal", "variables_in", "varies", "depends", "plate_scales",
           "enumeration_error"]


class Enumerated(NamedTuple):
    """A model whose discrete latent sites both backends' ``model.log_joint_parts`` sum out."""

    model: Callable
    max_plate_nesting: int
    scales: dict  # subsampled plate -> N / B

    @classmethod
    def over(cls, model, max_plate_nesting: int, plates) -> "Enumerated":
        """``model`` with the scales of its subsampled ``plates``."""
        return cls(model, max_plate_nesting, {p.name: p.size / p.subsample_size for p in plates})


class Factor(NamedTuple):
    """One unscaled log-density term of an enumerated trace."""

    log_density: Any  # array: enumeration dims left of the plates, plate dims at their own dim
    ordinal: frozenset  # names of the (vectorised) plates the site lies in
    site: str


class Reductions(NamedTuple):
    """The backend's two reductions along one (negative) dim, keeping it with size 1."""

    logsumexp: Callable[[Any, int], Any]
    sum: Callable[[Any, int], Any]


def enumeration_error(site: str, why: str) -> ValueError:
    """The one error for a model whose discrete sites cannot be summed out."""
    return ValueError(f"cannot sum out the discrete latent site {site!r}: {why}")


def varies(x, dim: int) -> bool:
    """Whether array ``x`` varies along the (negative) ``dim``."""
    return x.ndim >= -dim and x.shape[dim] > 1


def _frames(site):
    """A traced site's vectorised plates (NumPyro's frames are all vectorised)."""
    return [f for f in site["cond_indep_stack"] if getattr(f, "vectorized", True)]


def ordinal(site) -> frozenset:
    """The names of the (vectorised) plates a traced site lies in."""
    return frozenset(f.name for f in _frames(site))


def variables_in(nodes) -> dict:
    """``{dim: (site, ordinal)}`` of the enumerated sites of a trace (``{name: site}``, both
    hosts' layout); two sites on one dim (``pyro.markov`` recycles dims along a chain) are
    refused: their elimination would need the chain's order."""
    out = {}
    for name, site in nodes.items():
        if site["type"] != "sample" or "_enumerate_dim" not in (site.get("infer") or {}):
            continue
        dim = site["infer"]["_enumerate_dim"]
        if dim in out:
            raise enumeration_error(name, f"it shares its enumeration dim {dim} with {out[dim][0]!r} (a markov "
                                    "context recycles dims); sum a Markov chain with its forward algorithm instead")
        out[dim] = (name, ordinal(site))
    return out


def depends(log_density, variables: dict) -> bool:
    """Whether a site's log density varies along an enumeration dim of ``variables``."""
    return any(varies(log_density, dim) for dim in variables)


def plate_scales(name: str, site, scales: dict) -> dict:
    """``{plate: (dim, scale)}`` of the plates of the traced site ``name``, checking that the
    site's own scale is the product of its subsampled plates' scales: any other scale
    (``poutine.scale``) has no place inside a sum over values."""
    scale = site["scale"]
    out = {f.name: (f.dim, scales.get(f.name, 1.0)) for f in _frames(site)}
    expected = 1.0
    for _, s in out.values():
        expected *= s
    if abs(float(1.0 if scale is None else scale) - expected) > 1e-9 * expected:
        raise enumeration_error(name, f"the site's log density is scaled by {float(scale)!r}, not by its subsampled plates' "
                                f"N/B = {expected!r}; a scale inside the sum over the discrete values is not supported")
    return out


def sum_out(factors: list[Factor], variables: dict, plates: dict, ops: Reductions):
    """``log Σ_{enumerated values} exp(Σ factors)`` with each plate's scale applied
    outside the sums over its members.

    Parameters
    ----------
    factors : list of Factor
        The terms that depend on at least one enumeration dim.
    variables : dict
        ``{dim: (site name, ordinal)}`` of the enumerated sites.
    plates : dict
        ``{plate name: (dim, scale)}``; ``scale`` is ``N / B`` for a subsampled
        plate, else 1.
    ops : Reductions
        The backend's reductions.

    Returns
    -------
    array
        A scalar: the summed-out log density.

    Raises
    ------
    ValueError
        Where the plates do not form a tree over the enumerated sites (a factor
        couples variables of two plates that are not nested), naming the site.
    """
    pending: dict = defaultdict(list)
    for f in factors:
        pending[f.ordinal].append(f)
    total = 0.0
    while pending:
        ordinal = max(pending, key=len)  # deepest first: messages only go to smaller ordinals
        here = pending.pop(ordinal)
        x = functools.reduce(operator.add, [f.log_density for f in here])
        for dim, (_, home) in sorted(variables.items()):
            if home == ordinal and varies(x, dim):
                x = ops.logsumexp(x, dim)
        left = [dim for dim in variables if varies(x, dim)]
        target = frozenset().union(*(variables[d][1] for d in left))
        if left and (target == ordinal or not target <= ordinal):
            names = sorted({variables[d][0] for d in left})
            raise enumeration_error(
                names[0], f"the sites {names} of plates that do not nest meet in the factor of {here[0].site!r} "
                "(only a tree of plates can be summed out plate by plate)")
        for name in ordinal - target:
            dim, scale = plates[name]
            if x.ndim >= -dim:
                x = ops.sum(x, dim)
            x = x * scale if scale != 1 else x
        if ordinal:
            pending[target].append(Factor(x, target, here[0].site))
        else:  # the root comes last: every message has reached it
            total = total + x.sum()
    return total
