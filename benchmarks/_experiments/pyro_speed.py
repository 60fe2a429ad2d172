"""Per-step cost of the Pyro kernel under pyro.infer.MCMC against the bare gradient,
interleaved in one process (robust to a loaded machine: compare within a run).

Each method runs U and 3U integrator steps; the per-step cost is the slope
(fixed per-call cost apart), min and median over rounds.
Usage: python benchmarks/_experiments/pyro_speed.py W1 [rounds] [threads] [old_kernel.py]
The optional last argument is a kernel.py from another commit
(``git show REV:ppl_kernels/pyro/kernel.py > old.py``), measured alongside.
"""
import importlib.util
import statistics
import sys
import time
import warnings

import pyro
import torch
from pyro.infer import MCMC

from ppl_kernels import bench
from ppl_kernels.pyro import SGHMC

warnings.simplefilter("ignore", FutureWarning)
wl = bench.WORKLOADS[sys.argv[1] if len(sys.argv) > 1 else "W1"]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 1)
old = None
if len(sys.argv) > 4:
    spec = importlib.util.spec_from_file_location("ppl_kernels.pyro._old_kernel", sys.argv[4])
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)

X, Y = bench._torch_data(wl)
loglik, logprior, potential, make_model = bench._torch_pieces(wl)
model = make_model(True)
theta0 = {k: torch.from_numpy(v) for k, v in bench.init_params(wl).items()}
perm = torch.randperm(wl.n)
numels = [v.numel() for v in theta0.values()]
U = 100


def bare(noise):
    def run(units):
        theta = {k: v.clone().requires_grad_(True) for k, v in theta0.items()}
        for i in range(units):
            j = (i * wl.batch) % (wl.n - wl.batch)
            idx = perm[j : j + wl.batch]
            grads = torch.autograd.grad(potential(theta, X[idx], Y[idx]), list(theta.values()))
            with torch.no_grad():
                xi = torch.randn(wl.dim).split(numels) if noise else [0.0] * len(numels)
                for t, g, z in zip(theta.values(), grads, xi):
                    t.add_(g, alpha=-1e-9)
                    if noise:
                        t.add_(z.view_as(t), alpha=1e-6)

    return run


def kernel(cls, **kw):
    def run(units):
        pyro.set_rng_seed(0)
        mcmc = MCMC(cls(model, step_size=wl.step_size, num_steps=10, **kw), num_samples=units // 10, warmup_steps=0,
                    disable_progbar=True, initial_params={k: v.clone() for k, v in theta0.items()})
        mcmc.run(X, Y)

    return run


methods = {"bare grad": bare(False), "bare grad+noise": bare(True), "kernel eager": kernel(SGHMC),
           "kernel jit": kernel(SGHMC, jit_compile=True, ignore_jit_warnings=True)}
try:
    import posteriors

    tf = posteriors.sgmcmc.sghmc.build(lambda p, b: (-potential(p, *b), torch.tensor([])), lr=wl.step_size)

    def post(units):
        state = tf.init({k: v.clone() for k, v in theta0.items()})
        for i in range(units):
            j = (i * wl.batch) % (wl.n - wl.batch)
            idx = perm[j : j + wl.batch]
            state, _ = tf.update(state, (X[idx], Y[idx]))

    methods["posteriors"] = post
except ImportError:
    pass
if old is not None:
    methods["old kernel eager"] = kernel(old.SGHMC)
for f in methods.values():
    f(U)
slopes = {k: [] for k in methods}
for _ in range(rounds):
    for name, f in methods.items():
        t0 = time.process_time()
        f(U)
        t1 = time.process_time()
        f(3 * U)
        t2 = time.process_time()
        slopes[name].append(((t2 - t1) - (t1 - t0)) / (2 * U) * 1e3)
base = statistics.median(slopes["bare grad"])
for name, s in slopes.items():
    med = statistics.median(s)
    print(f"{wl.name} {name:18s} CPU ms/step median {med:7.3f}  min {min(s):7.3f}  ({med / base:.2f}x bare grad)")
