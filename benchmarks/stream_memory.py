"""Peak memory of a long run kept in memory against the same run streamed to disk.

Each (backend, mode) runs in a fresh interpreter on a model with ``--dim`` latent
dimensions and a subsampled plate::

    w ~ N(0, I_dim),   y_i ~ N(w[g_i], 1),  i = 1..50,000,  minibatch 500

for ``--draws`` kept samples of one integrator step each, and prints the peak
resident memory (``ru_maxrss``) and the wall time:

- ``memory``: :func:`ppl_kernels.runner.sample` then
  :func:`ppl_kernels.to_inference_data` (every draw of ``w`` held at once);
- ``stream``: :func:`ppl_kernels.stream` with ``--chunk`` draws per chunk (one
  chunk held at once, every draw written to disk); its peak is shown up to the
  end of sampling and, separately, with the final :func:`ppl_kernels.open_store`
  that ``stream`` returns (which reads every draw back into memory);
- ``stream-only``: the same without reading the store back, for runs whose draws do
  not fit in memory (10⁵ draws of 10⁵ parameters are 40 GB).

Usage::

    python benchmarks/stream_memory.py [--backend pyro|numpyro|both] [--dim 100000] [--draws 2000] [--chunk 200]
                                       [--modes memory stream stream-only]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile

N, BATCH = 50_000, 500

_CHILD = r"""
import json, resource, sys, time
import numpy as np
backend, mode, dim, draws, chunk, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
N, B = {N}, {B}
rng = np.random.default_rng(0)
g = rng.integers(0, dim, N)
y = rng.normal(size=N).astype(np.float32)
if backend == "pyro":
    import torch, pyro, pyro.distributions as dist
    torch.set_num_threads(1)
    g, y = torch.as_tensor(g), torch.as_tensor(y)
    def model(g, y):
        w = pyro.sample("w", dist.Normal(torch.zeros(dim), 1.0).to_event(1))
        with pyro.plate("data", N, subsample_size=B) as idx:
            pyro.sample("y", dist.Normal(w[g[idx]], 1.0), obs=y[idx])
else:
    import jax.numpy as jnp, numpyro, numpyro.distributions as dist
    g, y = jnp.asarray(g), jnp.asarray(y)
    def model(g, y):
        w = numpyro.sample("w", dist.Normal(jnp.zeros(dim), 1.0).to_event(1))
        with numpyro.plate("data", N, subsample_size=B) as idx:
            numpyro.sample("y", dist.Normal(w[g[idx]], 1.0), obs=y[idx])
import ppl_kernels.store as st
from ppl_kernels import runner, stream, to_inference_data
phase = {}
_open = st.open_store
def open_store(folder, **kwargs):
    phase["before_open_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if mode == "stream-only":  # a run larger than memory: the store is not read back
        import pickle, types
        with open(f"{folder}/checkpoint.pkl", "rb") as f:
            kept = pickle.load(f)["draws"]
        return types.SimpleNamespace(posterior=types.SimpleNamespace(sizes={"draw": kept}))
    return _open(folder, **kwargs)
st.open_store = open_store
kw = dict(model=model, model_args=(g, y), kernel_kwargs=dict(step_size=1e-3, num_steps=1, adapt_step_size=False,
          adapt_mass_matrix=False), num_samples=draws, num_warmup=0, seed=0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t = time.perf_counter()
if mode == "memory":
    idata = to_inference_data(runner.sample(backend, **kw), log_likelihood=False)
else:
    idata = stream(backend, folder, chunk_draws=chunk, export=dict(log_likelihood=False), **kw)
n = int(idata.posterior.sizes["draw"])
print(json.dumps(dict(backend=backend, mode=mode, draws=n, seconds=time.perf_counter() - t, rss_before_mib=before,
                      peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, **phase)))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["pyro", "numpyro", "both"], default="both")
    p.add_argument("--dim", type=int, default=100_000)
    p.add_argument("--draws", type=int, default=2000)
    p.add_argument("--chunk", type=int, default=200)
    p.add_argument("--modes", nargs="+", choices=["memory", "stream", "stream-only"], default=["memory", "stream"],
                   help="stream-only: streamed, the store not read back (for runs larger than memory)")
    a = p.parse_args(argv)
    backends = ["pyro", "numpyro"] if a.backend == "both" else [a.backend]
    w_mib = a.dim * a.draws * 4 / 2**20
    print(f"dim={a.dim}, draws={a.draws}, chunk={a.chunk}: the draws of w take {w_mib:.0f} MiB")
    print(f"{'backend':8} {'mode':11} {'draws':>6} {'s':>7} {'peak RSS MiB':>13} {'sampling only':>14} "
          f"{'after import':>13}")
    for backend in backends:
        for mode in a.modes:
            with tempfile.TemporaryDirectory() as tmp:
                code = _CHILD.replace("{N}", str(N)).replace("{B}", str(BATCH))
                out = subprocess.run([sys.executable, "-c", code, backend, mode, str(a.dim), str(a.draws), str(a.chunk),
                                      f"{tmp}/store"], capture_output=True, text=True)
            if out.returncode:
                print(f"{backend:8} {mode:11} failed: {out.stderr.strip().splitlines()[-1]}")
                continue
            r = json.loads(out.stdout.strip().splitlines()[-1])
            sampling = f"{r['before_open_mib']:14.0f}" if "before_open_mib" in r else f"{'-':>14}"
            print(f"{backend:8} {mode:11} {r['draws']:6d} {r['seconds']:7.1f} {r['peak_rss_mib']:13.0f} {sampling} "
                  f"{r['rss_before_mib']:13.0f}")


if __name__ == "__main__":
    main()
