"""PyTorch rows: the Pyro kernel, the bare PyTorch gradient, ``posteriors`` and Pyro HMC.

=====================  ========  ==========================================================
key                    role      what one call runs
=====================  ========  ==========================================================
``limit``              limit     ``U`` eager ``torch.autograd.grad`` steps of the
                                 hand-written potential on slices of one fixed permutation
``floor``              floor     the same plus one ``torch.randn(d)`` per step
``posteriors``         anchor    ``posteriors.sgmcmc.sghmc`` updates
``hmc``                anchor    Pyro ``HMC`` on the full-data model, per gradient
``kernel``             kernel    ``pyro.infer.MCMC(ppl_kernels.pyro.SGHMC(...))``
``kernel-jit``         variant   the same with ``jit_compile=True``
=====================  ========  ==========================================================

The kernel rows use only the kernel's public constructor and ``MCMC``, so that
a ``--baseline`` copy of the package runs them unchanged.
"""

from __future__ import annotations

import os

import numpy as np
import pyro
import torch
import workloads as W
from harness import integrator_variants, Method, cpu_count, have, reset_rss, rss_peak_mb, skipped

QUICK_HINT = "run without --quick (a full-data HMC compile outlasts a smoke run)"


def prepare_process(opts: dict):
    """Versions, and one torch thread per usable CPU (``OMP_NUM_THREADS`` if set, e.g.
    1 on a machine busy with other work, where idle-spinning threads would
    swamp steps this small); returns ``(versions, restore)``."""
    old = torch.get_num_threads()
    threads = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(int(threads) if threads.isdigit() and int(threads) > 0 else cpu_count())
    versions = {"torch": torch.__version__, "pyro": pyro.__version__}
    if have("posteriors"):
        from importlib.metadata import version

        versions["posteriors"] = version("posteriors")
    return versions, lambda: torch.set_num_threads(old)


def steps_for(opts: dict, name: str) -> int:
    """Steps of the small timed call of workload ``name``."""
    steps = opts["steps"]
    return steps.get(f"pyro:{name}", steps.get(name, steps["default"]))


def _draws(steps: int, num_steps: int) -> int:
    return max(1, round(steps / num_steps))


def potential(wl: W.Workload):
    """``(loglik, logprior, potential)`` of the workload in PyTorch."""
    return W.potential_parts(wl, torch.tanh, torch.nn.functional.softplus,
                             lambda logits, y: torch.log_softmax(logits, -1).gather(1, y[:, None])[:, 0])


def data(wl: W.Workload, seed: int = 0):
    """``(X, Y, theta0)`` as tensors (float labels for the logistic regression's Bernoulli)."""
    Xn, Yn = W.make_data(wl, seed)
    Y = torch.from_numpy(Yn).long() if wl.kind == "mlp" else torch.from_numpy(Yn).float()
    return torch.from_numpy(Xn), Y, {k: torch.from_numpy(v) for k, v in W.init_params(wl).items()}


def model_log_density(wl: W.Workload, model, X, Y, theta) -> float:
    """The model's log density at ``theta`` on the minibatch of the first B rows."""
    from pyro import poutine

    tr = poutine.trace(poutine.condition(model, data={**theta, "data": torch.arange(wl.batch)})).get_trace(X, Y)
    return float(tr.log_prob_sum(lambda name, site: name != "data"))


def _bare(wl, X, Y, theta0, potential_fn, noise: bool):
    """``make(units)`` of the physical limit: ``units`` eager gradient steps of the
    hand-written potential, optionally with the ``d`` normal draws of the noise."""
    b = wl.batch
    perm = torch.randperm(wl.n, generator=torch.Generator().manual_seed(7))
    starts = wl.n - b + 1
    numels = [v.numel() for v in theta0.values()]

    def make(units):
        def call():
            theta = {k: v.clone().requires_grad_(True) for k, v in theta0.items()}
            for i in range(units):
                j = (i * b) % starts
                idx = perm[j: j + b]
                grads = torch.autograd.grad(potential_fn(theta, X[idx], Y[idx]), list(theta.values()))
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


