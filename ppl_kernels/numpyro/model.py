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
"""

from __future__ import annotations

import jax.numpy as jnp
from numpyro.distributions import biject_to
from numpyro.handlers import seed, substitute, trace

from ..config import SubsamplePlate, check_latent_site, other_indices, unindexed_plate_error
from .epochs import first_indices

__all__ = ["find_subsample_plates", "latent_sites", "transforms_of", "log_joint_parts", "check_plates_used"]


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


def latent_sites(model, model_args, model_kwargs, plates, init_strategy) -> dict:
    """Trace once with fixed indices under ``init_strategy``; return ``{name: site}`` of
    latent sample sites, rejecting discrete sites and local latents inside a
    subsampled plate.  The site values are initial (constrained) values for seed 0
    (the kernel draws each chain's own)."""
    fixed = substitute(model, data=first_indices(plates))
    tr = trace(substitute(seed(fixed, rng_seed=0), substitute_fn=init_strategy)).get_trace(*model_args, **model_kwargs)
    sub_names = {p.name for p in plates}
    out = {}
    for name, site in tr.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        in_plate = next((f.name for f in site["cond_indep_stack"] if f.name in sub_names), None)
        check_latent_site(name, bool(site["fn"].support.is_discrete), in_plate,
                          (site.get("infer") or {}).get("enumerate") == "parallel")
        out[name] = site
    return out


def transforms_of(sites: dict) -> dict:
    """Constrained → unconstrained bijections, one per latent site."""
    return {name: biject_to(site["fn"].support).inv for name, site in sites.items()}


def log_joint_parts(model, model_args, model_kwargs, transforms, z, indices):
    """Return ``(log_likelihood, log_prior)`` at unconstrained ``z``.

    The log-likelihood is the plate-scaled minibatch estimate (scale N/B); the
    log-prior includes the log-Jacobian of the unconstrained transform.
    """
    x = {k: transforms[k].inv(v) for k, v in z.items()}
    conditioned = substitute(substitute(model, data=indices), data=x)
    tr = trace(seed(conditioned, rng_seed=0)).get_trace(*model_args, **model_kwargs)
    log_lik = jnp.zeros(())
    log_prior = jnp.zeros(())
    for name, site in tr.items():
        if site["type"] != "sample":
            continue
        lp = jnp.sum(site["fn"].log_prob(site["value"]))
        if site["scale"] is not None:
            lp = lp * site["scale"]
        if name in z:
            log_prior = log_prior + lp
        else:
            log_lik = log_lik + lp
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
