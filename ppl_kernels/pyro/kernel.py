"""Tempered, norm-adjusting SGHMC as a :class:`pyro.infer.mcmc.MCMCKernel`.

The twin of :mod:`ppl_kernels.numpyro.kernel`: the same arguments (validated
by :class:`ppl_kernels.config.SGHMCConfig`), the same integrator
(:mod:`ppl_kernels.dynamics`) and the same statistics.  The kernel class is a
thin shell over :func:`sghmc_init` and :func:`sghmc_draw`, which work on an
:data:`SGHMCState` namedtuple and run eagerly.

Inside a draw, θ, r and ∇Ũ are each one flat tensor (all sites raveled, the
model sees per-site views): the integrator then costs a handful of torch
operations per step whatever the number of sites.  With ``jit_compile=True``
the potential (model trace, log densities, transforms) is traced once with
:func:`torch.jit.trace`, the minibatch indices being inputs of the graph.
"""

from __future__ import annotations

import math
import warnings
from collections import OrderedDict, namedtuple

import pyro
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

_Static = namedtuple("_Static", ["cfg", "inv_mass", "friction", "mass", "dim", "value_and_grad", "layout", "flat"])
_Static.__doc__ = """What a draw needs besides the state.  ``inv_mass``, ``friction`` and ``mass``
are per-site dicts; ``flat`` holds the same three as coefficients of the flat
vector (a float when equal on every site, else a flat tensor);
``value_and_grad`` maps flat θ to ``(Ũ, lp, flat ∇Ũ)``."""
_Flat = namedtuple("_Flat", ["inv_mass", "friction", "mass"])


