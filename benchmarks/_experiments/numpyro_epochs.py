"""Why the NumPyro kernel's epochs are affine visiting orders, not reshuffles.

1. What one reshuffle costs under XLA on this machine (random.permutation and an
   argsort of random bits) against torch.randperm.
2. Kernel ms/step against N (W3 model, B=100, num_steps=10) next to the bare
   gradient + noise at the same N, data passed as arguments as MCMC.run does:
   both grow alike from N=1e3 to 1e6 because random rows of a large X miss the
   caches; the kernel's own overhead stays flat.
Usage: python benchmarks/_experiments/numpyro_epochs.py
"""
import statistics
import time

import jax
import jax.numpy as jnp
from jax import lax, random

from ppl_kernels import bench
from ppl_kernels.numpyro import SGHMC
from ppl_kernels.numpyro import kernel as K


def per_call(f, reps=20):
    f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


for n in (10**4, 10**6):
    perm = jax.jit(lambda k, n=n: random.permutation(k, n))
    argsort = jax.jit(lambda k, n=n: jnp.argsort(random.bits(k, (n,))))
    key = random.PRNGKey(0)
    print(f"N={n:g}: random.permutation {1e3 * per_call(lambda: jax.block_until_ready(perm(key)), 5):.2f} ms, "
          f"argsort(bits) {1e3 * per_call(lambda: jax.block_until_ready(argsort(key)), 5):.2f} ms")
try:
    import torch

    for n in (10**4, 10**6):
        print(f"N={n:g}: torch.randperm {1e3 * per_call(lambda: torch.randperm(n), 5):.2f} ms")
except ImportError:
    pass

L = 2000
base = bench.WORKLOADS["W3"]
for n in (10**3, 10**4, 10**5, 10**6):
    wl = base.with_n(n)
    Xn, Yn = bench.make_data(wl, seed=n)
    X, Y = jnp.asarray(Xn), jnp.asarray(Yn)
    _, _, potential, make_model = bench._jax_pieces(wl)
    theta0 = {k: jnp.asarray(v) for k, v in bench.init_params(wl).items()}
    kern = SGHMC(make_model(True), step_size=wl.step_size, num_steps=10)
    state = kern.init(random.PRNGKey(0), 0, theta0, (X, Y), {})
    st = kern._static
    draws = jax.jit(lambda s, X, Y, st=st: lax.scan(lambda s, _: (K.sghmc_draw(st, s, (X, Y), {}), None), s, None, length=L // 10)[0])
    floor = bench._jax_bare(wl, X, Y, theta0, potential, True)(L)
    k = per_call(lambda: jax.block_until_ready(draws(state, X, Y)), 7) / L * 1e3
    f = per_call(floor, 7) / L * 1e3
    print(f"N={n:g}: kernel {k:.4f} ms/step, bare gradient + noise {f:.4f} ms/step, difference {k - f:.4f}")
