"""Noise-draw cost per step for d = 17,610 (the W1 MLP) under threefry (partitionable and original), rbg and unsafe_rbg; CPU and wall time, interleaved."""
import time, numpy as np, jax, jax.numpy as jnp
from jax import random, lax
d = 17610; L = 2000
def make(f, impl=None, part=True):
    jax.config.update("jax_threefry_partitionable", part)
    @jax.jit
    def loop(key):
        def step(c, _):
            key, acc = c
            key, k = random.split(key)
            return (key, acc + f(k)), None
        return lax.scan(step, (key, jnp.zeros(d)), None, length=L)[0][1]
    k = random.key(0, impl=impl) if impl else random.PRNGKey(0)
    jax.block_until_ready(loop(k))
    jax.config.update("jax_threefry_partitionable", True)
    return lambda: loop(k), part
normal = lambda k: random.normal(k, (d,))
cases = {
    "nothing": make(lambda k: jnp.float32(1.0)),
    "threefry(partitionable)": make(normal),
    "threefry(original)": make(normal, part=False),
    "rbg": make(normal, "rbg"),
    "unsafe_rbg": make(normal, "unsafe_rbg"),
}
res = {k: ([], []) for k in cases}
for rep in range(7):
    for name, (f, part) in cases.items():
        jax.config.update("jax_threefry_partitionable", part)
        w, c = time.perf_counter(), time.process_time()
        jax.block_until_ready(f())
        res[name][0].append((time.perf_counter() - w) / L * 1e3); res[name][1].append((time.process_time() - c) / L * 1e3)
for name, (w, c) in res.items():
    print(f"{name:25s} wall med {np.median(w):.4f} min {np.min(w):.4f} | cpu med {np.median(c):.4f} ms/step")
