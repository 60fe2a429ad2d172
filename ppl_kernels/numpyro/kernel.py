"""Tempered, norm-adjusting SGHMC as a :class:`numpyro.infer.mcmc.MCMCKernel`.

The kernel class is a thin shell over two pure functions, :func:`sghmc_init`
and :func:`sghmc_draw`, which work on an :data:`SGHMCState` namedtuple.  One
draw runs its ``num_steps`` integrator steps inside a single ``lax.scan``.
"""

from __future__ import annotations

from collections import namedtuple

import jax
import jax.numpy as jnp
from jax import lax, random
from jax.flatten_util import ravel_pytree
from numpyro.handlers import seed, substitute, trace
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.mcmc import MCMCKernel
from numpyro.util import is_prng_key

from .. import dynamics
from ..config import STAT_FIELDS, SGHMCConfig, resolve_site_values
from ..schedules import EXPLORE
from . import model as _m

__all__ = ["SGHMC", "SGHMCState", "sghmc_init", "sghmc_draw", "sghmc_sample"]

SGHMCState = namedtuple(
    "SGHMCState",
    ["i", "z", "r", "grad", "potential_energy", *STAT_FIELDS, "batch", "rng_key"],
)
SGHMCState.__doc__ = """State of :class:`SGHMC`.

- **i** - draw index (warmup and sampling together), drives the schedules.
- **z** - latent values in unconstrained space (dict site -> array).
- **r** - momentum, same structure as ``z``.
- **grad** - ∇Ũ(z) of the dynamics' potential at ``z`` (carried for the half kick).
- **potential_energy** - the dynamics' potential Ũ(z) (likelihood / T in likelihood tempering).
- the per-draw statistics of ``DESIGN.md`` (``lp`` ... ``diverging``).
- **batch** - per subsampled plate ``(base permutation, (stride, offset, batches left))``,
  the epoch state of :func:`ppl_kernels.numpyro.model.epoch_indices`.
- **rng_key** - random key.
"""


def _normal_like(key, tree):
    # One draw for the whole raveled state: a key split and a PRNG call per site
    # cost ~17% of a step on a digits MLP (benchmarks/_experiments/numpyro_patch.py).
    flat, unravel = ravel_pytree(tree)
    return unravel(random.normal(key, flat.shape, flat.dtype))


def _all_finite(*trees):
    ok = jnp.array(True)
    for t in trees:
        for x in jax.tree.leaves(t):
            ok = ok & jnp.all(jnp.isfinite(x))
    return ok


class _Static(namedtuple("_Static", ["cfg", "inv_mass", "friction", "mass", "dim", "plates", "value_and_grad"])):
    """Everything a draw needs that is not state (closed over, never traced)."""


def _renew_draws(plates, key, shape=()):
    """Uniform stride indices and offsets for epochs that may start during a draw
    (drawn once per draw: two PRNG calls per plate, none per step)."""
    out = {}
    for p, k in zip(plates, random.split(key, max(len(plates), 1))):
        ka, ko = random.split(k)
        table = _m.stride_table(p.size, p.subsample_size)
        out[p.name] = (random.randint(ka, shape, 0, table.shape[0], jnp.int32), random.randint(ko, shape, 0, p.size, jnp.int32))
    return out


def _next_batch(plates, bases, counters, renew):
    """Minibatch indices of every subsampled plate and the advanced epoch counters."""
    idx, new = {}, {}
    for p in plates:
        idx[p.name], new[p.name] = _m.epoch_indices(bases[p.name], counters[p.name], p.subsample_size, renew[p.name])
    return idx, new


