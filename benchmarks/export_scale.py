"""Time and peak memory of exporting a subsampled model with a million rows.

Each case runs in a fresh interpreter: a Bayesian linear regression ::

    w ~ N(0, I_5),  b ~ N(0, 1),  σ ~ HalfNormal(1),  y_i ~ N(x_iᵀw + b, σ),  i = 1..N

with ``N = --rows`` (10⁶) and a plate subsampled to ``--batch`` (100) rows, sampled for
``--draws`` (200) kept draws of one integrator step each; then
:func:`ppl_kernels.to_inference_data` writes the pointwise log-likelihood of every draw
at every row (a ``draws × N`` array: 0.8 GB of float32 at the defaults) with the
default chunking: ``chunk_size=1024`` rows (Pyro: the largest multiple of the batch
not above it) and ``draw_chunk_size=128`` draws per evaluation.

For Pyro, the same export is also timed one draw and one B-row piece at a time (the
evaluation a model that cannot run under ``torch.func.vmap`` falls back to, and the only
one before it was vectorised) on ``--loop-draws`` draws, and extrapolated to all draws.

Usage::

    python benchmarks/export_scale.py [--backend pyro|numpyro|both] [--rows 1000000] [--draws 200] [--batch 100]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

_CHILD = r"""
import json, resource, sys, time, warnings
import numpy as np
import arviz  # imported before the clock starts: its import takes seconds
warnings.simplefilter("ignore")  # the draws only need to exist: their temperature is not the point
backend, mode, N, B, draws, loop_draws = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:7])
rng = np.random.default_rng(0)
X = rng.normal(size=(N, 5)).astype(np.float32)
y = (X @ np.array([1.0, -0.5, 0.25, 0.0, 2.0], np.float32) + 0.3 + 0.5 * rng.normal(size=N)).astype(np.float32)
if backend == "pyro":
    import torch, pyro, pyro.distributions as dist
    X, y = torch.as_tensor(X), torch.as_tensor(y)
    def model(X, y):
        w = pyro.sample("w", dist.Normal(0.0, 1.0).expand([5]).to_event(1))
        b = pyro.sample("b", dist.Normal(0.0, 1.0))
        sigma = pyro.sample("sigma", dist.HalfNormal(1.0))
        with pyro.plate("data", N, subsample_size=B) as idx:
            pyro.sample("obs", dist.Normal(X[idx] @ w + b, sigma), obs=y[idx])
else:
    import jax.numpy as jnp, numpyro, numpyro.distributions as dist
    X, y = jnp.asarray(X), jnp.asarray(y)
    def model(X, y):
        w = numpyro.sample("w", dist.Normal(0.0, 1.0).expand([5]).to_event(1))
        b = numpyro.sample("b", dist.Normal(0.0, 1.0))
        sigma = numpyro.sample("sigma", dist.HalfNormal(1.0))
        with numpyro.plate("data", N, subsample_size=B) as idx:
            numpyro.sample("obs", dist.Normal(X[idx] @ w + b, sigma), obs=y[idx])
from ppl_kernels import runner, to_inference_data
n = loop_draws if mode == "looped" else draws
mcmc = runner.sample(backend, model=model, model_args=(X, y), kernel_kwargs=dict(step_size=1e-5, num_steps=1,
                     adapt_step_size=False, adapt_mass_matrix=False), num_samples=n, num_warmup=0, seed=0)
if mode == "looped":  # what a model that cannot vmap gets: one trace per draw and B-row piece
    from ppl_kernels.pyro.host import Evaluator
    def refuse(*args):
        raise RuntimeError("timing the loop")
    Evaluator._vmapped = staticmethod(refuse)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
idata = to_inference_data(mcmc)
seconds = time.perf_counter() - t
ll = idata.log_likelihood["obs"]
print(json.dumps(dict(backend=backend, mode=mode, draws=n, rows=int(ll.shape[-1]), seconds=seconds,
                      ll_mib=ll.values.nbytes / 2**20, rss_before_mib=before,
                      peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["pyro", "numpyro", "both"], default="both")
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--loop-draws", type=int, default=1, help="draws of the Pyro one-at-a-time export (extrapolated)")
    a = p.parse_args(argv)
    backends = ["pyro", "numpyro"] if a.backend == "both" else [a.backend]
    cases = [(b, "vmap" if b == "pyro" else "jit") for b in backends]
    if "pyro" in backends and a.loop_draws > 0:
        cases.append(("pyro", "looped"))
    print(f"N={a.rows}, B={a.batch}, {a.draws} draws: to_inference_data with the default chunking")
    print(f"{'backend':8} {'evaluation':10} {'draws':>6} {'export s':>9} {f's per {a.draws} draws':>16} "
          f"{'log-lik MiB':>12} {'RSS before':>11} {'peak RSS MiB':>13}")
    for backend, mode in cases:
        out = subprocess.run([sys.executable, "-c", _CHILD, backend, mode, str(a.rows), str(a.batch), str(a.draws),
                              str(a.loop_draws)], capture_output=True, text=True)
        if out.returncode:
            print(f"{backend:8} {mode:10} failed: {out.stderr.strip().splitlines()[-1]}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        assert r["rows"] == a.rows
        scaled = r["seconds"] * a.draws / r["draws"]
        print(f"{backend:8} {mode:10} {r['draws']:6d} {r['seconds']:9.1f} {scaled:16.1f} {r['ll_mib']:12.0f} "
              f"{r['rss_before_mib']:11.0f} {r['peak_rss_mib']:13.0f}")


if __name__ == "__main__":
    main()
