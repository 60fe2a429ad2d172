"""JAX rows: the NumPyro kernel, its physical limit and floor, BlackJAX and NumPyro HMC.

=====================  ========  ==========================================================
key                    role      what one call runs
=====================  ========  ==========================================================
``limit``              limit     ``U`` jitted ``value_and_grad`` steps of the hand-written
                                 potential on slices of one fixed permutation
``floor``              floor     the same plus the ``d`` normal draws of the noise
``floor-<impl>``       variant   the floor with an ``rbg`` / ``unsafe_rbg`` key
``blackjax``           anchor    BlackJAX ``sghmc`` in a ``fori_loop``
``hmc``                anchor    NumPyro ``HMC`` on the full-data model, per gradient
``kernel``             kernel    ``numpyro.infer.MCMC(ppl_kernels.numpyro.SGHMC(...))``
``kernel-<impl>``      variant   the kernel run with ``jax.random.key(seed, impl=...)``
=====================  ========  ==========================================================

The kernel rows use only the kernel's public constructor and ``MCMC``, so that
a ``--baseline`` copy of the package runs them unchanged.
"""

from __future__ import annotations

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import workloads as W
from harness import Method, integrator_variants, have, jax_cache_dir, reset_rss, rss_peak_mb, skipped
from jax import lax, random

#: Calls of the rows driven by NumPyro's ``MCMC.run`` are this many times longer: each
#: carries a fixed ~0.3-0.4 s (the sampling loop is re-jitted, here loaded from the
#: persistent cache) whose jitter would swamp the slope of a short call (W3: 2000 steps
#: are ~20 ms of work).
MCMC_CALLS = {"W1": 4, "W2": 4, "W3": 20}

QUICK_HINT = "run without --quick (a full-data HMC compile outlasts a smoke run)"


def prepare_process(opts: dict):
    """Versions, and a persistent compilation cache in a fresh folder.

    NumPyro's ``MCMC.run`` re-jits its sampling loop at every call; the cache
    turns the timed calls' recompilation into a load, so that they measure
    sampling, not XLA (and a smoke run spends its time running, not compiling).
    Returns ``(versions, restore)``; ``restore`` also removes the folder.
    """
    versions = {"jax": jax.__version__, "numpyro": numpyro.__version__}
    if have("blackjax"):
        import blackjax

        versions["blackjax"] = blackjax.__version__
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
             "jax_persistent_cache_min_entry_size_bytes")
    old = {k: getattr(jax.config, k) for k in names}
    folder = jax_cache_dir()
    for k, v in zip(names, (folder, 0, -1)):
        jax.config.update(k, v)

    def restore():
        for k, v in old.items():
            jax.config.update(k, v)
        shutil.rmtree(folder, ignore_errors=True)

    return versions, restore


def steps_for(opts: dict, name: str) -> int:
    """Steps of the small timed call of workload ``name``."""
    steps = opts["steps"]
    return steps.get(f"numpyro:{name}", steps.get(name, steps["default"]))


def _draws(steps: int, num_steps: int) -> int:
    return max(1, round(steps / num_steps))


def _hmc_steps(steps: int, num_steps: int, wl: W.Workload) -> int:
    """Fixed HMC trajectory length: ``num_steps``, or fewer when a full-data gradient
    is so dear that one draw would outlast the other methods' calls."""
    return max(1, min(num_steps, round(steps * wl.batch / wl.n)))


def potential(wl: W.Workload):
    """``(loglik, logprior, potential)`` of the workload in ``jax.numpy``."""
    return W.potential_parts(
        wl, jnp.tanh, jax.nn.softplus,
        lambda logits, y: jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1)[:, 0])


def data(wl: W.Workload, seed: int = 0):
    """``(X, Y, theta0)`` as JAX arrays."""
    Xn, Yn = W.make_data(wl, seed)
    return jnp.asarray(Xn), jnp.asarray(Yn), {k: jnp.asarray(v) for k, v in W.init_params(wl).items()}


def model_log_density(wl: W.Workload, model, X, Y, theta) -> float:
    """The model's log density at ``theta`` on the minibatch of the first B rows."""
    from numpyro.handlers import substitute
    from numpyro.infer.util import log_density

    lp, _ = log_density(substitute(model, data={"data": jnp.arange(wl.batch)}), (X, Y), {}, theta)
    return float(lp)


