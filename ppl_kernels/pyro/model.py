"""Model → potential for Pyro models, also with subsampled plates.

The twin of :mod:`ppl_kernels.numpyro.model`.
``pyro.infer.mcmc.util.initialize_model`` refuses models whose plates
subsample, so the kernel traces the model itself: the plate's own sample site
(named like the plate) is conditioned on an index tensor chosen by the kernel,
which makes the plate apply its ``N / B`` likelihood scale, and the log density
is split into likelihood and prior so that likelihood-only tempering and the
untempered ``lp`` statistic come for free.  The rule is the same in both
backends: a latent site's log density (with the log-Jacobian of its transform)
is prior, every other sample site's is likelihood.  ``transforms`` map
constrained → unconstrained values (Pyro's ``MCMC.transforms`` convention).

Discrete latent sites are summed out, as Pyro's HMC/NUTS sum them: the model
runs under ``poutine.enum`` (every site with a finite support, marked or not,
as ``config_enumerate`` marks them) and :func:`ppl_kernels.enumeration.sum_out`
eliminates the enumerated dims with the subsampled plates' scales outside the
sums.  The terms that depend on an enumerated site count as likelihood.
"""

from __future__ import annotations

import torch
from pyro import poutine
from pyro.infer.enum import config_enumerate
from pyro.distributions.util import scale_and_mask
from pyro.poutine.subsample_messenger import _Subsample
from torch.distributions import biject_to
from torch.distributions import transforms as _T

from .. import enumeration
from ..config import SubsamplePlate, check_latent_site, other_indices, unindexed_plate_error
from .epochs import first_indices

__all__ = [
    "find_subsample_plates", "latent_sites", "REDUCTIONS", "enumerated", "plate_nesting", "transforms_of", "is_identity",
    "log_joint_parts", "check_plates_used",
]

# Far enough left of any plate for a one-off trace whose plate nesting is not known yet.
_FAR_LEFT = 16


def _is_subsample(site) -> bool:
    return isinstance(site.get("fn"), _Subsample)


def find_subsample_plates(model, model_args, model_kwargs, init_strategy=None) -> list[SubsamplePlate]:
    """Plates of ``model`` that draw a subsample (``subsample_size < size``).  The latent
    sites take ``init_strategy``'s values (when given), so that a site whose distribution
    cannot be sampled (``ImproperUniform``) does not need to be."""
    from pyro.infer.autoguide.initialization import InitMessenger

    with torch.random.fork_rng(devices=[]):  # an inspection: the plates' random indices leave the user's stream alone
        try:  # (a plain trace first: the init strategy would reject a discrete site before latent_sites explains it)
            tr = poutine.trace(model).get_trace(*model_args, **model_kwargs)
        except NotImplementedError:
            if init_strategy is None:
                raise
            tr = poutine.trace(InitMessenger(init_strategy)(enumerated(model, _FAR_LEFT))).get_trace(
                *model_args, **model_kwargs)
    plates = []
    for name, site in tr.nodes.items():
        if site["type"] == "sample" and _is_subsample(site):
            fn = site["fn"]
            if fn.subsample_size is not None and fn.subsample_size < fn.size:
                plates.append(SubsamplePlate(name, int(fn.size), int(fn.subsample_size)))
    return plates


def plate_nesting(tr) -> int:
    """The number of nested plates in a trace (as Pyro's ``_guess_max_plate_nesting``)."""
    dims = [f.dim for site in tr.nodes.values() if site["type"] == "sample"
            for f in site["cond_indep_stack"] if f.vectorized]
    return -min(dims) if dims else 0


def enumerated(model, max_plate_nesting):
    """``model`` with its discrete latent sites set to their whole supports, left of the plates."""
    return poutine.enum(config_enumerate(model), first_available_dim=-1 - max_plate_nesting)


