"""``ppl-kernels bench``: the cost of one SGHMC integrator step, side by side.

Each kernel is measured in one run against

- the physical limit, one bare jitted (JAX) or eager (PyTorch) gradient of the
  same minibatch potential in a loop, alone and with the ``d`` Gaussian draws
  the injected noise needs (``bare gradient + noise draw``, the true floor);
- what users would pick instead: BlackJAX ``sghmc`` and NumPyro ``HMC`` for
  JAX, the ``posteriors`` library's SGHMC and Pyro ``HMC`` for PyTorch.  The
  HMC rows run the full-data model (both hosts' HMC refuse subsampled plates)
  and are reported per gradient.

Workloads (``W4`` is meant for ``benchmarks/gpu.sh``):

====  =====================================================  ======  ======
name  model                                                  N       B
====  =====================================================  ======  ======
W1    Bayesian MLP 64-100-100-10, sklearn digits             1797    128
W2    Bayesian MLP 784-400-400-10, synthetic                 10 000  256
W3    Bayesian logistic regression, d = 50, synthetic        10 000  100
W4    Bayesian MLP 784-1200-1200-10, synthetic               60 000  1000
====  =====================================================  ======  ======

Each backend runs in its own child process (so peak RSS is per backend and
the libraries do not share a process); inside it the methods of a workload are
timed in interleaved rounds, so that a machine whose load drifts slows them
all alike.  Every call is timed on the wall clock and on the process CPU
clock; the first call of each method (compilation, tracing, setup) is reported
apart as ``compile_s`` and excluded from the per-step figures.

Extra sections: ms/step against N at fixed B (``scaling``; the kernels' epoch
permutation makes a step O(B), the hosts' plates permute all N), memory per
stored draw with thinning and site selection (``storage``), and the JAX noise
under the ``rbg`` / ``unsafe_rbg`` PRNG implementations.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

__all__ = ["WORKLOADS", "Workload", "make_data", "run", "main", "render_markdown"]


# --------------------------------------------------------------------------------------
# workloads and data


@dataclass(frozen=True)
class Workload:
    """One benchmark problem: a model family, its sizes and its data."""

    name: str
    title: str
    kind: str  # "mlp" or "logistic"
    sizes: tuple  # layer widths (mlp) or (d,) (logistic)
    n: int
    batch: int
    data: str  # "digits" or "synthetic"
    step_size: float

    def param_shapes(self) -> dict[str, tuple]:
        if self.kind == "logistic":
            return {"w": (self.sizes[0],)}
        shapes = {}
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            shapes[f"w{i}"] = (a, b)
            shapes[f"b{i}"] = (b,)
        return shapes

    @property
    def dim(self) -> int:
        return sum(int(np.prod(s)) for s in self.param_shapes().values())

    def with_n(self, n: int) -> "Workload":
        return Workload(f"{self.name}-N{n:g}", self.title, self.kind, self.sizes, n, self.batch, self.data, self.step_size)


WORKLOADS: dict[str, Workload] = {
    "W1": Workload("W1", "Bayesian MLP 64-100-100-10 on digits", "mlp", (64, 100, 100, 10), 1797, 128, "digits", 1e-3),
    "W2": Workload("W2", "Bayesian MLP 784-400-400-10, synthetic", "mlp", (784, 400, 400, 10), 10_000, 256, "synthetic", 3e-4),
    "W3": Workload("W3", "logistic regression d=50, synthetic", "logistic", (50,), 10_000, 100, "synthetic", 1e-3),
    "W4": Workload("W4", "Bayesian MLP 784-1200-1200-10, synthetic", "mlp", (784, 1200, 1200, 10), 60_000, 1000, "synthetic", 1e-4),
}

#: Install hints for the anchors that may be missing.
INSTALL_HINTS = {
    "blackjax": "pip install blackjax",
    "posteriors": "pip install posteriors  (check with `pip install --dry-run posteriors` that it keeps your torch)",
    "numpyro": "pip install 'ppl-kernels[numpyro]'",
    "pyro": "pip install 'ppl-kernels[pyro]'",
}


def make_data(wl: Workload, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Float32 inputs and integer labels (class index, or 0/1 for logistic)."""
    rng = np.random.default_rng(seed)
    if wl.data == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.data / 16.0).astype(np.float32), d.target.astype(np.int32)
    X = rng.standard_normal((wl.n, wl.sizes[0]), dtype=np.float32)
    if wl.kind == "logistic":
        w = rng.standard_normal(wl.sizes[0]) / math.sqrt(wl.sizes[0])
        y = rng.random(wl.n) < 1.0 / (1.0 + np.exp(-(X @ w)))
        return X, y.astype(np.int32)
    # labels from a random teacher network, so the classes are learnable
    W = rng.standard_normal((wl.sizes[0], wl.sizes[-1])) / math.sqrt(wl.sizes[0])
    return X, np.argmax(X @ W + 0.5 * rng.standard_normal((wl.n, wl.sizes[-1])), axis=1).astype(np.int32)


def init_params(wl: Workload, seed: int = 1) -> dict[str, np.ndarray]:
    """A small random starting point (Glorot-like scale), the same for every method."""
    rng = np.random.default_rng(seed)
    return {
        k: (rng.standard_normal(s) / math.sqrt(s[0] if len(s) == 2 else 1e4)).astype(np.float32)
        for k, s in wl.param_shapes().items()
    }


def forward(wl: Workload, params: dict, x, tanh):
    """Logits of the MLP / logistic model; array-library agnostic (``@``, ``+``, ``tanh``)."""
    if wl.kind == "logistic":
        return x @ params["w"]
    h = x
    layers = len(wl.sizes) - 1
    for i in range(layers):
        h = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < layers - 1:
            h = tanh(h)
    return h


def potential_parts(wl: Workload, tanh, softplus, log_softmax_pick):
    """Hand-written ``(loglik, logprior, potential)`` of the workload's model, for
    either array library (the three functions supply its non-operator pieces).

    ``potential(params, x, y)`` is the minibatch estimate ``-(log p(θ) + N/B Σ log
    p(y|x, θ))``, the same number the kernels get from the model with a subsampled plate.
    """
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def loglik(params, x, y):
        logits = forward(wl, params, x, tanh)
        if wl.kind == "logistic":
            return y * logits - softplus(logits)
        return log_softmax_pick(logits, y)

    def logprior(params):
        return sum((-0.5 * v * v - half_log_2pi).sum() for v in params.values())

    def potential(params, x, y):
        return -(logprior(params) + (wl.n / x.shape[0]) * loglik(params, x, y).sum())

    return loglik, logprior, potential


