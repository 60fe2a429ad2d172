"""Per-call cost of the Pyro kernel's potential + gradient against the bare one.

  bare fwd+grad  hand-written minibatch potential + autograd.grad
  jit vg         the kernel's value_and_grad with jit_compile=True (traced graph + autograd)
  eager vg       the kernel's eager value_and_grad (Pyro trace + condition + log_prob per site)
  randn          one standard normal draw for the whole flat state
Usage: python benchmarks/_experiments/pyro_potential_variants.py [W1|W3]
"""
import statistics
import sys
import time
import warnings

import torch

from ppl_kernels import bench
from ppl_kernels.pyro import SGHMC

warnings.simplefilter("ignore", FutureWarning)
torch.set_num_threads(1)
wl = bench.WORKLOADS[sys.argv[1] if len(sys.argv) > 1 else "W1"]
X, Y = bench._torch_data(wl)
potential, make_model = bench._torch_pieces(wl)[2:]
model = make_model(True)
theta0 = {k: torch.from_numpy(v) for k, v in bench.init_params(wl).items()}
kernels = {}
for name, jit in (("jit vg", True), ("eager vg", False)):
    k = SGHMC(model, step_size=wl.step_size, jit_compile=jit, ignore_jit_warnings=True)
    k.initial_params = dict(theta0)
    k.setup(0, X, Y)
    kernels[name] = k._static.value_and_grad
z = k._static.layout.flatten(theta0)
perm = torch.randperm(wl.n)


def bare():
    zg = {k: v.detach().requires_grad_(True) for k, v in theta0.items()}
    idx = perm[: wl.batch]
    return torch.autograd.grad(potential(zg, X[idx], Y[idx]), list(zg.values()))


fns = {"bare fwd+grad": bare, **{n: (lambda f=f: f(z)) for n, f in kernels.items()}, "randn": lambda: torch.randn_like(z)}
times = {k: [] for k in fns}
for _ in range(300):
    for name, f in fns.items():
        t = time.perf_counter()
        f()
        times[name].append(time.perf_counter() - t)
for name, ts in times.items():
    print(f"{wl.name} {name:14s} median {statistics.median(ts) * 1e3:.3f} ms  min {min(ts) * 1e3:.3f} ms")