class _Layout:
    """Sites ↔ one flat vector: ``flatten`` ravels a dict of per-site tensors,
    ``unflatten`` gives per-site views of a flat tensor (autograd flows through
    them into the flat tensor)."""

    def __init__(self, z: dict):
        self.names = list(z)
        self.shapes = [tuple(v.shape) for v in z.values()]
        self.numels = [v.numel() for v in z.values()]

    def flatten(self, tree: dict) -> torch.Tensor:
        return torch.cat([tree[k].reshape(-1) for k in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict:
        return {k: p.view(s) for k, p, s in zip(self.names, flat.split(self.numels), self.shapes)}

    def coefficient(self, per_site: dict):
        """A per-site coefficient of the flat vector: a float if it is the same
        scalar on every site (fewest tensor operations per step), else a flat tensor."""
        values = [per_site[k] for k in self.names]
        if all(v.numel() == 1 for v in values) and len({float(v) for v in values}) == 1:
            return float(values[0])
        return torch.cat([v.expand(s).reshape(-1) for v, s in zip(values, self.shapes)])


def _normal_like(tree):
    return {k: torch.randn_like(v) for k, v in tree.items()}


def _all_finite(*values) -> bool:
    return all(bool(torch.isfinite(v).all()) for v in values)


def sghmc_init(static: _Static, z: dict) -> SGHMCState:
    """Initial state at unconstrained ``z``: momentum drawn from ``N(0, α T M)``."""
    cfg, lay = static.cfg, static.layout
    u, lp, grad = static.value_and_grad(lay.flatten(z))
    xi = lay.flatten(_normal_like(z))
    r = dynamics.resampled_momentum_array(xi, cfg.boost * cfg.noise_temperature, static.flat.mass)
    return SGHMCState(0, {k: v.detach() for k, v in z.items()}, lay.unflatten(r), lay.unflatten(grad), u, lp)


def sghmc_draw(static: _Static, state: SGHMCState, noise=None):
    """One draw; returns ``(new_state, statistics)``.

    Optional momentum resampling with a half kick, then ``num_steps`` integrator
    steps.  A draw in which θ, r or Ũ becomes non-finite is flagged
    ``diverging`` and the chain stays at the draw's starting point.  ``noise``
    (tests only) is a list of ``num_steps`` dicts of standard normal draws ξ.
    """
    cfg, lay = static.cfg, static.layout
    k = state.i
    eps, phase = cfg.step_size(k)
    z, r, grad = lay.flatten(state.z), lay.flatten(state.r), lay.flatten(state.grad)
    beta = math.nan
    if cfg.resample_scale is not None:
        beta, phase_b = cfg.resample_scale(k)
        phase = max(phase, phase_b)
        r = dynamics.resampled_momentum_array(lay.flatten(_normal_like(state.r)), beta, static.flat.mass)
        r = dynamics.half_kick_array(r, grad, eps)
    noise_t = 0.0 if (phase == EXPLORE and not cfg.explore_noise) else cfg.noise_temperature
    u, lp = state.potential_energy, state.lp
    for step in range(cfg.num_steps):
        z = dynamics.drift_array(z, r, eps, static.flat.inv_mass)
        u, lp, grad = static.value_and_grad(z)
        if noise is not None:
            xi = lay.flatten(noise[step])
        else:
            xi = torch.randn_like(z) if noise_t else 0.0  # no noise to inject: no draw
        r = dynamics.kick_array(r, grad, eps, static.flat.friction, static.flat.inv_mass, noise_t, xi)
    if not _all_finite(z, r, u):
        return state._replace(i=k + 1), _statistics(static, state, eps, beta, phase, True)
    new = SGHMCState(k + 1, lay.unflatten(z), lay.unflatten(r), lay.unflatten(grad), u, lp)
    return new, _statistics(static, new, eps, beta, phase, False, flat=(z, r, grad))


def _statistics(static, state, eps, beta, phase, diverging, flat=None):
    lay = static.layout
    z, r, grad = flat if flat is not None else (lay.flatten(state.z), lay.flatten(state.r), lay.flatten(state.grad))
    one = lambda v: {"θ": v}  # noqa: E731  (the statistics sum over the one flat "site")
    raw = dynamics.draw_statistics(one(z), one(r), one(grad), one(static.flat.inv_mass), static.dim)
    stats = {k: float(v) for k, v in raw.items()}
    stats.update(lp=float(state.lp), step_size=float(eps), resample_scale=float(beta), phase=int(phase),
                 diverging=diverging)
    return stats


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
    thinning : int
        Draws per kept sample: each :meth:`sample` call runs ``thinning``
        consecutive draws (the schedules advance per draw) and returns the last;
        its statistics are the last draw's, except ``diverging``, which is true
        if any of the ``thinning`` draws diverged.  Warmup counts
        :meth:`sample` calls, as :class:`pyro.infer.MCMC` does, so it runs
        ``warmup_steps * thinning`` draws.  (``pyro.infer.MCMC`` has no thinning
        of its own.)
    init_strategy : callable
        A Pyro init strategy, e.g. :func:`~pyro.infer.autoguide.init_to_median`.
    transforms : dict, optional
        Constrained → unconstrained transforms to use instead of the supports'.
    jit_compile : bool
        As for :class:`pyro.infer.HMC`: trace the potential (the model with its
        log densities and transforms, or ``potential_fn``) once with
        :func:`torch.jit.trace`, the minibatch indices being inputs of the
        graph, and call the compiled graph at every step.  The model must then
        run the same tensor operations whatever the values of its latents and
        indices (no data-dependent Python control flow); the traced potential
        is checked against the eager one at setup on other latents and indices,
        and on a mismatch or a tracing error the kernel warns and runs eagerly.
        Pyro's validation checks are off inside the compiled graph.
    ignore_jit_warnings : bool
        Silence the tracer's warnings when ``jit_compile=True``.

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
        thinning=1,
        init_strategy=init_to_uniform,
        transforms=None,
        jit_compile=False,
        ignore_jit_warnings=False,
    ):
        if (model is None) == (potential_fn is None):
            raise ValueError("give exactly one of model and potential_fn")
        self.config = SGHMCConfig(
            step_size=step_size, num_steps=num_steps, temperature=temperature, tempering=tempering,
            mass=mass, friction=friction, boost=boost, friction_scale=friction_scale,
            resample_scale=resample_scale, explore_noise=explore_noise, thinning=thinning,
        )
        for name, flag in (("jit_compile", jit_compile), ("ignore_jit_warnings", ignore_jit_warnings)):
            if not isinstance(flag, bool):
                raise ValueError(f"{name} must be True or False, got {flag!r}")
        self.jit_compile = jit_compile
        self.ignore_jit_warnings = ignore_jit_warnings
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
        self._calls = 0
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
            plate_names = [p.name for p in self.plates]

            def parts(z, *idx):
                indices = dict(zip(plate_names, idx))
                lik, prior = _m.log_joint_parts(model, args, kwargs, transforms, lay.unflatten(z), indices)
                return -(weight * lik + prior), lik + prior
        else:
            if self._initial_params is None:
                raise ValueError("initial_params must be given with potential_fn")
            self.transforms = self.transforms or {}
            potential_fn = self.potential_fn

            def parts(z):
                u = potential_fn(lay.unflatten(z))
                return u, -u

        z0 = {k: v.detach() for k, v in self._initial_params.items()}
        lay = _Layout(z0)
        shapes = dict(zip(lay.names, lay.shapes))
        as_tensor = lambda v, like: torch.as_tensor(v, dtype=like.dtype, device=like.device)  # noqa: E731
        mass = {k: as_tensor(v, z0[k]) for k, v in resolve_site_values("mass", cfg.mass, shapes).items()}
        friction = {k: as_tensor(v, z0[k]) for k, v in resolve_site_values("friction", cfg.friction, shapes).items()}
        inv_mass, fric = dynamics.effective_coefficients(mass, friction, cfg.boost, cfg.friction_scale)
        if self.jit_compile:
            parts = _compiled(parts, lay.flatten(z0), self.plates, self.ignore_jit_warnings)
        samplers = list(self._samplers.values())
        log_parts = lambda z: parts(z, *[s() for s in samplers])  # noqa: E731
        flat = _Flat(lay.coefficient(inv_mass), lay.coefficient(fric), lay.coefficient(mass))
        self._static = _Static(cfg, inv_mass, fric, mass, sum(lay.numels), _value_and_grad(log_parts), lay, flat)
        self._state = sghmc_init(self._static, z0)

    def sample(self, params):
        state = self._state
        if any(params[k] is not state.z[k] for k in state.z):
            # The caller moved the chain (e.g. a new MCMC run): restart from ``params``.
            u, lp, grad = self._static.value_and_grad(self._static.layout.flatten(params))
            state = state._replace(z={k: v.detach() for k, v in params.items()},
                                   grad=self._static.layout.unflatten(grad), potential_energy=u, lp=lp)
        diverged = False
        for _ in range(self.config.thinning):
            state, stats = sghmc_draw(self._static, state)
            diverged = diverged or stats["diverging"]
        stats["diverging"] = diverged  # a divergence in a thinned-out draw is never hidden
        self._state, self._last = state, stats
        if self._calls >= self._warmup_steps:
            for name in STAT_FIELDS:
                self._stats[name].append(stats[name])
        self._calls += 1
        return state.z

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
    """Wrap flat ``z -> (Ũ, lp)`` into flat ``z -> (Ũ, lp, ∇Ũ)`` with no graph kept."""

    def value_and_grad(z):
        zg = z.detach().requires_grad_(True)
        u, lp = log_parts(zg)
        (g,) = torch.autograd.grad(u, zg, allow_unused=True)
        return u.detach(), lp.detach(), torch.zeros_like(zg) if g is None else g.detach()

    return value_and_grad


def _check_indices(plates) -> tuple:
    """Indices unlike :func:`~ppl_kernels.pyro.model.first_indices`' (the last B points,
    reversed) to check that a traced potential did not freeze the ones it saw."""
    return tuple(torch.arange(p.size - 1, p.size - p.subsample_size - 1, -1) for p in plates)


def _compiled(parts, z0, plates, ignore_warnings):
    """``parts`` traced by :func:`torch.jit.trace` (flat θ and the plates' index
    tensors as inputs), or ``parts`` itself, with a warning, when tracing fails
    or the traced graph disagrees with ``parts`` at other θ and indices."""
    idx0 = tuple(_m.first_indices(plates).values())
    # Pyro's own jit_compile freezes the param store while tracing: params enter the graph as constants.
    frozen = [p for _, p in pyro.get_param_store().named_parameters() if p.requires_grad]
    try:
        with pyro.validation_enabled(False), warnings.catch_warnings():
            if ignore_warnings:
                warnings.simplefilter("ignore", torch.jit.TracerWarning)
            for p in frozen:
                p.requires_grad_(False)
            traced = torch.jit.trace(parts, (z0, *idx0), check_trace=False)
            # Check at other θ and indices, through the same autograd path as the sampler.
            z1 = z0 + 0.1 * torch.linspace(-1.0, 1.0, z0.numel(), dtype=z0.dtype, device=z0.device)
            args = (z1, *_check_indices(plates))
            got = _value_and_grad(lambda z: traced(z, *args[1:]))(z1)
            want = _value_and_grad(lambda z: parts(z, *args[1:]))(z1)
    except Exception as e:  # noqa: BLE001  (any tracing failure: run eagerly, loudly)
        warnings.warn(f"jit_compile=True: tracing the potential failed ({type(e).__name__}: {e}); "
                      "SGHMC runs it eagerly", RuntimeWarning, stacklevel=3)
        return parts
    finally:
        for p in frozen:
            p.requires_grad_(True)
    for name, a, b in zip(("potential", "log density", "gradient"), got, want):
        if not torch.allclose(a, b, rtol=1e-4, atol=1e-4 * float(b.abs().max().clamp(min=1.0))):
            warnings.warn(f"jit_compile=True: the traced potential's {name} differs from the eager one at other "
                          "latents or minibatch indices (data-dependent control flow in the model?); "
                          "SGHMC runs it eagerly", RuntimeWarning, stacklevel=3)
            return parts
    return traced