def _bare(wl: W.Workload, X, Y, theta0, potential_fn, noise: bool, impl: str = "threefry2x32"):
    """``make(units)`` of the physical limit: ``units`` jitted value_and_grad steps of the
    hand-written potential on successive slices of one fixed permutation (no reshuffle),
    optionally with the ``d`` standard normal draws of the injected noise."""
    from jax.flatten_util import ravel_pytree

    n, b = wl.n, wl.batch
    flat0, unravel = ravel_pytree(theta0)
    vg = jax.value_and_grad(potential_fn)
    perm = random.permutation(random.PRNGKey(7), n).astype(jnp.int32)
    starts = n - b + 1

    # the loop length is an argument: one compilation serves both timed sizes
    @jax.jit
    def loop(theta, key, X, Y, length):
        def step(i, carry):
            theta, key = carry
            idx = lax.dynamic_slice(perm, ((i * b) % starts,), (b,))
            _, g = vg(theta, X[idx], Y[idx])
            if noise:
                key, k = random.split(key)
                xi = unravel(random.normal(k, flat0.shape, flat0.dtype))
                theta = jax.tree.map(lambda t, gg, z: t - 1e-9 * gg + 1e-6 * z, theta, g, xi)
            else:
                theta = jax.tree.map(lambda t, gg: t - 1e-9 * gg, theta, g)
            return theta, key

        return lax.fori_loop(0, length, step, (theta, key))

    key = random.key(0, impl=impl)
    return lambda units: lambda: jax.block_until_ready(loop(theta0, key, X, Y, units))


def _mcmc_make(kernel_fn, key, X, Y, theta0, per_draw: int, last: dict | None = None):
    """``make(units)`` of a row driven by ``numpyro.infer.MCMC``: one run of ``units // per_draw`` draws."""
    from numpyro.infer import MCMC

    def make(units):
        mcmc = MCMC(kernel_fn(), num_warmup=0, num_samples=units // per_draw, progress_bar=False,
                    jit_model_args=True)

        def call():
            mcmc.run(key, X, Y, init_params=theta0)
            jax.block_until_ready(mcmc.get_samples())
            if last is not None:
                last["mcmc"] = mcmc

        return call

    return make


def _diverging_check(last: dict):
    def check():
        from ppl_kernels._host import get_stats

        return {"diverging_fraction": float(np.mean(get_stats(last["mcmc"])["diverging"]))}

    return check