def sghmc_init(static: _Static, z, rng_key, model_args=(), model_kwargs=None, i=0):
    """Initial :data:`SGHMCState` at unconstrained ``z``: momentum drawn from
    ``N(0, α T M)`` (the stationary law), gradient from a first minibatch."""
    cfg = static.cfg
    key_r, key_perm, key_b, key = random.split(rng_key, 4)
    keys = random.split(key_perm, max(len(static.plates), 1))
    epochs = {p.name: _m.init_epochs(k, p.size) for p, k in zip(static.plates, keys)}
    bases = {name: e[0] for name, e in epochs.items()}
    idx, counters = _next_batch(static.plates, bases, {name: e[1] for name, e in epochs.items()},
                                _renew_draws(static.plates, key_b))
    batch = {name: (bases[name], counters[name]) for name in bases}
    (u, lp), grad = static.value_and_grad(z, idx, model_args, model_kwargs or {})
    xi = _normal_like(key_r, z)
    r = dynamics.resampled_momentum(xi, cfg.boost * cfg.noise_temperature, static.mass)
    stats = dynamics.draw_statistics(z, r, grad, static.inv_mass, static.dim)
    return SGHMCState(
        i=jnp.array(i, jnp.int32), z=z, r=r, grad=grad, potential_energy=u, lp=lp, **stats,
        step_size=jnp.asarray(cfg.step_size.value(0, jnp), jnp.result_type(float)),
        resample_scale=jnp.asarray(jnp.nan if cfg.resample_scale is None else cfg.resample_scale.value(0, jnp), jnp.result_type(float)),
        phase=jnp.array(0, jnp.int32), diverging=jnp.array(False), batch=batch, rng_key=key,
    )


def sghmc_draw(static: _Static, state: SGHMCState, model_args=(), model_kwargs=None, noise=None) -> SGHMCState:
    """One draw: optional momentum resampling with a half kick, then ``num_steps``
    integrator steps in a ``lax.scan``, then the statistics.

    A draw in which θ, r or Ũ becomes non-finite is flagged ``diverging`` and
    the chain stays at the draw's starting point, so no earlier draw is lost.

    ``noise`` (tests only) is a ``(num_steps, ...)`` pytree of the standard
    normal draws ξ to inject instead of fresh ones.
    """
    cfg = static.cfg
    model_kwargs = model_kwargs or {}
    k = state.i
    eps, phase = cfg.step_size(k, jnp)
    key, key_res, key_loop, key_b = random.split(state.rng_key, 4)
    r = state.r
    beta = jnp.nan
    if cfg.resample_scale is not None:
        beta, phase_b = cfg.resample_scale(k, jnp)
        phase = jnp.maximum(phase, phase_b)
        r = dynamics.resampled_momentum(_normal_like(key_res, r), beta, static.mass)
        r = dynamics.half_kick(r, state.grad, eps)
    noise_t = cfg.noise_temperature
    if not cfg.explore_noise:
        noise_t = jnp.where(phase == EXPLORE, 0.0, noise_t)

    def step(carry, xs):
        z, r, grad, u, lp, counters = carry
        key_xi, xi, renew = xs
        z = dynamics.drift(z, r, eps, static.inv_mass)
        idx, counters = _next_batch(static.plates, bases, counters, renew)
        (u, lp), grad = static.value_and_grad(z, idx, model_args, model_kwargs)
        xi = _normal_like(key_xi, r) if xi is None else xi
        r = dynamics.kick(r, grad, eps, static.friction, static.inv_mass, noise_t, xi)
        return (z, r, grad, u, lp, counters), None

    # the base permutations stay out of the step loop's carry: no step copies an O(N) buffer
    bases = {name: b[0] for name, b in state.batch.items()}
    counters = {name: b[1] for name, b in state.batch.items()}
    init = (state.z, r, state.grad, state.potential_energy, state.lp, counters)
    xs = (random.split(key_loop, cfg.num_steps), noise, _renew_draws(static.plates, key_b, (cfg.num_steps,)))
    (z, r, grad, u, lp, counters), _ = lax.scan(step, init, xs, length=cfg.num_steps)
    batch = {name: (bases[name], counters[name]) for name in bases}
    diverging = ~_all_finite(z, r, u)
    keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(diverging, b, a), new, old)  # noqa: E731
    z, r, grad, u, lp = keep((z, r, grad, u, lp), (state.z, state.r, state.grad, state.potential_energy, state.lp))
    stats = dynamics.draw_statistics(z, r, grad, static.inv_mass, static.dim)
    dtype = jnp.result_type(float)
    return SGHMCState(
        i=k + 1, z=z, r=r, grad=grad, potential_energy=u, lp=lp, **stats,
        step_size=jnp.asarray(eps, dtype), resample_scale=jnp.asarray(beta, dtype),
        phase=jnp.asarray(phase, jnp.int32), diverging=diverging, batch=batch, rng_key=key,
    )


