"""Tempered, norm-adjusting SGHMC as a :class:`pyro.infer.mcmc.MCMCKernel`.

The twin of :mod:`ppl_kernels.numpyro.kernel`: the same arguments (validated
by :class:`ppl_kernels.config.SGHMCConfig`), the same integrator
(:mod:`ppl_kernels.dynamics`) and the same statistics.  The kernel class is a
thin shell over :func:`sghmc_init` and :func:`sghmc_draw`, which work on an
:data:`SGHMCState` namedtuple and run eagerly.
"""

from __future__ import annotations

import math
from collections import OrderedDict, namedtuple

import torch
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

from .. import dynamics
from ..config import STAT_FIELDS, SGHMCConfig, resolve_site_values
from ..schedules import EXPLORE
from . import model as _m

__all__ = ["SGHMC", "SGHMCState", "sghmc_init", "sghmc_draw"]

SGHMCState = namedtuple("SGHMCState", ["i", "z", "r", "grad", "potential_energy", "lp"])
SGHMCState.__doc__ = """State of :class:`SGHMC` (the per-draw statistics are kept by the kernel).

- **i** - draw index (warmup and sampling together), drives the schedules.
- **z** - latent values in unconstrained space (dict site -> tensor).
- **r** - momentum, same structure as ``z``.
- **grad** - ∇Ũ(z) of the dynamics' potential (carried for the half kick).
- **potential_energy** - the dynamics' potential Ũ(z).
- **lp** - the untempered minibatch log density at ``z``.
"""

_Static = namedtuple("_Static", ["cfg", "inv_mass", "friction", "mass", "dim", "value_and_grad"])


def _normal_like(tree):
    return {k: torch.randn_like(v) for k, v in tree.items()}


def _all_finite(*values) -> bool:
    for v in values:
        items = v.values() if isinstance(v, dict) else [v]
        if not all(bool(torch.isfinite(x).all()) for x in items):
            return False
    return True


def sghmc_init(static: _Static, z: dict) -> SGHMCState:
    """Initial state at unconstrained ``z``: momentum drawn from ``N(0, α T M)``."""
    cfg = static.cfg
    u, lp, grad = static.value_and_grad(z)
    r = dynamics.resampled_momentum(_normal_like(z), cfg.boost * cfg.noise_temperature, static.mass)
    return SGHMCState(0, {k: v.detach() for k, v in z.items()}, r, grad, u, lp)


def sghmc_draw(static: _Static, state: SGHMCState, noise=None):
    """One draw; returns ``(new_state, statistics)``.

    Optional momentum resampling with a half kick, then ``num_steps`` integrator
    steps.  A draw in which θ, r or Ũ becomes non-finite is flagged
    ``diverging`` and the chain stays at the draw's starting point.  ``noise``
    (tests only) is a list of ``num_steps`` dicts of standard normal draws ξ.
    """
    cfg = static.cfg
    k = state.i
    eps, phase = cfg.step_size(k)
    r = state.r
    beta = math.nan
    if cfg.resample_scale is not None:
        beta, phase_b = cfg.resample_scale(k)
        phase = max(phase, phase_b)
        r = dynamics.resampled_momentum(_normal_like(r), beta, static.mass)
        r = dynamics.half_kick(r, state.grad, eps)
    noise_t = 0.0 if (phase == EXPLORE and not cfg.explore_noise) else cfg.noise_temperature
    z, grad, u, lp = state.z, state.grad, state.potential_energy, state.lp
    for step in range(cfg.num_steps):
        z = dynamics.drift(z, r, eps, static.inv_mass)
        u, lp, grad = static.value_and_grad(z)
        xi = _normal_like(r) if noise is None else noise[step]
        r = dynamics.kick(r, grad, eps, static.friction, static.inv_mass, noise_t, xi)
    diverging = not _all_finite(z, r, u)
    if diverging:
        z, r, grad, u, lp = state.z, state.r, state.grad, state.potential_energy, state.lp
    stats = {k_: float(v) for k_, v in dynamics.draw_statistics(z, r, grad, static.inv_mass, static.dim).items()}
    stats.update(lp=float(lp), step_size=float(eps), resample_scale=float(beta), phase=int(phase), diverging=diverging)
    return SGHMCState(k + 1, z, r, grad, u, lp), stats