def workload_methods(wl: W.Workload, opts: dict) -> list[Method]:
    """The rows of one workload (see the module docstring)."""
    from numpyro.infer import HMC

    from ppl_kernels.numpyro import SGHMC

    num_steps, quick, g = opts["num_steps"], opts["quick"], wl.name
    steps = steps_for(opts, g)
    prng = tuple(opts["prng"]) if g in opts["prng_workloads"] else ()
    X, Y, theta0 = data(wl)
    n, b, eps = wl.n, wl.batch, wl.step_size
    loglik, logprior, potential_fn = potential(wl)
    model = W.model(wl, "numpyro")
    model_lp = model_log_density(wl, model, X, Y, theta0)

    def potential_check():
        u = float(potential_fn(theta0, X[:b], Y[:b]))
        return {"potential_matches_model": abs(u + model_lp) / max(abs(model_lp), 1.0)}

    out = [Method("limit", "bare gradient (jit value_and_grad, fori_loop)", "limit",
                  _bare(wl, X, Y, theta0, potential_fn, False), steps, g, check=potential_check,
                  note="minibatch gather + value_and_grad + SGD update")]
    for impl in ("threefry2x32", *prng):
        default = impl == "threefry2x32"
        out.append(Method("floor" if default else f"floor-{impl}",
                          "bare gradient + noise draw" + ("" if default else f" [{impl}]"),
                          "floor" if default else "variant", _bare(wl, X, Y, theta0, potential_fn, True, impl), steps,
                          g, note=f"one N(0, I_d) draw per step, d={wl.dim}, PRNG {impl}"))

    draws = _draws(steps, num_steps)
    if have("blackjax"):
        out.append(_blackjax(wl, X, Y, theta0, loglik, logprior, num_steps, draws))
    else:
        out.append(skipped("blackjax", "BlackJAX sghmc (fori_loop)", "anchor", "blackjax", g))

    # HMC refuses subsampled plates: the full-data model, reported per gradient
    hmc_steps = _hmc_steps(steps, num_steps, wl)
    full = W.model(wl, "numpyro", subsample=False)

    def hmc():
        return HMC(full, step_size=eps / 10, num_steps=hmc_steps, adapt_step_size=False, adapt_mass_matrix=False)

    long = MCMC_CALLS.get(g, 1)
    out.append(Method("hmc", "NumPyro HMC, full data (per gradient)", "anchor",
                      _mcmc_make(hmc, random.PRNGKey(2), X, Y, theta0, hmc_steps), long * hmc_steps, g,
                      unit="gradient", status="skipped" if quick else "ok", hint=QUICK_HINT if quick else "",
                      note=f"num_steps={hmc_steps}; all N={n} points per gradient: HMC refuses subsampled plates"))

    def kernel():
        return SGHMC(model, step_size=eps, num_steps=num_steps)

    # the kernel's PRNG variant is measured with rbg only (unsafe_rbg's floor row shows the same cost)
    for impl in ("threefry2x32", *prng[:1]):
        default = impl == "threefry2x32"
        last: dict = {}
        out.append(Method("kernel" if default else f"kernel-{impl}",
                          "ppl_kernels.numpyro.SGHMC (MCMC)" + ("" if default else f" [{impl} key]"),
                          "kernel" if default else "variant",
                          _mcmc_make(kernel, random.key(3, impl=impl), X, Y, theta0, num_steps, last),
                          long * draws * num_steps, g, uses_kernel=True, check=_diverging_check(last),
                          info={"model_log_density": model_lp},
                          note=f"num_steps={num_steps}; mcmc.run(jax.random.key(seed, impl={impl!r}), ...)"))
    for name in integrator_variants(SGHMC):
        def kernel_other(name=name):
            return SGHMC(model, step_size=eps, num_steps=num_steps, integrator=name)

        out.append(Method(f"kernel-{name}", f"ppl_kernels.numpyro.SGHMC (MCMC) [integrator={name!r}]", "variant",
                          _mcmc_make(kernel_other, random.key(3), X, Y, theta0, num_steps), long * draws * num_steps, g,
                          uses_kernel=True, info={"model_log_density": model_lp},
                          note=f"num_steps={num_steps}; integrator={name!r}"))
    return out


