"""Tempered, norm-adjusting SGHMC as a :class:`numpyro.infer.mcmc.MCMCKernel`.

The twin of :mod:`ppl_kernels.pyro.kernel`: a thin shell over the pure
functions of :mod:`ppl_kernels.numpyro.integrator`, with the constructor,
validation and docstring of :class:`ppl_kernels.config.KernelArguments`.
"""

from __future__ import annotations

import jax
import numpy as np
from jax import random
from numpyro.handlers import seed, substitute, trace
from numpyro.infer.initialization import init_to_uniform
from numpyro.infer.mcmc import MCMCKernel
from numpyro.util import is_prng_key

from .. import adaptation, dynamics, enumeration
from ..config import STAT_FIELDS, KernelArguments, frozen_now, nonfinite_start_error, warn_frozen_chain
from . import epochs, integrator
from . import model as _m

__all__ = ["SGHMC"]


_HOST_DOC = """\
    forward_mode_differentiation : bool
        As for :class:`numpyro.infer.NUTS`: take the gradient by forward-mode
        differentiation (for models that reverse mode cannot differentiate, such as
        one with a ``jax.lax.while_loop``); slower when there are many latent
        dimensions.
"""


class SGHMC(KernelArguments, MCMCKernel):
    host_options = {"forward_mode_differentiation": False}
    sample_field = "z"
    default_init_strategy = staticmethod(init_to_uniform)
    __doc__ = KernelArguments.docstring(
        host="NumPyro", package="ppl_kernels.numpyro", nuts="numpyro.infer.NUTS", hmc="numpyro.infer.HMC",
        plate="numpyro.plate", init_params="give ``init_params`` to :meth:`numpyro.infer.MCMC.run`", extra=_HOST_DOC,
        example="""\
    >>> from numpyro.infer import MCMC
    >>> from ppl_kernels.numpyro import SGHMC
    >>> mcmc = MCMC(SGHMC(model), num_warmup=500, num_samples=1000)  # doctest: +SKIP
    >>> mcmc.run(jax.random.PRNGKey(0), X, y)  # doctest: +SKIP
    >>> mcmc.get_extra_fields()["theta_sq_norm"]  # doctest: +SKIP""",
    )

    def __init__(self, model=None, potential_fn=None, **kwargs):
        super().__init__(model, potential_fn, **kwargs)
        self.static = None
        self._sample_fn = None
        self._postprocess = None

    # -- MCMCKernel interface ----------------------------------------------------------
    @property
    def default_fields(self):
        return tuple(STAT_FIELDS)

    def get_diagnostics_str(self, state):
        return "|θ|²={:.3g}, T_kin={:.3g}".format(float(state.theta_sq_norm), float(state.kinetic_temperature))

    def _setup(self, rng_key, num_warmup, model_args, model_kwargs, init_params):
        cfg = self.config
        if self.model is not None:
            self.plates = _m.find_subsample_plates(self.model, model_args, model_kwargs, self.init_strategy)
            sites, summed, nesting = _m.latent_sites(self.model, model_args, model_kwargs, self.plates, self.init_strategy)
            self.transforms = _m.transforms_of(sites)
            if init_params is None:
                init_params = self._initial_params(rng_key, model_args, model_kwargs, sites)
            target = enumeration.Enumerated.over(self.model, nesting, self.plates) if summed else self.model
            parts = dynamics.tempered_potential(_m.log_joint_parts, target, self.transforms, cfg.likelihood_weight)
            parts, step_plates = self._fed(parts)
            one_chain = init_params if is_prng_key(rng_key) else jax.tree.map(lambda x: x[0], init_params)
            _m.check_plates_used(parts, one_chain, step_plates, model_args, model_kwargs)
        else:
            potential_fn, init_params, unflatten = self.potential_fn, *_as_sites(init_params)
            self._postprocess = (lambda *args, **kwargs: unflatten) if unflatten is not None else None

            def parts(z, indices, model_args, model_kwargs):
                u = potential_fn(z if unflatten is None else unflatten(z))
                return u, -u

            step_plates = self.plates
        z_example = init_params if is_prng_key(rng_key) else jax.tree.map(lambda x: x[0], init_params)
        self.static = integrator.make_static(cfg, parts, z_example, step_plates, num_warmup,
                                             forward_mode=self.forward_mode_differentiation)
        return init_params

    def _initial_params(self, rng_key, model_args, model_kwargs, sites):
        fixed = substitute(self.model, data=epochs.first_indices(self.plates))

        def one(key):
            tr = trace(substitute(seed(fixed, key), substitute_fn=self.init_strategy)).get_trace(*model_args, **model_kwargs)
            # jnp.asarray: init_to_value may hold Python floats
            return {k: self.transforms[k](jax.numpy.asarray(tr[k]["value"])) for k in sites}

        return one(rng_key) if is_prng_key(rng_key) else jax.vmap(one)(rng_key)

    def init(self, rng_key, num_warmup, init_params=None, model_args=(), model_kwargs=None):
        model_args, model_kwargs = _device_arrays((model_args, model_kwargs or {}))
        if self.potential_fn is not None and init_params is None:
            raise ValueError("init_params must be given with potential_fn")
        vectorized = not is_prng_key(rng_key)
        if vectorized:
            key_init, rng_key = jax.numpy.swapaxes(jax.vmap(random.split)(rng_key), 0, 1)
        else:
            key_init, rng_key = random.split(rng_key)
        init_params = self._setup(key_init, num_warmup, model_args, model_kwargs, init_params)
        static = self.static

        def init_fn(z, key):
            return integrator.sghmc_init(static, z, key, model_args, model_kwargs)

        def sample_fn(state, args, kwargs):
            return integrator.sghmc_sample(static, state, args, kwargs)

        if vectorized:
            state = jax.vmap(init_fn)(init_params, rng_key)
            sample_fn = jax.vmap(sample_fn, in_axes=(0, None, None))
        else:
            state = init_fn(init_params, rng_key)
        self._check_start(state)
        self._sample_fn = _warning_while_running(sample_fn, num_warmup, self.config, static.layout.size)
        if self.model is not None:
            self._postprocess = self._make_postprocess()
        return state

    @staticmethod
    def _check_start(state):
        """Raise at set-up if the start is not finite (skipped under a trace: pmap'ed chains)."""
        if isinstance(state.potential_energy, jax.core.Tracer):
            return
        bad = [k for k, g in state.grad.items() if not np.isfinite(np.asarray(g)).all()]
        if bad or not np.isfinite(np.asarray(state.potential_energy)).all():
            raise nonfinite_start_error(bad)

    def _make_postprocess(self):
        from numpyro.infer.util import constrain_fn

        model, plates = self.model, self.plates

        def make(*args, **kwargs):
            def constrain(z):
                # the indices are made here, at call time: set-up may run under pmap, and an array
                # made there and kept in this closure would be a leaked tracer
                fixed = substitute(model, data=epochs.first_indices(plates))
                return constrain_fn(seed(fixed, rng_seed=0), args, kwargs, z, return_deterministic=True)

            return constrain

        return make

    def adapted(self, state):
        """The step size, mass and friction the chain samples with (adapted during warmup,
        else as given), per site, with the gradient-noise estimate and the warmup trace
        (:func:`ppl_kernels.numpyro.integrator.adapted`), from a state such as
        ``mcmc.last_state``; a list, one per chain, for the state of several chains."""
        if self.static is None:
            raise RuntimeError("the kernel has not been set up: run MCMC first")
        if jax.numpy.ndim(state.i) == 0:
            return integrator.adapted(self.static, state)
        return [integrator.adapted(self.static, jax.tree.map(lambda x, c=c: x[c], state))
                for c in range(jax.numpy.shape(state.i)[0])]

    def postprocess_fn(self, model_args, model_kwargs):
        if self._postprocess is None:
            return lambda z: z
        model_args, model_kwargs = _device_arrays((model_args, model_kwargs))
        return self._postprocess(*model_args, **model_kwargs)

    def sample(self, state, model_args, model_kwargs):
        if self._sample_fn is None:
            raise RuntimeError("init must be called before sample")
        # (under MCMC's jit this runs once, at trace time)
        model_args, model_kwargs = _device_arrays((model_args, model_kwargs))
        return self._sample_fn(state, model_args, model_kwargs)

    def __getstate__(self):
        d = self.__dict__.copy()
        d["_sample_fn"] = None
        d["static"] = None
        d["_postprocess"] = None
        return d


