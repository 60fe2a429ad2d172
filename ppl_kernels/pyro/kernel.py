"""Tempered, norm-adjusting SGHMC as a :class:`pyro.infer.mcmc.MCMCKernel`.

The twin of :mod:`ppl_kernels.numpyro.kernel`: a thin shell over the pure
functions of :mod:`ppl_kernels.pyro.integrator`, with the constructor,
validation and docstring of :class:`ppl_kernels.config.KernelArguments`.
Pyro's ``MCMC`` gives ``sample()`` only the current values, so the kernel keeps
the chain's :data:`~ppl_kernels.pyro.integrator.SGHMCState` and the per-draw
statistics of the sampling phase, which :meth:`SGHMC.diagnostics` returns (Pyro
sends them back from every chain, also from worker processes).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import pyro
import torch
from pyro.infer.autoguide.initialization import init_to_uniform
from pyro.infer.mcmc.mcmc_kernel import MCMCKernel

from .. import adaptation, dynamics, enumeration
from ..config import STAT_FIELDS, KernelArguments, frozen_now, nonfinite_start_error, warn_frozen_chain
from . import integrator
from . import model as _m

__all__ = ["SGHMC"]

_JIT_DOC = """\
    transforms : dict, optional
        Constrained → unconstrained transforms to use instead of the supports'.
    max_plate_nesting : int, optional
        As for :class:`pyro.infer.NUTS`: the number of nested plates, left of
        which the discrete latent sites are enumerated to be summed out
        (guessed from one run of the model when not given).
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
"""

_DTYPES = {"float": torch.float64, "int": torch.int64, "bool": torch.bool}


class SGHMC(KernelArguments, MCMCKernel):
    host_options = {"transforms": None, "max_plate_nesting": None, "jit_compile": False, "ignore_jit_warnings": False}
    default_init_strategy = staticmethod(init_to_uniform)
    __doc__ = KernelArguments.docstring(
        host="Pyro", package="ppl_kernels.pyro", nuts="pyro.infer.NUTS", hmc="pyro.infer.HMC", plate="pyro.plate",
        init_params="give ``initial_params`` to :class:`pyro.infer.MCMC`", extra=_JIT_DOC,
        example="""\
    >>> from pyro.infer import MCMC
    >>> from ppl_kernels.pyro import SGHMC
    >>> mcmc = MCMC(SGHMC(model), num_samples=1000, warmup_steps=500)  # doctest: +SKIP
    >>> mcmc.run(X, y)  # doctest: +SKIP
    >>> mcmc.diagnostics()["theta_sq_norm"]  # doctest: +SKIP""",
    )

    def __init__(self, model=None, potential_fn=None, **kwargs):
        super().__init__(model, potential_fn, **kwargs)
        # None until setup, as for Pyro's HMC: then MCMC sets the kernel up to learn them
        self._user_transforms = self.transforms
        self._initial_params = None
        self._continue = None  # (states, num_warmup) set by continue_from
        self._plan_warmup = 0  # the warmup length of the last setup: a continuation's default
        self._reset()

    def _reset(self):
        self.static = None
        self._last_static = None
        self.state = None
        self._args, self._kwargs = (), {}
        self._warmup_steps = 0
        self._calls = 0
        self._stats = {name: [] for name in STAT_FIELDS}

    # -- MCMCKernel interface ----------------------------------------------------------
    @property
    def initial_params(self):
        return self._initial_params

    @initial_params.setter
    def initial_params(self, params):
        self._initial_params = params

    @property
    def post_warmup_state(self):
        """The state(s) the next run continues from (see :meth:`continue_from`), or ``None``."""
        return None if self._continue is None else self._continue[0]

    @post_warmup_state.setter
    def post_warmup_state(self, states):
        self.continue_from(states)

    @property
    def last_state(self):
        """The :data:`~ppl_kernels.pyro.integrator.SGHMCState` of the chain this kernel ran last
        (for every chain of a run, :func:`ppl_kernels.pyro.host.last_states`)."""
        return self.state

    def continue_from(self, states, num_warmup=None):
        """Make the next ``MCMC`` run continue chains exactly where they stopped, as NumPyro's
        ``mcmc.post_warmup_state = mcmc.last_state`` does: draw index (so the schedules),
        momentum, epochs, random stream and adaptation all carry on.

        Parameters
        ----------
        states : ppl_kernels.pyro.integrator.SGHMCState or list of them, or None
            One state per chain (:attr:`last_state`, or
            :func:`ppl_kernels.pyro.host.last_states` of a finished run); ``None`` ends
            the continuation.  With several chains give ``MCMC`` their positions as
            ``initial_params`` (stacked ``state.z``): each chain picks its state by them.
        num_warmup : int, optional
            The warmup length (in samples) of the run that made ``states``, which fixes
            what the adaptation learnt; by default this kernel's last one.

        The continuing ``MCMC`` must have ``warmup_steps=0``.
        """
        if states is None:
            self._continue = None
            return
        states = list(states) if isinstance(states, (list, tuple)) and not hasattr(states, "_fields") else [states]
        if not all(isinstance(s, integrator.SGHMCState) for s in states):
            raise ValueError(f"states must be SGHMCState values (kernel.last_state), got {type(states[0]).__name__}")
        num_warmup = self._plan_warmup if num_warmup is None else num_warmup
        if not isinstance(num_warmup, int) or isinstance(num_warmup, bool) or num_warmup < 0:
            raise ValueError(f"num_warmup must be a non-negative int, got {num_warmup!r}")
        self._continue = (states, num_warmup)

    def _continued_state(self):
        """The continuation state of the chain being set up (matched by its ``initial_params``)."""
        states, _ = self._continue
        if len(states) == 1:
            return states[0]
        if self._initial_params is not None:
            for s in states:
                if all(k in self._initial_params and torch.equal(s.z[k], self._initial_params[k]) for k in s.z):
                    return s
        raise ValueError(f"continuing {len(states)} chains: give MCMC initial_params={{site: stacked state.z}} so that "
                         "each chain finds its state")

    def setup(self, warmup_steps, *args, **kwargs):
        self._reset()
        resumed = None
        if self._continue is not None:
            if warmup_steps != 0:
                raise ValueError(f"warmup_steps must be 0 when continuing from post_warmup_state (the chains are past "
                                 f"their warmup), got {warmup_steps!r}")
            resumed = self._continued_state()
            self._initial_params = dict(resumed.z)
        self._warmup_steps = warmup_steps
        plan_warmup = warmup_steps if resumed is None else self._continue[1]
        self._plan_warmup = plan_warmup
        self._args, self._kwargs = args, kwargs
        cfg = self.config
        if self.model is not None:
            self.plates = _m.find_subsample_plates(self.model, args, kwargs, self.init_strategy)
            sites, summed, nesting = _m.latent_sites(self.model, args, kwargs, self.plates, self.init_strategy,
                                                     self.max_plate_nesting)
            self.transforms = self._user_transforms or _m.transforms_of(sites)
            if self._initial_params is None:
                self._initial_params = {k: self.transforms[k](s["value"]).detach() for k, s in sites.items()}
            target = enumeration.Enumerated.over(self.model, nesting, self.plates) if summed else self.model
            parts = dynamics.tempered_potential(_m.log_joint_parts, target, self.transforms, cfg.likelihood_weight)
            parts, step_plates = self._fed(parts)
            _m.check_plates_used(parts, {k: v.detach() for k, v in self._initial_params.items()}, step_plates, args,
                                 kwargs)
        else:
            if self._initial_params is None:
                raise ValueError("initial_params must be given with potential_fn")
            self.transforms = self._user_transforms or {}
            potential_fn = self.potential_fn

            def parts(z, indices, model_args, model_kwargs):
                u = potential_fn(z)
                return u, -u

            step_plates = self.plates
        z0 = {k: v.detach() for k, v in self._initial_params.items()}
        self.static = integrator.make_static(cfg, parts, z0, step_plates, plan_warmup, jit_compile=self.jit_compile,
                                             ignore_jit_warnings=self.ignore_jit_warnings,
                                             model_args=args, model_kwargs=kwargs)
        if resumed is not None:
            # the same tensors as the ones MCMC hands back, so that sample() sees an unmoved chain
            self.state = resumed._replace(z=self._initial_params)
            return
        # The chain's own random stream, seeded from the global one (pyro.set_rng_seed controls it).
        seed = int(torch.randint(0, 2**62, ()))
        self.state = integrator.sghmc_init(self.static, z0, seed, args, kwargs)
        if not bool(torch.isfinite(self.state.potential_energy)) or not all(
                bool(torch.isfinite(g).all()) for g in self.state.grad.values()):
            raise nonfinite_start_error([k for k, g in self.state.grad.items() if not bool(torch.isfinite(g).all())])

    def sample(self, params):
        state = self.state
        before = state.kinetic_check
        if any(params[k] is not state.z[k] for k in state.z):
            # The caller moved the chain (e.g. a new MCMC run): restart from ``params``.
            z = {k: v.detach() for k, v in params.items()}
            state = integrator.sghmc_move(self.static, state, z, self._args, self._kwargs)
        # No distribution validation inside the steps, in warmup (as Pyro's HMC) and after it: the set-up
        # trace has validated the model and its data, and a wild draw (a non-finite value) is the kernel's to
        # record as diverging and restart from, not a validation error that ends the run.
        with pyro.validation_enabled(False):
            state = integrator.sghmc_sample(self.static, state, self._args, self._kwargs)
        self.state = state
        if self._calls >= self._warmup_steps:
            for name in STAT_FIELDS:
                self._stats[name].append(float(getattr(state, name)))
        self._calls += 1
        kept = state.i // self.config.thinning
        if frozen_now(state.divergence_run, kept - self._warmup_steps):
            warn_frozen_chain(kept - 1, state.step_size)
        if adaptation.kinetic_found(before, state.kinetic_check):
            adaptation.warn_kinetic(state.kinetic_check, kept - self.static.num_warmup, self.static.layout.size)
        if self.static.layout.size and adaptation.slow_now(self.config, self.static.num_warmup, float(state.step_size),
                                                           kept - self.static.num_warmup):
            adaptation.warn_slow(self.config, float(state.step_size))
        return state.z

    def logging(self):
        s = self.state
        return OrderedDict(
            [("T", self.config.temperature), ("|θ|²", "{:.3g}".format(float(s.theta_sq_norm) if s else math.nan)),
             ("T_kin", "{:.3g}".format(float(s.kinetic_temperature) if s else math.nan))]
        )

    def diagnostics(self):
        """Per-draw statistics of the sampling phase (tensors of length num_samples),
        plus ``divergences`` (indices of diverging draws, as :class:`pyro.infer.HMC`)."""
        out = {name: torch.tensor(self._stats[name], dtype=_DTYPES[kind]) for name, kind in STAT_FIELDS.items()}
        out["divergences"] = [i for i, d in enumerate(self._stats["diverging"]) if d]
        if self.state is not None:
            out["adaptation"] = self.adapted()
            out["last_state"] = self.state
        return out

    def adapted(self, state=None) -> dict:
        """The step size, mass and friction the chain samples with (adapted during warmup,
        else as given), per site, with the gradient-noise estimate and the warmup trace
        (:func:`ppl_kernels.pyro.integrator.adapted`).  ``state`` defaults to the chain's
        current one."""
        state = self.state if state is None else state
        if state is None:
            raise RuntimeError("the kernel has not been set up: run MCMC first")
        return integrator.adapted(self.static or self._last_static, state)

    def clear_cache(self):
        """Nothing is cached between draws outside the state (Pyro's test suites call this)."""

    def cleanup(self):
        # As Pyro's HMC: the next chain of a sequential run draws its own initial point
        # (Pyro's MCMC sets a user's initial_params again before each chain's setup).
        if self.static is not None:  # adapted() still reads the finished chain (MCMC may clean up twice)
            self._last_static = self.static
        self.static = None
        self._initial_params = None

    def __getstate__(self):
        d = self.__dict__.copy()
        d["static"] = None
        d["_last_static"] = None
        d["state"] = None
        return d