# --------------------------------------------------------------------------------------
# timing harness (backend independent)


@dataclass
class Method:
    """A measured method: ``call()`` does ``units`` steps (or gradients) and blocks."""

    name: str
    role: str  # limit | floor | anchor | kernel | variant
    make: Callable[[int], Callable[[], Any]] | None = None
    units: int = 0
    unit: str = "step"
    note: str = ""
    status: str = "ok"
    hint: str = ""
    check: Callable[[], dict] | None = None
    wall: dict = field(default_factory=dict)
    cpu: dict = field(default_factory=dict)
    compile_s: float = math.nan
    peak_rss_mb: float = math.nan
    calls: dict = field(default_factory=dict)


def _rss_reset() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _rss_peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _timed(fn) -> tuple[float, float]:
    w, c = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - w, time.process_time() - c


def _log(msg: str) -> None:
    """One progress line on stderr (stdout carries the table)."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def measure(methods: list[Method], repeats: int, slope: bool = True) -> None:
    """Compile every method once, then time ``repeats`` interleaved rounds.

    With ``slope`` each method runs at two sizes, ``units`` and ``3 * units``
    steps, and the cost per step is the difference over the extra steps: the
    fixed cost of one call (NumPyro's ``MCMC.run`` re-traces its loop and
    re-initialises the kernel at every call, Pyro's sets the kernel up) is
    then reported apart as ``overhead_ms_per_call`` instead of being spread over
    the steps.
    """
    sizes = lambda m: (m.units, 3 * m.units) if slope else (m.units,)  # noqa: E731
    for m in methods:
        if m.status != "ok":
            continue
        _rss_reset()
        try:
            for u in sizes(m):
                m.calls[u] = m.make(u)
                m.wall[u], m.cpu[u] = [], []
                first = _timed(m.calls[u])[0]
                if u == m.units:
                    m.compile_s = first
        except Exception as e:  # an anchor that fails must not sink the run
            m.status, m.note = "error", f"{type(e).__name__}: {e}"[:300]
            continue
        m.peak_rss_mb = _rss_peak_mb()
        _log(f"{m.name}: first calls {m.compile_s:.1f} s")
    live = [m for m in methods if m.status == "ok"]
    for r in range(repeats):
        for m in live:
            for u in sizes(m):
                _rss_reset()
                w, c = _timed(m.calls[u])
                m.peak_rss_mb = max(m.peak_rss_mb, _rss_peak_mb())
                m.wall[u].append(w)
                m.cpu[u].append(c)
            # a run cut short (a time limit) still leaves its figures in the log
            _log(f"round {r + 1}/{repeats} {m.name}: {_per_step(m.wall, m.units)[0][-1]:.4g} ms/{m.unit}")
    for m in live:
        # the first call ran the same work as the others, plus compilation
        m.compile_s = max(m.compile_s - statistics.median(m.wall[m.units]), 0.0)
        m.calls = {}  # free the compiled loops and their data


def _per_step(times: dict, units: int) -> tuple[list, float]:
    """Per-step times (ms) of each round and the fixed cost of one call (ms)."""
    if len(times) == 1:
        return [1e3 * t / units for t in times[units]], 0.0
    small, large = times[units], times[3 * units]
    per = [1e3 * (tl - ts) / (2 * units) for ts, tl in zip(small, large)]
    return per, 1e3 * statistics.median(small) - units * statistics.median(per)


def _summary(per: list) -> dict:
    if not per:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": statistics.median(per), "min": min(per), "max": max(per)}


def records(workload: Workload, backend: str, methods: list[Method]) -> list[dict]:
    out = []
    for m in methods:
        rec = {
            "workload": workload.name, "backend": backend, "method": m.name, "role": m.role, "unit": m.unit,
            "status": m.status, "note": m.note, "hint": m.hint, "units_per_call": m.units,
            "calls": sum(len(v) for v in m.wall.values()), "compile_s": m.compile_s, "peak_rss_mb": m.peak_rss_mb,
        }
        if m.status == "ok":
            wall, overhead = _per_step(m.wall, m.units)
            cpu, cpu_overhead = _per_step(m.cpu, m.units)
            rec.update(ms_per_step=_summary(wall), cpu_ms_per_step=_summary(cpu), overhead_ms_per_call=overhead,
                       cpu_overhead_ms_per_call=cpu_overhead)
            if m.check is not None:
                rec["check"] = m.check()
        out.append(rec)
    return out


def _skipped(name: str, role: str, package: str, unit: str = "step") -> Method:
    return Method(name, role, status="skipped", unit=unit, hint=INSTALL_HINTS[package], note=f"{package} is not installed")


_QUICK_HINT = "run without --quick (a full-data HMC compile outlasts a smoke run)"


def _have(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


#: Longer calls for the rows driven by NumPyro's MCMC.run: each call carries a fixed
#: ~0.3-0.4 s (the sampling loop is re-jitted, here loaded from a persistent cache)
#: whose jitter would swamp the slope of a short call (W3: 2000 steps are ~20 ms of work).
_MCMC_CALLS = {"W1": 4, "W2": 4, "W3": 20}


def _hmc_steps(steps: int, num_steps: int, wl: Workload) -> int:
    """Fixed HMC trajectory length: ``num_steps``, or fewer when a full-data
    gradient is so dear that one draw would outlast the other methods' calls;
    the small call runs one draw of this many gradients."""
    return max(1, min(num_steps, round(steps * wl.batch / wl.n)))


def _draws_for(steps: int, num_steps: int) -> int:
    return max(1, round(steps / num_steps))


# --------------------------------------------------------------------------------------
# JAX / NumPyro side


def _jax_setup_cache():
    """NumPyro's ``MCMC.run`` re-jits its sampling loop at every call; a persistent
    compilation cache turns the repeats' recompilation into a cache load, so the
    repeats measure sampling, not XLA."""
    import jax

    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    old = {k: getattr(jax.config, k) for k in names}
    for k, v in zip(names, (tempfile.mkdtemp(prefix="ppl-bench-jax-"), 0, -1)):
        jax.config.update(k, v)

    def restore():
        for k, v in old.items():
            jax.config.update(k, v)

    return restore


def _jax_pieces(wl: Workload):
    """Hand-written minibatch potential, its ``value_and_grad`` and the NumPyro models."""
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    n, b = wl.n, wl.batch
    shapes = wl.param_shapes()
    loglik, logprior, potential = potential_parts(
        wl, jnp.tanh, jax.nn.softplus, lambda logits, y: jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0]
    )

    def make_model(subsample: bool):
        def model(X, Y):
            params = {k: numpyro.sample(k, dist.Normal(0.0, 1.0).expand(list(s)).to_event(len(s))) for k, s in shapes.items()}
            if subsample:
                with numpyro.plate("data", n, subsample_size=b) as idx:
                    x, y = X[idx], Y[idx]
                    _observe_numpyro(wl, params, x, y)
            else:
                with numpyro.plate("data", n):
                    _observe_numpyro(wl, params, X, Y)

        return model

    return loglik, logprior, potential, make_model


def _observe_numpyro(wl, params, x, y):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    logits = forward(wl, params, x, jnp.tanh)
    d = dist.Bernoulli(logits=logits) if wl.kind == "logistic" else dist.Categorical(logits=logits)
    numpyro.sample("y", d, obs=y)


def _jax_bare(wl: Workload, X, Y, theta0, potential, noise: bool, impl: str = "threefry2x32"):
    """``make(length)`` of the physical limit: ``length`` jitted value_and_grad steps of the
    hand-written potential on successive slices of one fixed permutation (no reshuffle),
    optionally with the ``d`` standard normal draws of the injected noise."""
    import jax
    import jax.numpy as jnp
    from jax import lax, random
    from jax.flatten_util import ravel_pytree

    n, b = wl.n, wl.batch
    flat0, unravel = ravel_pytree(theta0)
    vg = jax.value_and_grad(potential)
    perm = random.permutation(random.PRNGKey(7), n).astype(jnp.int32)
    starts = n - b + 1

    # the loop length is an argument: one compilation serves both timed sizes
    @jax.jit
    def loop(theta, key, X, Y, length):
        def step(i, carry):
            theta, key = carry
            idx = lax.dynamic_slice(perm, ((i * b) % starts,), (b,))
            u, g = vg(theta, X[idx], Y[idx])
            if noise:
                key, k = random.split(key)
                xi = unravel(random.normal(k, flat0.shape, flat0.dtype))
                theta = jax.tree.map(lambda t, gg, z: t - 1e-9 * gg + 1e-6 * z, theta, g, xi)
            else:
                theta = jax.tree.map(lambda t, gg: t - 1e-9 * gg, theta, g)
            return theta, key

        return lax.fori_loop(0, length, step, (theta, key))

    key = random.key(0, impl=impl)
    return lambda length: lambda: jax.block_until_ready(loop(theta0, key, X, Y, length))


def _jax_methods(wl: Workload, num_steps: int, steps: int, prng_impls: tuple, quick: bool) -> list[Method]:
    import jax
    import jax.numpy as jnp
    from jax import lax, random
    from numpyro.infer import HMC, MCMC

    from .numpyro import SGHMC

    Xn, Yn = make_data(wl)
    X, Y = jnp.asarray(Xn), jnp.asarray(Yn)
    n, b, eps = wl.n, wl.batch, wl.step_size
    loglik, logprior, potential, make_model = _jax_pieces(wl)
    theta0 = {k: jnp.asarray(v) for k, v in init_params(wl).items()}
    perm = random.permutation(random.PRNGKey(7), n).astype(jnp.int32)
    starts = n - b + 1

    bare = lambda noise, impl="threefry2x32": _jax_bare(wl, X, Y, theta0, potential, noise, impl)  # noqa: E731

    out = [Method("bare gradient (jit value_and_grad, fori_loop)", "limit", bare(False), steps,
                  note="minibatch gather + value_and_grad + SGD update")]
    for impl in ("threefry2x32",) + tuple(prng_impls):
        name = "bare gradient + noise draw" + ("" if impl == "threefry2x32" else f" [{impl}]")
        out.append(Method(name, "floor" if impl == "threefry2x32" else "variant", bare(True, impl), steps,
                          note=f"one N(0, I_d) draw per step, d={wl.dim}, PRNG {impl}"))

    draws = _draws_for(steps, num_steps)
    if _have("blackjax"):
        import blackjax

        def bj_loglik(position, batch):
            x, y = batch
            return loglik(position, x[None], y[None])[0]

        sghmc = blackjax.sghmc(blackjax.sgmcmc.gradients.grad_estimator(logprior, bj_loglik, n), num_integration_steps=num_steps)

        @jax.jit
        def bj_loop(theta, key, X, Y, draws):
            def one(i, carry):
                theta, key = carry
                key, k = random.split(key)
                idx = lax.dynamic_slice(perm, ((i * b) % starts,), (b,))
                return sghmc.step(k, theta, (X[idx], Y[idx]), eps), key

            return lax.fori_loop(0, draws, one, (theta, key))

        def bj_make(units):
            return lambda: jax.block_until_ready(bj_loop(theta0, random.PRNGKey(1), X, Y, units // num_steps))

        out.append(Method("BlackJAX sghmc (fori_loop)", "anchor", bj_make, draws * num_steps,
                          note=f"num_integration_steps={num_steps}: one minibatch and one momentum draw per {num_steps} steps"))
    else:
        out.append(_skipped("BlackJAX sghmc (fori_loop)", "anchor", "blackjax"))

    def mcmc_make(kernel_fn, key, last=None, per_draw=num_steps):
        def make(units):
            mcmc = MCMC(kernel_fn(), num_warmup=0, num_samples=units // per_draw, progress_bar=False, jit_model_args=True)

            def call():
                mcmc.run(key, X, Y, init_params=theta0)
                jax.block_until_ready(mcmc.get_samples())
                if last is not None:
                    last["mcmc"] = mcmc

            return call

        return make

    # HMC refuses subsampled plates: the full-data model, reported per gradient
    hmc_steps = _hmc_steps(steps, num_steps, wl)
    full_model = make_model(False)
    hmc = lambda: HMC(full_model, step_size=eps / 10, num_steps=hmc_steps, adapt_step_size=False, adapt_mass_matrix=False)  # noqa: E731
    long = _MCMC_CALLS.get(wl.name, 1)
    out.append(Method("NumPyro HMC, full data (per gradient)", "anchor", mcmc_make(hmc, random.PRNGKey(2), per_draw=hmc_steps),
                      long * hmc_steps, unit="gradient", status="skipped" if quick else "ok", hint=_QUICK_HINT if quick else "",
                      note=f"num_steps={hmc_steps}; all N={n} points per gradient: HMC refuses subsampled plates"))

    model = make_model(True)
    # the kernel's PRNG variant is measured with rbg only (unsafe_rbg's noise rows show the same cost)
    for impl in ("threefry2x32",) + tuple(prng_impls)[:1]:
        last: dict = {}

        def check(last=last):
            return {"diverging_fraction": float(np.mean(np.asarray(last["mcmc"].get_extra_fields()["diverging"])))}

        kern = lambda: SGHMC(model, step_size=eps, num_steps=num_steps)  # noqa: E731
        name = "ppl_kernels.numpyro.SGHMC (MCMC)" + ("" if impl == "threefry2x32" else f" [{impl} key]")
        out.append(Method(name, "kernel" if impl == "threefry2x32" else "variant",
                          mcmc_make(kern, random.key(3, impl=impl), last), long * draws * num_steps, check=check,
                          note=f"num_steps={num_steps}; mcmc.run(jax.random.key(seed, impl={impl!r}), ...)"))
    out[0].check = lambda: {"potential_matches_model": _jax_potential_check(wl, X, Y, theta0, potential, model)}
    return out


def _jax_potential_check(wl, X, Y, theta, potential, model) -> float:
    """Relative difference between the hand-written potential and the model's."""
    import jax.numpy as jnp
    from numpyro.handlers import substitute
    from numpyro.infer.util import log_density

    idx = jnp.arange(wl.batch)
    lp, _ = log_density(substitute(model, data={"data": idx}), (X, Y), {}, theta)
    u = potential(theta, X[idx], Y[idx])
    return float(abs(u + lp) / max(abs(float(lp)), 1.0))


def _host_steps(steps: int, n: int) -> int:
    """The hosts' plates permute all N per step: fewer steps for large N."""
    return max(10, min(steps, steps * 10_000 // n))


def _jax_scaling(base: Workload, ns: list, num_steps: int, steps: int) -> list[Method]:
    """Kernel ms/step against N, and the host plate's own subsampling (bare gradient)."""
    import jax
    import jax.numpy as jnp
    from jax import lax, random
    from numpyro.handlers import seed
    from numpyro.infer import MCMC
    from numpyro.infer.util import log_density

    from .numpyro import SGHMC

    out = []
    draws = _draws_for(steps, num_steps)
    for n in ns:
        wl = base.with_n(n)
        Xn, Yn = make_data(wl, seed=n)
        X, Y = jnp.asarray(Xn), jnp.asarray(Yn)
        model = _jax_pieces(wl)[3](True)
        theta0 = {k: jnp.asarray(v) for k, v in init_params(wl).items()}

        def kernel_make(units, model=model, X=X, Y=Y, theta0=theta0, wl=wl):
            mcmc = MCMC(SGHMC(model, step_size=wl.step_size, num_steps=num_steps), num_warmup=0,
                        num_samples=units // num_steps, progress_bar=False, jit_model_args=True)

            def call():
                mcmc.run(random.PRNGKey(0), X, Y, init_params=theta0)
                jax.block_until_ready(mcmc.get_samples())

            return call

        # A compiled step of this small model costs ~0.07 ms: the call must be long enough
        # for its slope to rise above the jitter of MCMC.run's fixed cost (~1 s).
        out.append(Method(f"ppl_kernels.numpyro.SGHMC N={n:g}", "kernel", kernel_make, 25 * draws * num_steps))
        # the floor at this N: random rows of a large X miss the caches, for every method alike
        out.append(Method(f"bare gradient + noise draw N={n:g}", "floor",
                          _jax_bare(wl, X, Y, theta0, _jax_pieces(wl)[2], True), 25 * draws * num_steps))

        def u(theta, key, X, Y, model=model):
            # the plate draws its own subsample from the seed
            return -log_density(seed(model, key), (X, Y), {}, theta)[0]

        vg = jax.value_and_grad(u)

        def host_make(units, vg=vg, theta0=theta0, X=X, Y=Y):
            @jax.jit
            def loop(theta, key, X, Y):
                def step(theta, k):
                    val, g = vg(theta, k, X, Y)
                    return jax.tree.map(lambda t, gg: t - 1e-9 * gg, theta, g), val

                return lax.scan(step, theta, random.split(key, units))

            return lambda: jax.block_until_ready(loop(theta0, random.PRNGKey(1), X, Y))

        out.append(Method(f"NumPyro plate subsampling, bare gradient N={n:g}", "anchor", host_make, _host_steps(steps, n)))
    return out


def _jax_storage(wl: Workload, num_steps: int, draws: int, quick: bool = False) -> list[dict]:
    """Bytes per stored draw: all sites, thinning, and dropping sites via ``~z.site``."""
    import jax
    import jax.numpy as jnp
    from jax import random
    from numpyro.infer import MCMC

    from .numpyro import SGHMC

    Xn, Yn = make_data(wl)
    X, Y = jnp.asarray(Xn), jnp.asarray(Yn)
    model = _jax_pieces(wl)[3](True)
    theta0 = {k: jnp.asarray(v) for k, v in init_params(wl).items()}
    big = sorted(wl.param_shapes(), key=lambda k: -int(np.prod(wl.param_shapes()[k])))[:2]
    rows = []
    for label, thinning, extra in [
        ("all sites", 1, ()),
        ("thinning=5", 5, ()),
        (f"drop {', '.join(big)} (extra_fields=~z.site)", 1, tuple(f"~z.{s}" for s in big)),
    ][: 2 if quick else 3]:
        mcmc = MCMC(SGHMC(model, step_size=wl.step_size, num_steps=num_steps), num_warmup=0, num_samples=draws,
                    thinning=thinning, progress_bar=False, jit_model_args=True)
        _rss_reset()
        base = _rss_peak_mb()
        mcmc.run(random.PRNGKey(0), X, Y, init_params=theta0, extra_fields=extra)
        samples = mcmc.get_samples()
        fields = mcmc.get_extra_fields()
        jax.block_until_ready(samples)
        stored = sum(int(v.nbytes) for v in samples.values()) + sum(int(v.nbytes) for v in fields.values())
        kept = len(next(iter(fields.values())))
        rows.append({"backend": "numpyro", "workload": wl.name, "storage": label, "draws_run": draws, "draws_kept": kept,
                     "bytes_per_kept_draw": stored / kept, "bytes_per_draw_run": stored / draws,
                     "peak_rss_growth_mb": _rss_peak_mb() - base})
    return rows


# --------------------------------------------------------------------------------------
# PyTorch / Pyro side


def _torch_pieces(wl: Workload):
    import pyro
    import pyro.distributions as dist
    import torch

    n, b = wl.n, wl.batch
    shapes = wl.param_shapes()
    loglik, logprior, potential = potential_parts(
        wl, torch.tanh, torch.nn.functional.softplus, lambda logits, y: torch.log_softmax(logits, -1).gather(1, y[:, None])[:, 0]
    )

    def observe(params, x, y):
        logits = forward(wl, params, x, torch.tanh)
        d = dist.Bernoulli(logits=logits) if wl.kind == "logistic" else dist.Categorical(logits=logits)
        pyro.sample("y", d, obs=y.to(logits.dtype) if wl.kind == "logistic" else y)

    def make_model(subsample: bool):
        def model(X, Y):
            params = {
                k: pyro.sample(k, dist.Normal(torch.zeros(()), torch.ones(())).expand(list(s)).to_event(len(s)))
                for k, s in shapes.items()
            }
            if subsample:
                with pyro.plate("data", n, subsample_size=b) as idx:
                    observe(params, X[idx], Y[idx])
            else:
                with pyro.plate("data", n):
                    observe(params, X, Y)

        return model

    return loglik, logprior, potential, make_model


def _torch_data(wl, seed=0):
    import torch

    Xn, Yn = make_data(wl, seed)
    X = torch.from_numpy(Xn)
    Y = torch.from_numpy(Yn).long() if wl.kind == "mlp" else torch.from_numpy(Yn).float()
    return X, Y


def _torch_methods(wl: Workload, num_steps: int, steps: int, quick: bool) -> list[Method]:
    import pyro
    import torch
    from pyro.infer import HMC, MCMC

    from .pyro import SGHMC

    X, Y = _torch_data(wl)
    n, b, eps = wl.n, wl.batch, wl.step_size
    loglik, logprior, potential, make_model = _torch_pieces(wl)
    theta0 = {k: torch.from_numpy(v) for k, v in init_params(wl).items()}
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(7))
    starts = n - b + 1
    numels = [v.numel() for v in theta0.values()]

    def minibatch(i):
        j = (i * b) % starts
        idx = perm[j : j + b]
        return X[idx], Y[idx]

    def bare(noise):
        def make(units):
            def call():
                theta = {k: v.clone().requires_grad_(True) for k, v in theta0.items()}
                for i in range(units):
                    u = potential(theta, *minibatch(i))
                    grads = torch.autograd.grad(u, list(theta.values()))
                    with torch.no_grad():
                        if noise:
                            xi = torch.randn(wl.dim).split(numels)
                            for t, g, z in zip(theta.values(), grads, xi):
                                t.add_(g, alpha=-1e-9).add_(z.view_as(t), alpha=1e-6)
                        else:
                            for t, g in zip(theta.values(), grads):
                                t.add_(g, alpha=-1e-9)

            return call

        return make

    out = [
        Method("bare gradient (torch.autograd.grad loop)", "limit", bare(False), steps,
               note="minibatch gather + forward + backward + SGD update"),
        Method("bare gradient + noise draw", "floor", bare(True), steps, note=f"one torch.randn(d) per step, d={wl.dim}"),
    ]

    draws = _draws_for(steps, num_steps)
    if _have("posteriors"):
        import posteriors

        def log_post(params, batch):
            return -potential(params, *batch), torch.tensor([])

        transform = posteriors.sgmcmc.sghmc.build(log_post, lr=eps, alpha=1.0, sigma=1.0, temperature=1.0)

        def post_make(units):
            def call():
                state = transform.init({k: v.clone() for k, v in theta0.items()})
                for i in range(units):
                    state, _ = transform.update(state, minibatch(i))

            return call

        out.append(Method("posteriors sghmc", "anchor", post_make, draws * num_steps,
                          note="posteriors.sgmcmc.sghmc.build(...).update per step (inplace=False, its default)"))
    else:
        out.append(_skipped("posteriors sghmc", "anchor", "posteriors"))

    def mcmc_make(kernel_fn, last=None, per_draw=num_steps):
        def make(units):
            def call():
                pyro.set_rng_seed(3)
                mcmc = MCMC(kernel_fn(), num_samples=units // per_draw, warmup_steps=0, disable_progbar=True,
                            initial_params={k: v.clone() for k, v in theta0.items()})
                mcmc.run(X, Y)
                if last is not None:
                    last["mcmc"] = mcmc

            return call

        return make

    hmc_steps = _hmc_steps(steps, num_steps, wl)
    full_model = make_model(False)
    hmc = lambda: HMC(full_model, step_size=eps / 10, num_steps=hmc_steps, adapt_step_size=False, adapt_mass_matrix=False)  # noqa: E731
    out.append(Method("Pyro HMC, full data (per gradient)", "anchor", mcmc_make(hmc, per_draw=hmc_steps), hmc_steps,
                      unit="gradient", status="skipped" if quick else "ok", hint=_QUICK_HINT if quick else "", note=f"num_steps={hmc_steps}; all N={n} points per gradient: HMC refuses subsampled plates"))

    model = make_model(True)
    last: dict = {}

    def check():
        return {"diverging_fraction": float(np.mean([np.mean(d["diverging"].numpy()) for d in last["mcmc"]._diagnostics]))}

    kern = lambda: SGHMC(model, step_size=eps, num_steps=num_steps)  # noqa: E731
    out.append(Method("ppl_kernels.pyro.SGHMC (MCMC)", "kernel", mcmc_make(kern, last), draws * num_steps, check=check,
                      note=f"num_steps={num_steps}"))
    kern_jit = lambda: SGHMC(model, step_size=eps, num_steps=num_steps, jit_compile=True, ignore_jit_warnings=True)  # noqa: E731
    out.append(Method("ppl_kernels.pyro.SGHMC (MCMC) [jit_compile]", "variant", mcmc_make(kern_jit), draws * num_steps,
                      note=f"num_steps={num_steps}; potential traced once with torch.jit.trace (setup in the fixed cost)"))
    out[0].check = lambda: {"potential_matches_model": _torch_potential_check(wl, X, Y, theta0, potential, model)}
    return out


def _torch_potential_check(wl, X, Y, theta, potential, model) -> float:
    import torch
    from pyro import poutine

    idx = torch.arange(wl.batch)
    tr = poutine.trace(poutine.condition(model, data={**theta, "data": idx})).get_trace(X, Y)
    lp = float(tr.log_prob_sum(lambda name, site: name != "data"))
    u = float(potential(theta, X[idx], Y[idx]))
    return abs(u + lp) / max(abs(lp), 1.0)


def _torch_scaling(base: Workload, ns: list, num_steps: int, steps: int) -> list[Method]:
    import pyro
    import torch
    from pyro import poutine
    from pyro.infer import MCMC

    from .pyro import SGHMC

    out = []
    draws = _draws_for(steps, num_steps)
    for n in ns:
        wl = base.with_n(n)
        X, Y = _torch_data(wl, seed=n)
        model = _torch_pieces(wl)[3](True)
        theta0 = {k: torch.from_numpy(v) for k, v in init_params(wl).items()}

        def kernel_make(units, model=model, X=X, Y=Y, theta0=theta0, wl=wl):
            def call():
                pyro.set_rng_seed(0)
                mcmc = MCMC(SGHMC(model, step_size=wl.step_size, num_steps=num_steps), num_samples=units // num_steps,
                            warmup_steps=0, disable_progbar=True, initial_params={k: v.clone() for k, v in theta0.items()})
                mcmc.run(X, Y)

            return call

        out.append(Method(f"ppl_kernels.pyro.SGHMC N={n:g}", "kernel", kernel_make, draws * num_steps))

        def host_make(units, model=model, X=X, Y=Y, theta0=theta0):
            def call():
                theta = {k: v.clone().requires_grad_(True) for k, v in theta0.items()}
                for _ in range(units):
                    # the plate draws its own subsample
                    tr = poutine.trace(poutine.condition(model, data=theta)).get_trace(X, Y)
                    grads = torch.autograd.grad(-tr.log_prob_sum(), list(theta.values()))
                    with torch.no_grad():
                        for t, g in zip(theta.values(), grads):
                            t.add_(g, alpha=-1e-9)

            return call

        out.append(Method(f"Pyro plate subsampling, bare gradient N={n:g}", "anchor", host_make, _host_steps(steps, n)))
    return out


def _torch_storage(wl: Workload, num_steps: int, draws: int, quick: bool = False) -> list[dict]:
    import pyro
    import torch
    from pyro.infer import MCMC

    from .pyro import SGHMC

    X, Y = _torch_data(wl)
    model = _torch_pieces(wl)[3](True)
    theta0 = {k: torch.from_numpy(v) for k, v in init_params(wl).items()}
    shapes = wl.param_shapes()
    big = sorted(shapes, key=lambda k: -int(np.prod(shapes[k])))[:2]
    rows = []
    for label, thinning, save in [("all sites", 1, None), ("thinning=5", 5, None),
                                  (f"drop {', '.join(big)} (save_params)", 1, [k for k in shapes if k not in big])]:
        pyro.set_rng_seed(0)
        kept = draws // thinning
        mcmc = MCMC(SGHMC(model, step_size=wl.step_size, num_steps=num_steps, thinning=thinning), num_samples=kept,
                    warmup_steps=0, disable_progbar=True, initial_params={k: v.clone() for k, v in theta0.items()},
                    save_params=save)
        _rss_reset()
        base = _rss_peak_mb()
        mcmc.run(X, Y)
        samples = mcmc.get_samples()
        stored = sum(v.numel() * v.element_size() for v in samples.values())
        stats = sum(v.numel() * v.element_size() for v in mcmc._diagnostics[0].values() if torch.is_tensor(v))
        rows.append({"backend": "pyro", "workload": wl.name, "storage": label, "draws_run": kept * thinning,
                     "draws_kept": kept, "bytes_per_kept_draw": (stored + stats) / kept,
                     "bytes_per_draw_run": (stored + stats) / (kept * thinning), "peak_rss_growth_mb": _rss_peak_mb() - base})
    return rows


# --------------------------------------------------------------------------------------
# one backend, in its own process


def _backend_job(backend: str, opts: dict) -> dict:
    """Everything measured for one backend (runs in a child process)."""
    result = {"records": [], "scaling": [], "storage": [], "versions": {}}
    try:
        if backend == "numpyro":
            import jax
            import numpyro

            if not opts["quick"]:
                result["_restore"] = _jax_setup_cache()
            result["versions"] = {"jax": jax.__version__, "numpyro": numpyro.__version__}
            if _have("blackjax"):
                import blackjax

                result["versions"]["blackjax"] = blackjax.__version__
        else:
            import pyro
            import torch

            torch.set_num_threads(max(1, os.cpu_count() or 1))
            result["versions"] = {"torch": torch.__version__, "pyro": pyro.__version__}
            if _have("posteriors"):
                from importlib.metadata import version

                result["versions"]["posteriors"] = version("posteriors")
    except ImportError as e:
        result["records"].append({"backend": backend, "status": "skipped", "method": "all", "note": str(e),
                                  "hint": INSTALL_HINTS[backend]})
        return result

    num_steps, repeats, quick = opts["num_steps"], opts["repeats"], opts["quick"]
    for name in opts["workloads"]:
        wl = WORKLOADS[name]
        steps = opts["steps"].get(f"{backend}:{name}", opts["steps"].get(name, opts["steps"]["default"]))
        if backend == "numpyro":
            prng = tuple(opts["prng"]) if name in opts["prng_workloads"] else ()
            methods = _jax_methods(wl, num_steps, steps, prng, quick)
        else:
            methods = _torch_methods(wl, num_steps, steps, quick)
        measure(methods, repeats, slope=not quick)
        result["records"] += records(wl, backend, methods)
    if opts["scaling"]:
        base = WORKLOADS["W3"]
        steps = opts["steps"]["scaling"]
        methods = (_jax_scaling if backend == "numpyro" else _torch_scaling)(base, opts["scaling"], num_steps, steps)
        measure(methods, repeats, slope=not quick)
        for rec in records(base, backend, methods):
            rec["n"] = int(float(rec["method"].rsplit("N=", 1)[1]))
            result["scaling"].append(rec)
    if opts["storage"]:
        wl = WORKLOADS[opts["storage"]["workload"]]
        fn = _jax_storage if backend == "numpyro" else _torch_storage
        result["storage"] += fn(wl, num_steps, opts["storage"]["draws"], quick)
    result.pop("_restore", lambda: None)()
    return result


def _run_backend(backend: str, opts: dict, isolate: bool) -> dict:
    if not isolate:
        return _backend_job(backend, opts)
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(_backend_job, backend, opts).result()


# --------------------------------------------------------------------------------------
# ratios, targets, report


def add_ratios(recs: list[dict], clock: str = "ms_per_step") -> None:
    """Ratios of medians to the limit, the floor and the fastest anchor of the same
    workload and backend (in place); ``clock`` is ``ms_per_step`` or ``cpu_ms_per_step``."""
    groups: dict[tuple, list] = {}
    for r in recs:
        if r.get("status") == "ok":
            groups.setdefault((r["workload"], r["backend"]), []).append(r)
    for group in groups.values():
        med = lambda role: [r[clock]["median"] for r in group if r["role"] == role]  # noqa: E731
        limit, floor, anchors = med("limit"), med("floor"), med("anchor")
        for r in group:
            m = r[clock]["median"]
            r["ratio_to_bare_gradient"] = m / limit[0] if limit else None
            r["ratio_to_gradient_plus_noise"] = m / floor[0] if floor else None
            r["ratio_to_best_anchor"] = m / min(anchors) if anchors else None


def targets(recs: list[dict], clock: str) -> list[dict]:
    """The issue's targets, checked per workload."""
    out = []
    by = {(r["workload"], r["backend"], r["method"]): r for r in recs if r.get("status") == "ok"}
    workloads = sorted({r["workload"] for r in recs if "workload" in r})
    med = lambda key: by[key][clock]["median"] if key in by else None  # noqa: E731
    for w in workloads:
        k = med((w, "numpyro", "ppl_kernels.numpyro.SGHMC (MCMC)"))
        floor = med((w, "numpyro", "bare gradient + noise draw"))
        bj = med((w, "numpyro", "BlackJAX sghmc (fori_loop)"))
        p = med((w, "pyro", "ppl_kernels.pyro.SGHMC (MCMC)"))
        pj = med((w, "pyro", "ppl_kernels.pyro.SGHMC (MCMC) [jit_compile]"))
        grad = med((w, "pyro", "bare gradient (torch.autograd.grad loop)"))
        post = med((w, "pyro", "posteriors sghmc"))
        for name, num, den, limit in [
            ("NumPyro kernel <= 1.15 x (bare gradient + noise draw)", k, floor, 1.15),
            ("NumPyro kernel no slower than BlackJAX sghmc", k, bj, 1.0),
            ("Pyro kernel <= 1.5 x bare PyTorch gradient", p, grad, 1.5),
            ("Pyro kernel no slower than posteriors", p, post, 1.0),
            ("Pyro kernel, jit_compile=True <= 1.5 x bare PyTorch gradient", pj, grad, 1.5),
            ("Pyro kernel, jit_compile=True no slower than posteriors", pj, post, 1.0),
        ]:
            if num is None or den is None:
                out.append({"workload": w, "target": name, "ratio": None, "met": None})
            else:
                out.append({"workload": w, "target": name, "ratio": num / den, "met": bool(num / den <= limit)})
    return out


def _fmt(x, digits=3):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def render_markdown(report: dict) -> str:
    """The report as markdown tables."""
    clock = report["meta"]["clock"]
    lines = [
        "# ppl-kernels benchmark",
        "",
        f"{report['meta']['cpu']}; {report['meta']['cpus']} CPUs; load average at start {report['meta']['loadavg']}; "
        f"num_steps = {report['meta']['num_steps']}; ratios on the {clock.replace('_', ' ')} medians; "
        f"{report['meta']['repeats']} timed calls per method after one compile/warm-up call.",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in sorted(report["meta"]["versions"].items())),
        "",
    ]
    for w in report["meta"]["workloads"]:
        wl = WORKLOADS[w]
        lines += [f"## {w}: {wl.title} (N={wl.n}, B={wl.batch}, d={wl.dim})", "",
                  "| backend | method | ms/step median [min, max] | CPU ms/step | × bare grad | × grad+noise | × best anchor | compile s | peak RSS MB | note |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in report["results"]:
            if r.get("workload") != w:
                continue
            if r["status"] != "ok":
                lines.append(f"| {r['backend']} | {r['method']} | {r['status']} | | | | | | | {r['note']}; {r['hint']} |")
                continue
            ms, cpu = r["ms_per_step"], r["cpu_ms_per_step"]
            unit = " (per gradient)" if r["unit"] == "gradient" else ""
            note = r["note"] + ("; " + ", ".join(f"{k}={_fmt(v)}" for k, v in r["check"].items()) if r.get("check") else "")
            lines.append(
                f"| {r['backend']} | {r['method']}{'' if unit in r['method'] else unit} | {_fmt(ms['median'])} [{_fmt(ms['min'])}, {_fmt(ms['max'])}] "
                f"| {_fmt(cpu['median'])} | {_fmt(r.get('ratio_to_bare_gradient'))} | {_fmt(r.get('ratio_to_gradient_plus_noise'))} "
                f"| {_fmt(r.get('ratio_to_best_anchor'))} | {_fmt(r['compile_s'])} | {_fmt(r['peak_rss_mb'], 4)} | {note} |"
            )
        lines.append("")
    if report["targets"]:
        lines += ["## Targets", "", "| workload | target | ratio | met |", "|---|---|---|---|"]
        for t in report["targets"]:
            met = "–" if t["met"] is None else ("yes" if t["met"] else "no")
            lines.append(f"| {t['workload']} | {t['target']} | {_fmt(t['ratio'])} | {met} |")
        lines.append("")
    if report["scaling"]:
        lines += [f"## ms/step against N (W3 model, B={WORKLOADS['W3'].batch})", "",
                  "| backend | method | N | ms/step median [min, max] | CPU ms/step |", "|---|---|---|---|---|"]
        for r in sorted(report["scaling"], key=lambda r: (r["backend"], r["role"], r["n"])):
            if r["status"] != "ok":  # a failed row is shown, never dropped
                lines.append(f"| {r['backend']} | {r['method'].rsplit(' N=', 1)[0]} | {r['n']:.0e} | {r['status']}: "
                             f"{r['note'][:120]} | |")
                continue
            ms = r["ms_per_step"]
            lines.append(f"| {r['backend']} | {r['method'].rsplit(' N=', 1)[0]} | {r['n']:.0e} | {_fmt(ms['median'])} "
                         f"[{_fmt(ms['min'])}, {_fmt(ms['max'])}] | {_fmt(r['cpu_ms_per_step']['median'])} |")
        lines.append("")
    if report["storage"]:
        lines += ["## Memory per stored draw", "",
                  "| backend | workload | storage | draws run / kept | bytes per kept draw | bytes per draw run | peak RSS growth MB |",
                  "|---|---|---|---|---|---|---|"]
        for r in report["storage"]:
            lines.append(f"| {r['backend']} | {r['workload']} | {r['storage']} | {_fmt(r['draws_run'])} / {_fmt(r['draws_kept'])} "
                         f"| {_fmt(r['bytes_per_kept_draw'], 6)} | {_fmt(r['bytes_per_draw_run'], 6)} | {_fmt(r['peak_rss_growth_mb'])} |"
                         + (f" {r['note']}" if r.get("note") else ""))
        lines.append("")
    return "\n".join(lines)


def _options(args) -> dict:
    quick = args.quick
    workloads = args.workloads or (["W3"] if quick else ["W1", "W2", "W3"])
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise ValueError(f"workloads must be among {sorted(WORKLOADS)}, got {unknown}")
    backends = args.backends or ["numpyro", "pyro"]
    bad = [b for b in backends if b not in ("numpyro", "pyro")]
    if bad:
        raise ValueError(f"backends must be among ('numpyro', 'pyro'), got {bad}")
    if args.num_steps < 1:
        raise ValueError(f"num_steps must be a positive integer, got {args.num_steps}")
    if args.repeats < 1:
        raise ValueError(f"repeats must be a positive integer, got {args.repeats}")
    if args.steps is not None and args.steps < args.num_steps:
        raise ValueError(f"steps must be at least num_steps={args.num_steps}, got {args.steps}")
    # steps in the small timed call (the large one has 3x): ~0.3 s on two idle cores
    # ("pyro:W1": Pyro's calls have no re-jit jitter to outlast, so they can be shorter)
    steps = {"default": 40, "scaling": 40} if quick else {
        "W1": 500, "W2": 50, "W3": 2000, "W4": 100, "pyro:W1": 250, "pyro:W3": 500, "default": 200, "scaling": 400}
    if args.steps is not None:
        steps = {"default": args.steps, "scaling": steps["scaling"]}
    scaling = [] if args.no_scaling else ([1_000, 10_000] if quick else [1_000, 10_000, 100_000, 1_000_000])
    storage = None if args.no_storage else {"workload": "W3" if quick else "W2", "draws": 20 if quick else 100}
    prng = [] if args.no_prng else (["rbg"] if quick else ["rbg", "unsafe_rbg"])
    return {"quick": quick, "workloads": workloads, "backends": backends, "num_steps": args.num_steps,
            "repeats": args.repeats, "steps": steps, "scaling": scaling, "storage": storage, "prng": prng,
            "prng_workloads": workloads if quick else ["W1", "W4"]}


def run(opts: dict, isolate: bool = True, clock: str = "ms_per_step") -> dict:
    """Run the benchmark described by ``opts`` (see :func:`main`) and return the report dict."""
    t0 = time.perf_counter()
    report = {
        "meta": {
            "cpu": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a",
            "python": platform.python_version(), "num_steps": opts["num_steps"], "repeats": opts["repeats"],
            "quick": opts["quick"], "workloads": opts["workloads"], "clock": clock, "versions": {},
        },
        "results": [], "scaling": [], "storage": [],
    }
    for backend in opts["backends"]:
        res = _run_backend(backend, opts, isolate)
        report["meta"]["versions"].update(res["versions"])
        report["results"] += res["records"]
        report["scaling"] += res["scaling"]
        report["storage"] += res["storage"]
    add_ratios(report["results"], clock)
    report["targets"] = targets(report["results"], clock)
    report["meta"]["elapsed_s"] = time.perf_counter() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``ppl-kernels bench``; returns the exit status."""
    p = argparse.ArgumentParser(prog="ppl-kernels bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="seconds-long smoke run (W3, few steps)")
    p.add_argument("--workloads", nargs="+", metavar="W", help=f"among {sorted(WORKLOADS)} (default W1 W2 W3)")
    p.add_argument("--backends", nargs="+", metavar="B", help="numpyro and/or pyro (default both)")
    p.add_argument("--num-steps", type=int, default=10, help="integrator steps per draw (default 10)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per method (default 3, quick 2)")
    p.add_argument("--steps", type=int, default=None,
                   help="integrator steps in the small timed call of every workload (default: per workload, "
                        "sized for ~0.3 s on two CPU cores; raise it on a GPU)")
    p.add_argument("--clock", choices=["wall", "cpu"], default="wall", help="which clock the ratios use")
    p.add_argument("--no-scaling", action="store_true", help="skip the ms/step-against-N section")
    p.add_argument("--no-storage", action="store_true", help="skip the memory-per-draw section")
    p.add_argument("--no-prng", action="store_true", help="skip the rbg / unsafe_rbg rows")
    p.add_argument("--no-isolate", action="store_true", help="run the backends in this process")
    p.add_argument("--out", default="bench-results", help="folder for bench.json and bench.md")
    args = p.parse_args(argv)
    if args.repeats is None:
        args.repeats = 2 if args.quick else 3
    opts = _options(args)
    report = run(opts, isolate=not args.no_isolate, clock="ms_per_step" if args.clock == "wall" else "cpu_ms_per_step")
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "bench.json"), "w") as f:
        json.dump(report, f, indent=1, default=float)
    md = render_markdown(report)
    with open(os.path.join(args.out, "bench.md"), "w") as f:
        f.write(md + "\n")
    print(md)
    print(f"\nwritten: {os.path.join(args.out, 'bench.json')}, {os.path.join(args.out, 'bench.md')} "
          f"({report['meta']['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
