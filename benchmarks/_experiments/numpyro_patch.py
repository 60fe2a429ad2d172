"""Patched copy of ppl_kernels.numpyro.kernel.sghmc_draw (outside the package):
measures, on the W1 MLP (d = 17,610, B = 128), what each proposed change saves.

  A  one standard-normal draw for the raveled momentum instead of one per leaf, and
     one key split per step (the kernel splits 1 + 1 + len(leaves) times per step)
  B  minibatch refill once per draw: the epoch permutation is renewed (lax.cond) before
     the step scan when fewer than num_steps * B indices remain, so the scan body has
     no cond, only a dynamic_slice
Usage: python benchmarks/_experiments/numpyro_patch.py [W1|W2|W3] [init]   (init: only the sghmc_init timing)
"""
import statistics
import sys
import time

import jax
import jax.numpy as jnp
from jax import lax, random
from jax.flatten_util import ravel_pytree

from ppl_kernels import bench, dynamics
from ppl_kernels.numpyro import SGHMC
from ppl_kernels.numpyro import kernel as K

wl = bench.WORKLOADS[sys.argv[1] if len(sys.argv) > 1 else "W1"]
Xn, Yn = bench.make_data(wl)
X, Y = jnp.asarray(Xn), jnp.asarray(Yn)
model = bench._jax_pieces(wl)[3](True)
theta0 = {k: jnp.asarray(v) for k, v in bench.init_params(wl).items()}
kern = SGHMC(model, step_size=wl.step_size, num_steps=10)
state = kern.init(random.PRNGKey(0), 0, theta0, (X, Y), {})
st = kern._static
cfg = st.cfg
B = wl.batch
flat0, unravel = ravel_pytree(theta0)


def patched_draw(state, ravel_noise, refill_per_draw):
    eps, _ = cfg.step_size(state.i, jnp)
    key, key_loop, key_perm = random.split(state.rng_key, 3)
    perm, pos = state.batch["data"]
    if refill_per_draw:
        need = cfg.num_steps * B
        renew = pos + need > perm.shape[0]
        perm = lax.cond(renew, lambda: random.permutation(key_perm, perm.shape[0]).astype(perm.dtype), lambda: perm)
        pos = jnp.where(renew, 0, pos)

    def step(carry, k):
        z, r, grad, u, lp, perm, pos = carry
        z = dynamics.drift(z, r, eps, st.inv_mass)
        if refill_per_draw:
            idx = lax.dynamic_slice(perm, (pos,), (B,))
            pos = pos + B
            kx = k
        else:
            kb, kx = random.split(k)
            idx, perm, pos = K._m.epoch_indices(kb, perm, pos, B)
        (u, lp), grad = st.value_and_grad(z, {"data": idx}, (X, Y), {})
        xi = unravel(random.normal(kx, flat0.shape, flat0.dtype)) if ravel_noise else K._normal_like(kx, r)
        r = dynamics.kick(r, grad, eps, st.friction, st.inv_mass, cfg.noise_temperature, xi)
        return (z, r, grad, u, lp, perm, pos), None

    init = (state.z, state.r, state.grad, state.potential_energy, state.lp, perm, pos)
    (z, r, grad, u, lp, perm, pos), _ = lax.scan(step, init, random.split(key_loop, cfg.num_steps))
    stats = dynamics.draw_statistics(z, r, grad, st.inv_mass, st.dim)
    return state._replace(i=state.i + 1, z=z, r=r, grad=grad, potential_energy=u, lp=lp, batch={"data": (perm, pos)},
                          rng_key=key, **stats)


def scan_of(draw, draws):
    @jax.jit
    def f(state):
        return lax.scan(lambda s, _: (draw(s), None), state, None, length=draws)[0]
    return f


draws = {"W1": 100, "W2": 5, "W3": 300}[wl.name]
only_init = "init" in sys.argv[2:]
variants = {
    "kernel as is": lambda s: K.sghmc_draw(st, s, (X, Y), {}),
    "A: raveled noise, 1 split/step": lambda s: patched_draw(s, True, False),
    "B: refill per draw": lambda s: patched_draw(s, False, True),
    "A+B": lambda s: patched_draw(s, True, True),
}
fns = {} if only_init else {k: scan_of(v, draws) for k, v in variants.items()}
for k, f in fns.items():
    jax.block_until_ready(f(state))
times = {k: [] for k in fns}
for _ in range(7):
    for k, f in fns.items():
        c = time.process_time(); w = time.perf_counter()
        jax.block_until_ready(f(state))
        times[k].append(((time.perf_counter() - w) / (draws * 10) * 1e3, (time.process_time() - c) / (draws * 10) * 1e3))
base = statistics.median(t[1] for t in times["kernel as is"]) if fns else 1.0
for k, ts in times.items():
    wm = statistics.median(t[0] for t in ts); cm = statistics.median(t[1] for t in ts)
    print(f"{wl.name} {k:34s} wall {wm:.4f} ms/step  cpu {cm:.4f} ms/step  ({cm / base:.2f}x of as-is CPU)")

# fixed cost of sghmc_init: eager (as is) vs jitted
def timed_init(jit):
    f = lambda z, k: K.sghmc_init(st, z, k, (X, Y), {})  # noqa: E731
    g = jax.jit(f) if jit else f
    out = []
    for i in range(4):
        w = time.perf_counter(); jax.block_until_ready(g(theta0, random.PRNGKey(i))); out.append(time.perf_counter() - w)
    return out
print("sghmc_init eager, 4 calls (s):", [round(x, 3) for x in timed_init(False)])
print("sghmc_init jitted, 4 calls (s):", [round(x, 3) for x in timed_init(True)])
