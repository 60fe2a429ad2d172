"""Minibatch indices of the subsampled plates: epochs without replacement, O(B) per step.

The twin of :mod:`ppl_kernels.pyro.epochs` (the same algorithm; the arithmetic
and its reasoning are in :func:`ppl_kernels.dynamics.stride_table`).  Per plate
the epoch state is ``(base, (stride, offset, batches_left))``: a random base
permutation, the only O(N) work of a run, drawn once per chain, and three
counters.  Random draws come from the chain's key only.
"""

from __future__ import annotations

import jax.numpy as jnp
from jax import random

from ..dynamics import stride_table

__all__ = ["first_indices", "init_epochs", "renew_draws", "next_batch", "split", "join"]


def first_indices(plates) -> dict:
    """The first ``B`` indices of every plate (a fixed minibatch for tracing the model)."""
    return {p.name: jnp.arange(p.subsample_size) for p in plates}


def init_epochs(plates, key) -> dict:
    """Per plate ``(base permutation, (stride, offset, batches_left))``, no epoch started."""
    zero = jnp.array(0, jnp.int32)
    keys = random.split(key, max(len(plates), 1))
    return {p.name: (random.permutation(k, p.size).astype(jnp.int32), (zero, zero, zero)) for p, k in zip(plates, keys)}


def renew_draws(plates, key, num_steps: int) -> dict:
    """Per plate, uniform stride indices and offsets for the epochs that may start
    during the next ``num_steps`` steps (drawn once per draw, none per step)."""
    out = {}
    for p, k in zip(plates, random.split(key, max(len(plates), 1))):
        ka, ko = random.split(k)
        n_strides = stride_table(p.size, p.subsample_size).shape[0]
        out[p.name] = (random.randint(ka, (num_steps,), 0, n_strides, jnp.int32),
                       random.randint(ko, (num_steps,), 0, p.size, jnp.int32))
    return out


def next_batch(plates, bases: dict, counters: dict, renew: dict):
    """Next minibatch of every plate and the advanced counters.

    ``renew[name] = (stride index, offset)`` is used only when a new epoch starts.
    Returns ``(indices, counters)``.
    """
    idx, new = {}, {}
    for p in plates:
        base = bases[p.name]
        stride, offset, left = counters[p.name]
        draw_stride, draw_offset = renew[p.name]
        table = jnp.asarray(stride_table(p.size, p.subsample_size))
        start = left == 0
        stride = jnp.where(start, table[draw_stride], stride)
        offset = jnp.where(start, draw_offset, offset)
        left = jnp.where(start, p.size // p.subsample_size, left)
        pos = (offset + stride * jnp.arange(p.subsample_size, dtype=jnp.int32)) % p.size
        idx[p.name] = base[pos]
        new[p.name] = (stride, (offset + stride * p.subsample_size) % p.size, left - 1)
    return idx, new


def split(epochs: dict):
    """``(bases, counters)`` of an epoch state: the step loop carries only the counters
    (no step copies an O(N) buffer)."""
    return {k: e[0] for k, e in epochs.items()}, {k: e[1] for k, e in epochs.items()}


def join(bases: dict, counters: dict) -> dict:
    """Inverse of :func:`split`."""
    return {k: (bases[k], counters[k]) for k in bases}