def _mcmc_make(kernel_fn, X, Y, theta0, per_draw: int, last: dict | None = None):
    """``make(units)`` of a row driven by ``pyro.infer.MCMC``: one run of ``units // per_draw`` draws."""
    from pyro.infer import MCMC

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


def workload_methods(wl: W.Workload, opts: dict) -> list[Method]:
    """The rows of one workload (see the module docstring)."""
    from pyro.infer import HMC

    from ppl_kernels.pyro import SGHMC

    num_steps, quick, g = opts["num_steps"], opts["quick"], wl.name
    steps = steps_for(opts, g)
    X, Y, theta0 = data(wl)
    n, b, eps = wl.n, wl.batch, wl.step_size
    _, _, potential_fn = potential(wl)
    model = W.model(wl, "pyro")
    model_lp = model_log_density(wl, model, X, Y, theta0)

    def potential_check():
        u = float(potential_fn(theta0, X[:b], Y[:b]))
        return {"potential_matches_model": abs(u + model_lp) / max(abs(model_lp), 1.0)}

    out = [
        Method("limit", "bare gradient (torch.autograd.grad loop)", "limit", _bare(wl, X, Y, theta0, potential_fn, False),
               steps, g, check=potential_check, note="minibatch gather + forward + backward + SGD update"),
        Method("floor", "bare gradient + noise draw", "floor", _bare(wl, X, Y, theta0, potential_fn, True), steps, g,
               note=f"one torch.randn(d) per step, d={wl.dim}"),
    ]
    draws = _draws(steps, num_steps)
    if have("posteriors"):
        out.append(_posteriors(wl, X, Y, theta0, potential_fn, draws * num_steps))
    else:
        out.append(skipped("posteriors", "posteriors sghmc", "anchor", "posteriors", g))

    hmc_steps = max(1, min(num_steps, round(steps * b / n)))
    full = W.model(wl, "pyro", subsample=False)

    def hmc():
        return HMC(full, step_size=eps / 10, num_steps=hmc_steps, adapt_step_size=False, adapt_mass_matrix=False)

    out.append(Method("hmc", "Pyro HMC, full data (per gradient)", "anchor", _mcmc_make(hmc, X, Y, theta0, hmc_steps),
                      hmc_steps, g, unit="gradient", status="skipped" if quick else "ok",
                      hint=QUICK_HINT if quick else "",
                      note=f"num_steps={hmc_steps}; all N={n} points per gradient: HMC refuses subsampled plates"))

    last: dict = {}

    def check():
        from ppl_kernels._host import get_stats

        return {"diverging_fraction": float(np.mean(get_stats(last["mcmc"])["diverging"]))}

    def kernel():
        return SGHMC(model, step_size=eps, num_steps=num_steps)

    def kernel_jit():
        return SGHMC(model, step_size=eps, num_steps=num_steps, jit_compile=True, ignore_jit_warnings=True)

    info = {"model_log_density": model_lp}
    out.append(Method("kernel", "ppl_kernels.pyro.SGHMC (MCMC)", "kernel",
                      _mcmc_make(kernel, X, Y, theta0, num_steps, last), draws * num_steps, g, uses_kernel=True,
                      check=check, info=info, note=f"num_steps={num_steps}"))
    out.append(Method("kernel-jit", "ppl_kernels.pyro.SGHMC (MCMC) [jit_compile]", "variant",
                      _mcmc_make(kernel_jit, X, Y, theta0, num_steps), draws * num_steps, g, uses_kernel=True,
                      info=info,
                      note=f"num_steps={num_steps}; potential traced once with torch.jit.trace (setup in the fixed "
                           "cost)"))
    for name in integrator_variants(SGHMC):
        def kernel_other(name=name):
            return SGHMC(model, step_size=eps, num_steps=num_steps, integrator=name)

        out.append(Method(f"kernel-{name}", f"ppl_kernels.pyro.SGHMC (MCMC) [integrator={name!r}]", "variant",
                          _mcmc_make(kernel_other, X, Y, theta0, num_steps), draws * num_steps, g, uses_kernel=True,
                          info=info, note=f"num_steps={num_steps}; integrator={name!r}"))
    return out


