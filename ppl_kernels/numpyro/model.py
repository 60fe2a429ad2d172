"""Model → potential machinery for NumPyro models with subsampled plates.

NumPyro's ``initialize_model`` / ``potential_energy`` refuse models whose
plates subsample (the plate needs a random key).  Here the plate's site is
substituted by an index array chosen by the kernel, which makes the plate
apply its ``N / B`` likelihood scale itself, and the log density is split into
its likelihood and prior parts so that likelihood-only tempering and the
untempered ``lp`` statistic come for free.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax, random
from numpyro.distributions import biject_to
from numpyro.handlers import seed, substitute, trace

from ..config import check_latent_site

__all__ = ["SubsamplePlate", "find_subsample_plates", "latent_sites", "log_joint_parts", "epoch_indices"]


class SubsamplePlate(NamedTuple):
    name: str
    size: int
    subsample_size: int


def find_subsample_plates(model, model_args, model_kwargs) -> list[SubsamplePlate]:
    """Plates of ``model`` that draw a subsample (``subsample_size < size``)."""
    tr = trace(seed(model, rng_seed=0)).get_trace(*model_args, **model_kwargs)
    plates = []
    for name, site in tr.items():
        if site["type"] == "plate":
            size, sub = site["args"]
            if sub is not None and sub < size:
                plates.append(SubsamplePlate(name, int(size), int(sub)))
    return plates


def first_indices(plates) -> dict:
    return {p.name: jnp.arange(p.subsample_size) for p in plates}


def latent_sites(model, model_args, model_kwargs, plates) -> dict:
    """Trace once with fixed indices; return ``{name: site}`` of latent sample sites,
    rejecting discrete sites and local latents inside a subsampled plate."""
    tr = trace(seed(substitute(model, data=first_indices(plates)), rng_seed=0)).get_trace(*model_args, **model_kwargs)
    sub_names = {p.name for p in plates}
    out = {}
    for name, site in tr.items():
        if site["type"] != "sample" or site["is_observed"]:
            continue
        in_plate = next((f.name for f in site["cond_indep_stack"] if f.name in sub_names), None)
        check_latent_site(name, bool(site["fn"].support.is_discrete), in_plate)
        out[name] = site
    return out


def transforms_of(sites: dict) -> dict:
    """Unconstrained → constrained bijections, one per latent site."""
    return {name: biject_to(site["fn"].support) for name, site in sites.items()}


def log_joint_parts(model, model_args, model_kwargs, transforms, z, indices):
    """Return ``(log_likelihood, log_prior)`` at unconstrained ``z``.

    The log-likelihood is the plate-scaled minibatch estimate (scale N/B); the
    log-prior includes the log-Jacobian of the unconstrained transform.
    """
    x = {k: transforms[k](v) for k, v in z.items()}
    conditioned = substitute(substitute(model, data=indices), data=x)
    tr = trace(seed(conditioned, rng_seed=0)).get_trace(*model_args, **model_kwargs)
    log_lik = jnp.zeros(())
    log_prior = jnp.zeros(())
    for site in tr.values():
        if site["type"] != "sample":
            continue
        lp = jnp.sum(site["fn"].log_prob(site["value"]))
        if site["scale"] is not None:
            lp = lp * site["scale"]
        if site["is_observed"]:
            log_lik = log_lik + lp
        else:
            log_prior = log_prior + lp
    for k, v in z.items():
        log_prior = log_prior + jnp.sum(transforms[k].log_abs_det_jacobian(v, x[k]))
    return log_lik, log_prior


def epoch_indices(key, perm, pos, subsample_size: int):
    """Next minibatch of a without-replacement epoch: O(B) per step, one O(N)
    reshuffle per pass over the data (the hosts' plates permute all N each time)."""
    n = perm.shape[0]
    renew = pos + subsample_size > n
    perm = lax.cond(renew, lambda: random.permutation(key, n).astype(perm.dtype), lambda: perm)
    pos = jnp.where(renew, 0, pos)
    idx = lax.dynamic_slice(perm, (pos,), (subsample_size,))
    return idx, perm, pos + subsample_size
