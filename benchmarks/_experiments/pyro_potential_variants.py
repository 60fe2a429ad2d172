"""Per-call cost of candidate Pyro potentials (+ gradient) against the bare one.

  bare           hand-written potential + autograd.grad on a minibatch
  kernel         the kernel's current value_and_grad (trace + condition + log_prob per site)
  novalidate     the same under pyro.validation_enabled(False)
Usage: python benchmarks/_experiments/pyro_potential_variants.py [W1|W3]
"""
import statistics
import sys
import time

import pyro
import torch

from ppl_kernels import bench
from ppl_kernels.pyro import SGHMC

torch.set_num_threads(1)
wl = bench.WORKLOADS[sys.argv[1] if len(sys.argv) > 1 else "W1"]
X, Y = bench._torch_data(wl)
loglik, logprior, potential, make_model = bench._torch_pieces(wl)
model = make_model(True)
theta0 = {k: torch.from_numpy(v) for k, v in bench.init_params(wl).items()}
kern = SGHMC(model, step_size=wl.step_size, num_steps=10)
kern.initial_params = dict(theta0)
kern.setup(0, X, Y)
vg = kern._static.value_and_grad
perm = torch.randperm(wl.n)


def bare(z):
    zg = {k: v.detach().requires_grad_(True) for k, v in z.items()}
    idx = perm[: wl.batch]
    u = potential(zg, X[idx], Y[idx])
    return torch.autograd.grad(u, list(zg.values()))


def novalidate(z):
    with pyro.validation_enabled(False):
        return vg(z)


variants = {"bare": bare, "kernel": vg, "novalidate": novalidate}
times = {k: [] for k in variants}
for _ in range(300):
    for name, f in variants.items():
        c = time.perf_counter()
        f(theta0)
        times[name].append(time.perf_counter() - c)
for name, ts in times.items():
    print(f"{name:12s} median {statistics.median(ts) * 1e3:.3f} ms  min {min(ts) * 1e3:.3f} ms")
