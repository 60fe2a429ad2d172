"""Model → potential for NumPyro models, also with subsampled plates.

The twin of :mod:`ppl_kernels.pyro.model`.  NumPyro's ``initialize_model`` /
``potential_energy`` refuse models whose plates subsample (the plate needs a
random key).  Here the plate's site is substituted by an index array chosen by
the kernel, which makes the plate apply its ``N / B`` likelihood scale itself,
and the log density is split into its likelihood and prior parts so that
likelihood-only tempering and the untempered ``lp`` statistic come for free.
The rule is the same in both backends: a latent site's log density (with the
log-Jacobian of its transform) is prior, every other sample site's is
likelihood.  ``transforms`` map constrained → unconstrained values, as Pyro's
``MCMC.transforms``.

Discrete latent sites are summed out, as NumPyro's NUTS sums them: the model
runs under :class:`_enumerate` (every site with a finite support, marked or
not, set to its whole support along a dim of its own left of the plates, as
Pyro's ``poutine.enum`` does; NumPyro's own handler needs funsor) and
:func:`ppl_kernels.enumeration.sum_out` eliminates the enumerated dims with the
subsampled plates' scales outside the sums.  The terms that depend on an
enumerated site count as likelihood.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax.scipy.special import logsumexp
from numpyro.distributions import biject_to
from numpyro.handlers import seed, substitute, trace
from numpyro.primitives import Messenger

from .. import enumeration
from ..config import SubsamplePlate, check_latent_site, other_indices, unindexed_plate_error
from .epochs import first_indices

__all__ = ["find_subsample_plates", "latent_sites", "REDUCTIONS", "enumerated", "plate_nesting", "transforms_of",
           "log_joint_parts", "check_plates_used"]

# Far enough left of any plate for a one-off trace whose plate nesting is not known yet.
_FAR_LEFT = 16


class _enumerate(Messenger):
    """Set each discrete latent site with a finite support to that whole support, along
    its own dim left of ``first_dim`` (recorded as ``infer["_enumerate_dim"]``)."""

    def __init__(self, fn, first_dim):
        self.first_dim = first_dim
        super().__init__(fn)

    def __enter__(self):
        self.next_dim = self.first_dim
        return super().__enter__()

    def process_message(self, msg):
        fn = msg.get("fn")
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None \
                or not fn.support.is_discrete or not fn.has_enumerate_support:
            return
        dim, self.next_dim = self.next_dim, self.next_dim - 1
        msg["value"] = fn.enumerate_support(expand=False).reshape((-1,) + (1,) * (-dim - 1))
        msg["infer"] = {**msg["infer"], "_enumerate_dim": dim}


def find_subsample_plates(model, model_args, model_kwargs, init_strategy=None) -> list[SubsamplePlate]:
    """Plates of ``model`` that draw a subsample (``subsample_size < size``).  The latent
    sites take ``init_strategy``'s values (when given), so that a site whose distribution
    cannot be sampled (``ImproperUniform``) does not need to be."""
    try:  # (a plain trace first, as in Pyro, whose init strategies reject a discrete site)
        tr = trace(seed(model, rng_seed=0)).get_trace(*model_args, **model_kwargs)
    except NotImplementedError:
        if init_strategy is None:
            raise
        tr = trace(substitute(seed(model, rng_seed=0), substitute_fn=init_strategy)).get_trace(*model_args, **model_kwargs)
    plates = []
    for name, site in tr.items():
        if site["type"] == "plate":
            size, sub = site["args"]
            if sub is not None and sub < size:
                plates.append(SubsamplePlate(name, int(size), int(sub)))
    return plates


def plate_nesting(tr) -> int:
    """The number of nested plates in a trace (as Pyro's ``_guess_max_plate_nesting``)."""
    dims = [f.dim for site in tr.values() if site["type"] == "sample" for f in site["cond_indep_stack"]]
    return -min(dims) if dims else 0


def latent_sites(model, model_args, model_kwargs, plates, init_strategy, max_plate_nesting=None):
    """Trace once with fixed indices under ``init_strategy``; return ``(sites, summed,
    max_plate_nesting)``: ``{name: site}`` of the continuous latent sample sites (their
    values initial, constrained ones for seed 0: the kernel draws each chain's own), the
    names of the discrete sites to sum out, and the plate nesting (``max_plate_nesting``
    when given, else the model's).  Rejects the sites
    :func:`ppl_kernels.config.check_latent_site` rejects."""
    fixed = substitute(model, data=first_indices(plates))
    # Under the enumeration, so that the strategy leaves the summed sites alone.
    under_enum = enumerated(fixed, _FAR_LEFT if max_plate_nesting is None else max_plate_nesting)
    tr = trace(substitute(seed(under_enum, rng_seed=0), substitute_fn=init_strategy)).get_trace(
        *model_args, **model_kwargs)
    sub_names = {p.name for p in plates}
    sites, summed = {}, []
    for name, site in tr.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        fn = site["fn"]
        in_plate = next((f.name for f in site["cond_indep_stack"] if f.name in sub_names), None)
        if check_latent_site(name, bool(fn.support.is_discrete), in_plate, (site.get("infer") or {}).get("enumerate"),
                             bool(fn.has_enumerate_support)):
            summed.append(name)
        else:
            sites[name] = site
    return sites, summed, plate_nesting(tr) if max_plate_nesting is None else max_plate_nesting


def enumerated(model, max_plate_nesting):
    """``model`` with its discrete latent sites set to their whole supports, left of the plates."""
    return _enumerate(model, -1 - max_plate_nesting)


REDUCTIONS = enumeration.Reductions(lambda x, d: logsumexp(x, axis=d, keepdims=True),
                                     lambda x, d: x.sum(axis=d, keepdims=True))


def transforms_of(sites: dict) -> dict:
    """Constrained → unconstrained bijections, one per latent site."""
    return {name: biject_to(site["fn"].support).inv for name, site in sites.items()}


def log_joint_parts(model, model_args, model_kwargs, transforms, z, indices):
    """Return ``(log_likelihood, log_prior)`` at unconstrained ``z``.

    The log-likelihood is the plate-scaled minibatch estimate (scale N/B); the
    log-prior includes the log-Jacobian of the unconstrained transform.  For an
    :class:`~ppl_kernels.enumeration.Enumerated` model the terms that depend on a discrete site are
    summed over its values and join the log-likelihood.
    """
    enum = model if isinstance(model, enumeration.Enumerated) else None
    x = {k: transforms[k].inv(v) for k, v in z.items()}
    conditioned = substitute(substitute(model if enum is None else enum.model, data=indices), data=x)
    if enum is not None:
        conditioned = enumerated(conditioned, enum.max_plate_nesting)
    tr = trace(seed(conditioned, rng_seed=0)).get_trace(*model_args, **model_kwargs)
    variables = {} if enum is None else enumeration.variables_in(tr)
    log_lik = jnp.zeros(())
    log_prior = jnp.zeros(())
    factors, plates = [], {}
    for name, site in tr.items():
        if site["type"] != "sample":
            continue
        lp = site["fn"].log_prob(site["value"])
        if variables and enumeration.depends(lp, variables):
            plates.update(enumeration.plate_scales(name, site, enum.scales))
            factors.append(enumeration.Factor(lp, enumeration.ordinal(site), name))
            continue
        lp = jnp.sum(lp)
        if site["scale"] is not None:
            lp = lp * site["scale"]
        if name in z:
            log_prior = log_prior + lp
        else:
            log_lik = log_lik + lp
    if factors:
        log_lik = log_lik + enumeration.sum_out(factors, variables, plates, REDUCTIONS)
    for k, v in z.items():
        log_prior = log_prior + jnp.sum(transforms[k].inv.log_abs_det_jacobian(v, x[k]))
    return log_lik, log_prior


def check_plates_used(parts, z, plates, model_args, model_kwargs) -> None:
    """Raise if the potential at ``z`` is the same for two different minibatches of a plate
    (skipped under a trace, e.g. pmap'ed chains, where the values are not known)."""
    import jax

    first = first_indices(plates)
    u0 = parts(z, first, model_args, model_kwargs)[0]
    if isinstance(u0, jax.core.Tracer):
        return
    for p in plates:
        other = dict(first, **{p.name: jnp.asarray(other_indices(p.size, p.subsample_size))})
        if bool(parts(z, other, model_args, model_kwargs)[0] == u0):
            raise unindexed_plate_error(p.name, p.fed)