def latent_sites(model, model_args, model_kwargs, plates, init_strategy, max_plate_nesting=None):
    """Trace once with fixed indices under ``init_strategy``; return ``(sites, summed,
    max_plate_nesting)``: ``{name: site}`` of the continuous latent sample sites (their
    values the initial, constrained ones), the names of the discrete sites to sum out,
    and the plate nesting (``max_plate_nesting`` when given, else the model's).
    Rejects the sites :func:`ppl_kernels.config.check_latent_site` rejects."""
    from pyro.infer.autoguide.initialization import InitMessenger

    fixed = poutine.condition(model, data=first_indices(plates))
    sub_names = {p.name for p in plates}

    def checked(tr):
        out, summed = {}, []
        for name, site in tr.nodes.items():
            if site["type"] != "sample" or site["is_observed"] or _is_subsample(site):
                continue
            fn = site["fn"]
            in_plate = next((f.name for f in site["cond_indep_stack"] if f.name in sub_names), None)
            if check_latent_site(name, bool(fn.support.is_discrete), in_plate, (site.get("infer") or {}).get("enumerate"),
                                 bool(fn.has_enumerate_support)):
                summed.append(name)
            else:
                out[name] = site
        return out, summed

    # Check a plain trace first: Pyro's init strategies reject discrete sites with their own autoguide-worded error.
    # A distribution that cannot be sampled (ImproperUniform) needs the strategy's value: the trace below checks it.
    nesting = max_plate_nesting
    try:
        tr = poutine.trace(fixed).get_trace(*model_args, **model_kwargs)
        checked(tr)
        nesting = plate_nesting(tr) if nesting is None else nesting
    except NotImplementedError:
        pass
    # Under the enumeration, so that the strategy leaves the summed sites alone (as in Pyro's initialize_model).
    under_enum = enumerated(fixed, _FAR_LEFT if nesting is None else nesting)
    tr = poutine.trace(InitMessenger(init_strategy)(under_enum)).get_trace(*model_args, **model_kwargs)
    sites, summed = checked(tr)
    return sites, summed, plate_nesting(tr) if nesting is None else nesting


REDUCTIONS = enumeration.Reductions(lambda x, d: torch.logsumexp(x, d, keepdim=True),
                                     lambda x, d: x.sum(d, keepdim=True))


def transforms_of(sites: dict) -> dict:
    """Constrained → unconstrained bijections, one per latent site."""
    return {name: biject_to(site["fn"].support).inv for name, site in sites.items()}


def is_identity(transform) -> bool:
    """Whether ``transform`` is the identity (an unconstrained real site), possibly
    wrapped in inverses and ``IndependentTransform`` s: its log-Jacobian is 0."""
    while True:
        if isinstance(transform, _T._InverseTransform):
            transform = transform.inv
        elif isinstance(transform, _T.IndependentTransform):
            transform = transform.base_transform
        else:
            return isinstance(transform, _T.ComposeTransform) and not transform.parts


def log_joint_parts(model, model_args, model_kwargs, transforms, z, indices):
    """Return ``(log_likelihood, log_prior)`` at unconstrained ``z``.

    The log-likelihood is the plate-scaled minibatch estimate (scale N/B); the
    log-prior includes the log-Jacobian of the unconstrained transform (skipped
    for identity transforms, whose log-Jacobian is 0: a saving on every step).
    For an :class:`~ppl_kernels.enumeration.Enumerated` model the terms that depend on a discrete site
    are summed over its values and join the log-likelihood.
    """
    enum = model if isinstance(model, enumeration.Enumerated) else None
    moved = [k for k in z if not is_identity(transforms[k])]
    x = dict(z)
    x.update({k: transforms[k].inv(z[k]) for k in moved})
    fn = poutine.condition(model if enum is None else enum.model, data={**x, **indices})
    if enum is not None:
        fn = enumerated(fn, enum.max_plate_nesting)
    tr = poutine.trace(fn).get_trace(*model_args, **model_kwargs)
    variables = {} if enum is None else enumeration.variables_in(tr.nodes)
    log_lik = torch.zeros(())
    log_prior = torch.zeros(())
    factors, plates = [], {}
    for name, site in tr.nodes.items():
        if site["type"] != "sample" or _is_subsample(site):
            continue
        lp = site["fn"].log_prob(site["value"])
        if variables and enumeration.depends(lp, variables):
            plates.update(enumeration.plate_scales(name, site, enum.scales))
            factors.append(enumeration.Factor(scale_and_mask(lp, 1.0, site["mask"]), enumeration.ordinal(site), name))
            continue
        lp = scale_and_mask(lp, site["scale"], site["mask"]).sum()
        if name in z:
            log_prior = log_prior + lp
        else:
            log_lik = log_lik + lp
    if factors:
        log_lik = log_lik + enumeration.sum_out(factors, variables, plates, REDUCTIONS)
    for k in moved:
        log_prior = log_prior + transforms[k].inv.log_abs_det_jacobian(z[k], x[k]).sum()
    return log_lik, log_prior


def check_plates_used(parts, z, plates, model_args, model_kwargs) -> None:
    """Raise if the potential at ``z`` is the same for two different minibatches of a plate."""
    first = first_indices(plates)
    with torch.no_grad():
        u0 = parts(z, first, model_args, model_kwargs)[0]
        for p in plates:
            other = dict(first, **{p.name: torch.tensor(other_indices(p.size, p.subsample_size))})
            if bool(parts(z, other, model_args, model_kwargs)[0] == u0):
                raise unindexed_plate_error(p.name, p.fed)