def _warning_while_running(sample_fn, num_warmup, cfg, dim):
    """``sample_fn`` that also warns when a chain freezes
    (:func:`ppl_kernels.config.warn_frozen_chain`), when the kinetic-temperature check
    finds a miss (:func:`ppl_kernels.adaptation.warn_kinetic`) and when the adapted step
    mixes slowly (:func:`ppl_kernels.adaptation.warn_slow`).  The host call sits behind
    a ``cond`` on all chains at once: kept outside the kernel's own ``vmap`` its predicate
    is a scalar, so the call (about 0.1 ms) is made only when a chain has something to
    report, not at every draw."""

    def report(frozen, hot, slow, step_size, draw, sums):
        frozen, hot, slow, step_size, draw = (np.asarray(v) for v in (frozen, hot, slow, step_size, draw))
        sums = np.stack([np.asarray(v) for v in sums], -1)
        single = frozen.ndim == 0
        for c in range(1 if single else frozen.shape[0]):
            at = () if single else (c,)
            chain = None if single else c
            if frozen[at]:
                warn_frozen_chain(int(draw[at]), float(step_size[at]), chain=chain)
            if hot[at]:
                adaptation.warn_kinetic(sums[at], int(draw[at]) + 1 - num_warmup, dim, chain=chain)
            if slow[at]:
                adaptation.warn_slow(cfg, float(step_size[at]), chain=chain)

    def sample(state, model_args, model_kwargs):
        new = sample_fn(state, model_args, model_kwargs)
        kept = new.i // cfg.thinning
        frozen = frozen_now(new.divergence_run, kept - num_warmup)
        hot = adaptation.kinetic_found(state.kinetic_check, new.kinetic_check)
        slow = adaptation.slow_now(cfg, num_warmup, new.step_size, kept - num_warmup, jax.numpy) & (dim > 0)
        jax.lax.cond(jax.numpy.any(frozen | hot | slow),
                     lambda: jax.debug.callback(report, frozen, hot, slow, new.step_size, kept - 1, new.kinetic_check),
                     lambda: None)
        return new

    return sample


def _device_arrays(tree):
    """NumPy arrays in the model's arguments as JAX arrays: a subsampled plate indexes its
    data with traced indices (``X[idx]``), which a NumPy array refuses."""
    return jax.tree.map(lambda x: jax.numpy.asarray(x) if isinstance(x, np.ndarray) else x, tree)


def _as_sites(params):
    """``potential_fn`` parameters as the kernel's dict of sites: a dict as it is, any other
    pytree (an array, a tuple, ...) as its leaves ``params`` (one leaf) or ``params_0``,
    ``params_1``, ...; returns ``(sites, unflatten)``, ``unflatten`` ``None`` for a dict."""
    if isinstance(params, dict):
        return params, None
    leaves, treedef = jax.tree.flatten(params)
    names = ["params"] if len(leaves) == 1 else [f"params_{i}" for i in range(len(leaves))]

    def unflatten(z):
        return jax.tree.unflatten(treedef, [z[n] for n in names])

    return dict(zip(names, leaves)), unflatten
