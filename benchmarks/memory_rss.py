"""Resident memory of the SGHMC kernels over long runs.

Each backend runs in a fresh interpreter (so that torch and JAX do not share one
process) on a model with 10,000 latent dimensions and a subsampled plate::

    w ~ N(0, I_10000),   y_i ~ N(w[g_i], 1),  i = 1..50,000,  minibatch 500

with 1,000 integrator steps per draw, and prints the process RSS (``VmRSS`` from
``/proc/self/status``) after 10³, 10⁴ and 10⁵ integrator steps.  A kernel that
kept an autograd graph, a trace or a per-step record would grow by about 40 kB
(one copy of θ) or more per step: 4 GB over 10⁵ steps.

- Pyro: one ``MCMC`` run of 100 draws; a ``hook_fn`` reads RSS after draws 1,
  10 and 100.  ``MCMC`` keeps every draw, so RSS also holds the stored draws
  (shown in the last column).
- NumPyro: the kernel's own ``sample`` under one ``jax.jit``, called 100 times
  from Python (RSS cannot be read inside ``MCMC``'s compiled loop, and each
  ``MCMC.run`` without a progress bar compiles its loop anew, which would
  measure XLA's executable cache instead of the kernel); no draws are stored.

Usage::

    python benchmarks/memory_rss.py [--backend pyro|numpyro|both] [--draws 100] [--num-steps 1000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np

DIM, N, BATCH = 10_000, 50_000, 500


def rss_mib() -> float:
    """``VmRSS`` of this process in MiB (no psutil needed)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def data():
    rng = np.random.default_rng(0)
    group = np.arange(N) % DIM
    y = rng.standard_normal(DIM)[group] + rng.standard_normal(N)
    return group, y.astype(np.float32)


def make_model(ppl, dist):
    """The group-means model in the language of ``ppl`` (``pyro`` or ``numpyro``)."""

    def model(group, y):
        w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([DIM]).to_event(1))
        with ppl.plate("data", N, subsample_size=BATCH) as idx:
            ppl.sample("obs", dist.Normal(w[group[idx]], 1.0), obs=y[idx])

    return model


def checkpoints(draws: int) -> list[int]:
    return sorted({1, min(10, draws), draws})


def run_pyro(draws: int, num_steps: int) -> list[dict]:
    import pyro
    import pyro.distributions as dist
    import torch
    from pyro.infer import MCMC

    from ppl_kernels.pyro import SGHMC

    torch.set_num_threads(1)
    pyro.set_rng_seed(0)
    group, y = data()
    rows, start = [], time.perf_counter()
    marks = set(checkpoints(draws))

    def hook(kernel, params, stage, i):
        if stage == "Sample" and i + 1 in marks:
            rows.append({"draws": i + 1, "steps": (i + 1) * num_steps, "rss_mib": rss_mib(),
                         "stored_mib": (i + 1) * DIM * 4 / 2**20, "seconds": time.perf_counter() - start})

    kernel = SGHMC(make_model(pyro, dist), step_size=1e-4, num_steps=num_steps)
    mcmc = MCMC(kernel, num_samples=draws, warmup_steps=0, hook_fn=hook, disable_progbar=True)
    mcmc.run(torch.as_tensor(group), torch.as_tensor(y))
    return rows


def run_numpyro(draws: int, num_steps: int) -> list[dict]:
    import jax
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    from ppl_kernels.numpyro import SGHMC

    group, y = data()
    args = (jnp.asarray(group), jnp.asarray(y))
    kernel = SGHMC(make_model(numpyro, dist), step_size=1e-4, num_steps=num_steps)
    state = kernel.init(jax.random.PRNGKey(0), 0, model_args=args)
    draw = jax.jit(kernel.sample)
    rows, start = [], time.perf_counter()
    marks = set(checkpoints(draws))
    for i in range(draws):
        state = jax.block_until_ready(draw(state, args, {}))
        if i + 1 in marks:
            rows.append({"draws": i + 1, "steps": (i + 1) * num_steps, "rss_mib": rss_mib(),
                         "stored_mib": 0.0, "seconds": time.perf_counter() - start})
    assert int(state.i) == draws and not bool(state.diverging)
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["pyro", "numpyro", "both"], default="both")
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--num-steps", type=int, default=1000)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    opts = parser.parse_args(argv)
    if opts.child:  # one backend, in this fresh process
        run = run_pyro if opts.backend == "pyro" else run_numpyro
        print(json.dumps(run(opts.draws, opts.num_steps)))
        return
    backends = ["pyro", "numpyro"] if opts.backend == "both" else [opts.backend]
    print(f"model: {DIM} latent dimensions, {N} data, minibatch {BATCH}; {opts.num_steps} steps per draw")
    print(f"{'backend':8} {'steps':>8} {'RSS MiB':>9} {'growth':>8} {'stored MiB':>10} {'seconds':>8}")
    for backend in backends:
        out = subprocess.run([sys.executable, __file__, "--child", "--backend", backend, "--draws", str(opts.draws),
                              "--num-steps", str(opts.num_steps)], capture_output=True, text=True, check=True)
        rows = json.loads(out.stdout.strip().splitlines()[-1])
        for row in rows:
            print(f"{backend:8} {row['steps']:>8} {row['rss_mib']:>9.1f} {row['rss_mib'] - rows[0]['rss_mib']:>+8.1f} "
                  f"{row['stored_mib']:>10.2f} {row['seconds']:>8.1f}")


if __name__ == "__main__":
    main()