class SGHMC(MCMCKernel):
    """Tempered, norm-adjusting stochastic-gradient HMC for Pyro.

    A drop-in for :class:`pyro.infer.NUTS` that also runs models with
    ``pyro.plate(..., subsample_size=B)``: every integrator step sees a fresh
    minibatch (drawn without replacement within an epoch) and the likelihood is
    scaled by ``N / B``.  The dynamics, with ``M' = boost · mass`` and
    ``C' = friction_scale · friction``, are

    .. math::

        d\\theta = M'^{-1} r\\,dt, \\qquad
        dr = (-\\nabla \\tilde U(\\theta) - C' M'^{-1} r)\\,dt + \\mathcal N(0, 2 C' T\\,dt),

    whose stationary law is :math:`\\propto \\exp(-U(\\theta)/T)`.

    Parameters
    ----------
    model : callable, optional
        Pyro model.  Either ``model`` or ``potential_fn`` is required.
    potential_fn : callable, optional
        ``z -> U(z)`` on a dict of unconstrained tensors (as for
        :class:`pyro.infer.HMC`); give ``initial_params`` to
        :class:`pyro.infer.MCMC`.
    step_size : float or Schedule
        Integrator step ε.
    num_steps : int
        Integrator steps per draw.
    temperature : float
        T ≥ 0; the target is ``exp(-U / T)``.  ``T = 0`` is SGD with momentum.
    tempering : {"posterior", "likelihood"}
        Temper the whole potential (noise scaled by T) or only the likelihood.
    mass, friction : float or dict
        Base mass M and friction C: scalars or per-site floats/arrays (diagonal).
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
    init_strategy : callable
        A Pyro init strategy, e.g. :func:`~pyro.infer.autoguide.init_to_median`.
    transforms : dict, optional
        Constrained → unconstrained transforms to use instead of the supports'.

    Examples
    --------
    >>> from pyro.infer import MCMC
    >>> from ppl_kernels.pyro import SGHMC
    >>> mcmc = MCMC(SGHMC(model, step_size=1e-3), num_samples=1000, warmup_steps=500)  # doctest: +SKIP
    >>> mcmc.run(X, y)  # doctest: +SKIP
    >>> mcmc.diagnostics()["theta_sq_norm"]  # doctest: +SKIP
    """

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
        init_strategy=init_to_uniform,
        transforms=None,
    ):
        if (model is None) == (potential_fn is None):
            raise ValueError("give exactly one of model and potential_fn")
        self.config = SGHMCConfig(
            step_size=step_size, num_steps=num_steps, temperature=temperature, tempering=tempering,
            mass=mass, friction=friction, boost=boost, friction_scale=friction_scale,
            resample_scale=resample_scale, explore_noise=explore_noise,
        )
        if potential_fn is not None and self.config.tempering == "likelihood":
            raise ValueError("tempering='likelihood' needs a model (a potential_fn has no separate likelihood)")
        self.model = model
        self.potential_fn = potential_fn
        self.init_strategy = init_strategy
        self.transforms = transforms
        self.plates: list = []
        self._initial_params = None
        self._reset()

    def _reset(self):
        self._static = None
        self._state = None
        self._samplers = {}
        self._warmup_steps = 0
        self._stats = {name: [] for name in STAT_FIELDS}
        self._last = {}

    # -- MCMCKernel interface ----------------------------------------------------------
    @property
    def initial_params(self):
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params):
        self._initial_params = params

    def setup(self, warmup_steps, *args, **kwargs):
        self._reset()
        self._warmup_steps = warmup_steps
        cfg = self.config
        if self.model is not None:
            self.plates = _m.find_subsample_plates(self.model, args, kwargs)
            sites = _m.latent_sites(self.model, args, kwargs, self.plates, self.init_strategy)
            if self.transforms is None:
                self.transforms = _m.transforms_of(sites)
            if self._initial_params is None:
                self._initial_params = {k: self.transforms[k](s["value"]).detach() for k, s in sites.items()}
            self._samplers = {p.name: _m.EpochSampler(p.size, p.subsample_size) for p in self.plates}
            model, transforms, weight = self.model, self.transforms, cfg.likelihood_weight

            def log_parts(z):
                idx = {name: s() for name, s in self._samplers.items()}
                lik, prior = _m.log_joint_parts(model, args, kwargs, transforms, z, idx)
                return -(weight * lik + prior), lik + prior
        else:
            if self._initial_params is None:
                raise ValueError("initial_params must be given with potential_fn")
            self.transforms = self.transforms or {}
            potential_fn = self.potential_fn

            def log_parts(z):
                u = potential_fn(z)
                return u, -u

        z0 = {k: v.detach() for k, v in self._initial_params.items()}
        shapes = {k: tuple(v.shape) for k, v in z0.items()}
        as_tensor = lambda v, like: torch.as_tensor(v, dtype=like.dtype, device=like.device)  # noqa: E731
        mass = {k: as_tensor(v, z0[k]) for k, v in resolve_site_values("mass", cfg.mass, shapes).items()}
        friction = {k: as_tensor(v, z0[k]) for k, v in resolve_site_values("friction", cfg.friction, shapes).items()}
        inv_mass, fric = dynamics.effective_coefficients(mass, friction, cfg.boost, cfg.friction_scale)
        dim = sum(v.numel() for v in z0.values())
        self._static = _Static(cfg, inv_mass, fric, mass, dim, _value_and_grad(log_parts))
        self._state = sghmc_init(self._static, z0)

    def sample(self, params):
        state = self._state
        if any(params[k] is not state.z[k] for k in state.z):
            # The caller moved the chain (e.g. a new MCMC run): restart from ``params``.
            u, lp, grad = self._static.value_and_grad(params)
            state = state._replace(z={k: v.detach() for k, v in params.items()}, grad=grad, potential_energy=u, lp=lp)
        self._state, stats = sghmc_draw(self._static, state)
        self._last = stats
        if state.i >= self._warmup_steps:
            for name in STAT_FIELDS:
                self._stats[name].append(stats[name])
        return self._state.z

    def logging(self):
        s = self._last
        return OrderedDict(
            [("T", self.config.temperature), ("|θ|²", "{:.3g}".format(s.get("theta_sq_norm", math.nan))),
             ("T_kin", "{:.3g}".format(s.get("kinetic_temperature", math.nan)))]
        )

    def diagnostics(self):
        """Per-draw statistics of the sampling phase (tensors of length num_samples),
        plus ``divergences`` (indices of diverging draws, as :class:`pyro.infer.HMC`)."""
        dtypes = {"float": torch.float64, "int": torch.int64, "bool": torch.bool}
        out = {name: torch.tensor(self._stats[name], dtype=dtypes[kind]) for name, kind in STAT_FIELDS.items()}
        out["divergences"] = [i for i, d in enumerate(self._stats["diverging"]) if d]
        return out

    def cleanup(self):
        self._static = None

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_static"] = None
        d["_state"] = None
        return d


def _value_and_grad(log_parts):
    """Wrap ``z -> (Ũ, lp)`` into ``z -> (Ũ, lp, ∇Ũ)`` with no graph kept."""

    def value_and_grad(z):
        zg = {k: v.detach().requires_grad_(True) for k, v in z.items()}
        u, lp = log_parts(zg)
        grads = torch.autograd.grad(u, list(zg.values()), allow_unused=True)
        grad = {k: (torch.zeros_like(zg[k]) if g is None else g.detach()) for k, g in zip(zg, grads)}
        return u.detach(), lp.detach(), grad

    return value_and_grad