def sghmc_sample(static: _Static, state: SGHMCState, model_args=(), model_kwargs=None) -> SGHMCState:
    """One kept sample: ``thinning`` consecutive draws, the statistics of the last
    one, and ``diverging`` if any of them diverged (a fault is never thinned away)."""
    if static.cfg.thinning == 1:
        return sghmc_draw(static, state, model_args, model_kwargs)

    def one(_, carry):
        state, diverged = carry
        state = sghmc_draw(static, state, model_args, model_kwargs)
        return state, diverged | state.diverging

    state, diverged = lax.fori_loop(0, static.cfg.thinning, one, (state, jnp.array(False)))
    return state._replace(diverging=diverged)


class SGHMC(MCMCKernel):
    """Tempered, norm-adjusting stochastic-gradient HMC for NumPyro.

    A drop-in for :class:`numpyro.infer.NUTS` that also runs models with
    ``numpyro.plate(..., subsample_size=B)``: every integrator step sees a fresh
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
        NumPyro model.  Either ``model`` or ``potential_fn`` is required.
    potential_fn : callable, optional
        ``z -> U(z)`` on unconstrained values (as for :class:`numpyro.infer.HMC`);
        give ``init_params`` to :meth:`numpyro.infer.MCMC.run`.
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
        Draws per kept sample: each :meth:`sample` call runs ``thinning`` draws
        and keeps the last (its statistics; ``diverging`` if any of them
        diverged).  Warmup counts kept samples, as ``num_warmup`` does.  Unlike
        ``MCMC(thinning=...)`` it is also available in Pyro, whose ``MCMC`` has
        none.
    init_strategy : callable
        A NumPyro init strategy, e.g. :func:`~numpyro.infer.init_to_median`.

    Examples
    --------
    >>> from numpyro.infer import MCMC
    >>> from ppl_kernels.numpyro import SGHMC
    >>> mcmc = MCMC(SGHMC(model, step_size=1e-3), num_warmup=500, num_samples=1000)  # doctest: +SKIP
    >>> mcmc.run(jax.random.PRNGKey(0), X, y)  # doctest: +SKIP
    >>> mcmc.get_extra_fields()["theta_sq_norm"]  # doctest: +SKIP
    """

    sample_field = "z"

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
    ):
        if (model is None) == (potential_fn is None):
            raise ValueError("give exactly one of model and potential_fn")
        self.config = SGHMCConfig(
            step_size=step_size, num_steps=num_steps, temperature=temperature, tempering=tempering,
            mass=mass, friction=friction, boost=boost, friction_scale=friction_scale,
            resample_scale=resample_scale, explore_noise=explore_noise, thinning=thinning,
        )
        if potential_fn is not None and self.config.tempering == "likelihood":
            raise ValueError("tempering='likelihood' needs a model (a potential_fn has no separate likelihood)")
        self._model = model
        self._potential_fn = potential_fn
        self._init_strategy = init_strategy
        self._static = None
        self._sample_fn = None
        self._postprocess = None
        self.plates: list = []
        self.transforms: dict = {}

    # -- MCMCKernel interface ----------------------------------------------------------
    @property
    def model(self):
        return self._model

    @property
    def default_fields(self):
        return tuple(STAT_FIELDS)

    def get_diagnostics_str(self, state):
        return "|θ|²={:.3g}, T_kin={:.3g}".format(float(state.theta_sq_norm), float(state.kinetic_temperature))

    def _setup(self, rng_key, model_args, model_kwargs, init_params):
        cfg = self.config
        if self._model is not None:
            self.plates = _m.find_subsample_plates(self._model, model_args, model_kwargs)
            sites = _m.latent_sites(self._model, model_args, model_kwargs, self.plates)
            self.transforms = _m.transforms_of(sites)
            if init_params is None:
                init_params = self._initial_params(rng_key, model_args, model_kwargs, sites)
            model, transforms, weight = self._model, self.transforms, cfg.likelihood_weight

            def log_parts(z, idx, args, kwargs):
                lik, prior = _m.log_joint_parts(model, args, kwargs, transforms, z, idx)
                return -(weight * lik + prior), lik + prior
        else:
            potential_fn = self._potential_fn

            def log_parts(z, idx, args, kwargs):
                u = potential_fn(z)
                return u, -u
        z_example = jax.tree.map(lambda x: x[0], init_params) if not is_prng_key(rng_key) else init_params
        shapes = {k: jnp.shape(v) for k, v in z_example.items()}
        mass = {k: jnp.asarray(v) for k, v in resolve_site_values("mass", cfg.mass, shapes).items()}
        friction = {k: jnp.asarray(v) for k, v in resolve_site_values("friction", cfg.friction, shapes).items()}
        inv_mass, fric = dynamics.effective_coefficients(mass, friction, cfg.boost, cfg.friction_scale)
        dim = sum(int(jnp.size(v)) for v in z_example.values())
        self._static = _Static(cfg, inv_mass, fric, mass, dim, tuple(self.plates), jax.value_and_grad(log_parts, has_aux=True))
        return init_params

    def _initial_params(self, rng_key, model_args, model_kwargs, sites):
        fixed = substitute(self._model, data=_m.first_indices(self.plates))

        def one(key):
            tr = trace(substitute(seed(fixed, key), substitute_fn=self._init_strategy)).get_trace(*model_args, **model_kwargs)
            return {k: self.transforms[k].inv(tr[k]["value"]) for k in sites}

        return one(rng_key) if is_prng_key(rng_key) else jax.vmap(one)(rng_key)

    def init(self, rng_key, num_warmup, init_params=None, model_args=(), model_kwargs={}):
        if self._potential_fn is not None and init_params is None:
            raise ValueError("init_params must be given with potential_fn")
        vectorized = not is_prng_key(rng_key)
        if vectorized:
            key_init, rng_key = jnp.swapaxes(jax.vmap(random.split)(rng_key), 0, 1)
        else:
            key_init, rng_key = random.split(rng_key)
        init_params = self._setup(key_init, model_args, model_kwargs, init_params)
        static = self._static
        init_fn = lambda z, key: sghmc_init(static, z, key, model_args, model_kwargs)  # noqa: E731
        sample_fn = lambda state, args, kwargs: sghmc_sample(static, state, args, kwargs)  # noqa: E731
        if vectorized:
            state = jax.vmap(init_fn)(init_params, rng_key)
            sample_fn = jax.vmap(sample_fn, in_axes=(0, None, None))
        else:
            state = init_fn(init_params, rng_key)
        self._sample_fn = sample_fn
        if self._model is not None:
            self._postprocess = self._make_postprocess()
        return state

    def _make_postprocess(self):
        from numpyro.infer.util import constrain_fn

        fixed = substitute(self._model, data=_m.first_indices(self.plates))

        def make(*args, **kwargs):
            def constrain(z):
                return constrain_fn(seed(fixed, rng_seed=0), args, kwargs, z, return_deterministic=True)

            return constrain

        return make

    def postprocess_fn(self, model_args, model_kwargs):
        if self._postprocess is None:
            return lambda z: z
        return self._postprocess(*model_args, **model_kwargs)

    def sample(self, state, model_args, model_kwargs):
        if self._sample_fn is None:
            raise RuntimeError("init must be called before sample")
        return self._sample_fn(state, model_args, model_kwargs)

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_sample_fn"] = None
        d["_static"] = None
        d["_postprocess"] = None
        return d