def _posteriors(wl, X, Y, theta0, potential_fn, units) -> Method:
    import posteriors

    b = wl.batch
    perm = torch.randperm(wl.n, generator=torch.Generator().manual_seed(7))
    starts = wl.n - b + 1

    def log_post(params, batch):
        return -potential_fn(params, *batch), torch.tensor([])

    transform = posteriors.sgmcmc.sghmc.build(log_post, lr=wl.step_size, alpha=1.0, sigma=1.0, temperature=1.0)

    def make(units):
        def call():
            state = transform.init({k: v.clone() for k, v in theta0.items()})
            for i in range(units):
                j = (i * b) % starts
                idx = perm[j: j + b]
                state, _ = transform.update(state, (X[idx], Y[idx]))

        return call

    return Method("posteriors", "posteriors sghmc", "anchor", make, units, wl.name,
                  note="posteriors.sgmcmc.sghmc.build(...).update per step (inplace=False, its default)")


def _host_steps(steps: int, n: int) -> int:
    """The hosts' plates permute all N per step: fewer steps for large N."""
    return max(10, min(steps, steps * 10_000 // n))


def scaling_methods(base: W.Workload, opts: dict) -> list[Method]:
    """Kernel ms/step against N at fixed B, and the host plate's own subsampling."""
    from pyro import poutine

    from ppl_kernels.pyro import SGHMC

    num_steps, steps = opts["num_steps"], opts["steps"]["scaling"]
    draws = _draws(steps, num_steps)
    out = []
    for n in opts["scaling"]:
        wl = base.with_n(n)
        X, Y, theta0 = data(wl, seed=n)
        model = W.model(wl, "pyro")

        def kernel(model=model, wl=wl):
            return SGHMC(model, step_size=wl.step_size, num_steps=num_steps)

        out.append(Method("kernel", "ppl_kernels.pyro.SGHMC", "kernel", _mcmc_make(kernel, X, Y, theta0, num_steps),
                          draws * num_steps, wl.name, uses_kernel=True, n=n,
                          info={"model_log_density": model_log_density(wl, model, X, Y, theta0)}))

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

        out.append(Method("host-plate", "Pyro plate subsampling, bare gradient", "anchor", host_make,
                          _host_steps(steps, n), wl.name, n=n))
    return out


def storage_rows(wl: W.Workload, opts: dict) -> list[dict]:
    """Bytes per stored draw: all sites, the kernel's thinning, and ``MCMC(save_params=...)``."""
    from pyro.infer import MCMC

    from ppl_kernels._host import get_stats
    from ppl_kernels.pyro import SGHMC

    num_steps, draws = opts["num_steps"], opts["storage"]["draws"]
    X, Y, theta0 = data(wl)
    model = W.model(wl, "pyro")
    shapes = wl.param_shapes()
    big = sorted(shapes, key=lambda k: -int(np.prod(shapes[k])))[:2]
    rows = []
    for key, label, thinning, save in [
        ("all", "all sites", 1, None),
        ("thinning-5", "thinning=5", 5, None),
        ("drop-largest", f"drop {', '.join(big)} (save_params)", 1, [k for k in shapes if k not in big]),
    ]:
        pyro.set_rng_seed(0)
        kept = draws // thinning
        mcmc = MCMC(SGHMC(model, step_size=wl.step_size, num_steps=num_steps, thinning=thinning), num_samples=kept,
                    warmup_steps=0, disable_progbar=True, initial_params={k: v.clone() for k, v in theta0.items()},
                    save_params=save)
        base = reset_rss()
        mcmc.run(X, Y)
        stored = sum(v.numel() * v.element_size() for v in mcmc.get_samples().values())
        stored += sum(int(v.nbytes) for v in get_stats(mcmc).values())
        rows.append({"id": f"pyro/{wl.name}/storage/{key}", "backend": "pyro", "workload": wl.name, "key": key,
                     "storage": label, "thinning": thinning, "draws_run": kept * thinning, "draws_kept": kept,
                     "bytes_per_kept_draw": stored / kept, "bytes_per_draw_run": stored / (kept * thinning),
                     "peak_rss_growth_mb": rss_peak_mb() - base})
    return rows
