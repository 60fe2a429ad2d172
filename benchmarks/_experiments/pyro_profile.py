"""Where one Pyro-kernel step spends its time (W1 or W3), and what a potential that
skips Pyro's per-step trace would save.

  P1  cProfile of ppl_kernels.pyro.SGHMC under pyro.infer.MCMC, cumulative top entries
  P2  the kernel's value_and_grad (trace + condition + log_prob per site) vs the
      hand-written potential's, per call
Usage: python benchmarks/_experiments/pyro_profile.py [W1|W3]
"""
import cProfile
import pstats
import statistics
import sys
import time

import pyro
import torch
from pyro.infer import MCMC

from ppl_kernels import bench
from ppl_kernels.pyro import SGHMC

wl = bench.WORKLOADS[sys.argv[1] if len(sys.argv) > 1 else "W1"]
X, Y = bench._torch_data(wl)
loglik, logprior, potential, make_model = bench._torch_pieces(wl)
model = make_model(True)
theta0 = {k: torch.from_numpy(v) for k, v in bench.init_params(wl).items()}

pyro.set_rng_seed(0)
kern = SGHMC(model, step_size=wl.step_size, num_steps=10)
mcmc = MCMC(kern, num_samples=50, warmup_steps=0, disable_progbar=True, initial_params=dict(theta0))
prof = cProfile.Profile()
prof.enable()
mcmc.run(X, Y)
prof.disable()
pstats.Stats(prof).sort_stats("tottime").print_stats(18)

# P2: per-call cost of the kernel's potential+gradient against the bare one
kern.setup(0, X, Y)
vg = lambda z: kern._static.value_and_grad(kern._static.layout.flatten(z))  # noqa: E731  (flat θ inside the kernel)
perm = torch.randperm(wl.n)


def bare(z):
    zg = {k: v.detach().requires_grad_(True) for k, v in z.items()}
    idx = perm[: wl.batch]
    u = potential(zg, X[idx], Y[idx])
    return torch.autograd.grad(u, list(zg.values()))


for name, f in [("kernel value_and_grad", vg), ("bare potential + grad", bare)] * 2:
    ts = []
    for _ in range(200):
        c = time.perf_counter()
        f(theta0)
        ts.append(time.perf_counter() - c)
    print(f"{name:25s} median {statistics.median(ts) * 1e3:.3f} ms  min {min(ts) * 1e3:.3f} ms")