def _blackjax(wl, X, Y, theta0, loglik, logprior, num_steps, draws) -> Method:
    import blackjax

    n, b, eps = wl.n, wl.batch, wl.step_size
    perm = random.permutation(random.PRNGKey(7), n).astype(jnp.int32)
    starts = n - b + 1

    def bj_loglik(position, batch):
        x, y = batch
        return loglik(position, x[None], y[None])[0]

    sghmc = blackjax.sghmc(blackjax.sgmcmc.gradients.grad_estimator(logprior, bj_loglik, n),
                           num_integration_steps=num_steps)

    @jax.jit
    def loop(theta, key, X, Y, draws):
        def one(i, carry):
            theta, key = carry
            key, k = random.split(key)
            idx = lax.dynamic_slice(perm, ((i * b) % starts,), (b,))
            return sghmc.step(k, theta, (X[idx], Y[idx]), eps), key

        return lax.fori_loop(0, draws, one, (theta, key))

    def make(units):
        return lambda: jax.block_until_ready(loop(theta0, random.PRNGKey(1), X, Y, units // num_steps))

    return Method("blackjax", "BlackJAX sghmc (fori_loop)", "anchor", make, draws * num_steps, wl.name,
                  note=f"num_integration_steps={num_steps}: one minibatch and one momentum draw per {num_steps} "
                       "steps")


def _host_steps(steps: int, n: int) -> int:
    """The hosts' plates permute all N per step: fewer steps for large N."""
    return max(10, min(steps, steps * 10_000 // n))


def scaling_methods(base: W.Workload, opts: dict) -> list[Method]:
    """Kernel ms/step against N at fixed B, its floor, and the host plate's own subsampling."""
    from numpyro.handlers import seed
    from numpyro.infer.util import log_density

    from ppl_kernels.numpyro import SGHMC

    num_steps, steps = opts["num_steps"], opts["steps"]["scaling"]
    draws = _draws(steps, num_steps)
    out = []
    for n in opts["scaling"]:
        wl = base.with_n(n)
        X, Y, theta0 = data(wl, seed=n)
        model = W.model(wl, "numpyro")

        def kernel(model=model, wl=wl):
            return SGHMC(model, step_size=wl.step_size, num_steps=num_steps)

        # A compiled step of this small model costs ~0.07 ms: the call must be long enough
        # for its slope to rise above the jitter of MCMC.run's fixed cost (~1 s).
        out.append(Method("kernel", "ppl_kernels.numpyro.SGHMC", "kernel",
                          _mcmc_make(kernel, random.PRNGKey(0), X, Y, theta0, num_steps), 25 * draws * num_steps,
                          wl.name, uses_kernel=True, n=n,
                          info={"model_log_density": model_log_density(wl, model, X, Y, theta0)}))
        # the floor at this N: random rows of a large X miss the caches, for every method alike
        out.append(Method("floor", "bare gradient + noise draw", "floor",
                          _bare(wl, X, Y, theta0, potential(wl)[2], True), 25 * draws * num_steps, wl.name, n=n))

        def u(theta, key, X, Y, model=model):
            # the plate draws its own subsample from the seed
            return -log_density(seed(model, key), (X, Y), {}, theta)[0]

        def host_make(units, u=u, theta0=theta0, X=X, Y=Y):
            vg = jax.value_and_grad(u)

            @jax.jit
            def loop(theta, key, X, Y):
                def step(theta, k):
                    val, g = vg(theta, k, X, Y)
                    return jax.tree.map(lambda t, gg: t - 1e-9 * gg, theta, g), val

                return lax.scan(step, theta, random.split(key, units))

            return lambda: jax.block_until_ready(loop(theta0, random.PRNGKey(1), X, Y))

        out.append(Method("host-plate", "NumPyro plate subsampling, bare gradient", "anchor", host_make,
                          _host_steps(steps, n), wl.name, n=n))
    return out


def storage_rows(wl: W.Workload, opts: dict) -> list[dict]:
    """Bytes per stored draw: all sites, thinning, and dropping sites via ``extra_fields=~z.site``."""
    from numpyro.infer import MCMC

    from ppl_kernels._host import get_stats
    from ppl_kernels.numpyro import SGHMC

    num_steps, draws, quick = opts["num_steps"], opts["storage"]["draws"], opts["quick"]
    X, Y, theta0 = data(wl)
    model = W.model(wl, "numpyro")
    shapes = wl.param_shapes()
    big = sorted(shapes, key=lambda k: -int(np.prod(shapes[k])))[:2]
    cases = [
        ("all", "all sites", 1, ()),
        ("thinning-5", "thinning=5", 5, ()),
        ("drop-largest", f"drop {', '.join(big)} (extra_fields=~z.site)", 1, tuple(f"~z.{s}" for s in big)),
    ]
    rows = []
    # a smoke run checks the thinned path only: each case compiles its own sampling loop (seconds)
    for key, label, thinning, extra in cases[1:2] if quick else cases:
        mcmc = MCMC(SGHMC(model, step_size=wl.step_size, num_steps=num_steps), num_warmup=0, num_samples=draws,
                    thinning=thinning, progress_bar=False, jit_model_args=True)
        base = reset_rss()
        mcmc.run(random.PRNGKey(0), X, Y, init_params=theta0, extra_fields=extra)
        samples = jax.block_until_ready(mcmc.get_samples())
        stats = get_stats(mcmc)
        kept = next(iter(stats.values())).shape[1]
        stored = sum(int(v.nbytes) for v in samples.values()) + sum(int(v.nbytes) for v in stats.values())
        rows.append({"id": f"numpyro/{wl.name}/storage/{key}", "backend": "numpyro", "workload": wl.name,
                     "key": key, "storage": label, "thinning": thinning, "draws_run": draws, "draws_kept": kept,
                     "bytes_per_kept_draw": stored / kept, "bytes_per_draw_run": stored / draws,
                     "peak_rss_growth_mb": rss_peak_mb() - base})
    return rows
