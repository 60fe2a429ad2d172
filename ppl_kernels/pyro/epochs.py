"""Minibatch indices of the subsampled plates: epochs without replacement, O(B) per step.

The twin of :mod:`ppl_kernels.numpyro.epochs` (the same algorithm; the arithmetic
and its reasoning are in :func:`ppl_kernels.dynamics.stride_table`).  Per plate
the epoch state is ``(base, (stride, offset, batches_left))``: a random base
permutation, the only O(N) work of a run, drawn once per chain, and three
counters (Python integers: the Pyro kernel runs eagerly).  Random draws come
from the chain's own :class:`torch.Generator` only.
"""

from __future__ import annotations

import functools

import torch

from ..dynamics import stride_table

__all__ = ["first_indices", "init_epochs", "renew_draws", "next_batch", "split", "join"]


def first_indices(plates) -> dict:
    """The first ``B`` indices of every plate (a fixed minibatch for tracing the model)."""
    return {p.name: torch.arange(p.subsample_size) for p in plates}


def init_epochs(plates, key) -> dict:
    """Per plate ``(base permutation, (stride, offset, batches_left))``, no epoch started;
    ``key`` is the chain's :class:`torch.Generator` (NumPyro's twin takes a PRNG key)."""
    return {p.name: (torch.randperm(p.size, generator=key), (0, 0, 0)) for p in plates}


def renew_draws(plates, key, num_steps: int) -> dict:
    """Per plate, uniform stride indices and offsets for the epochs that may start
    during the next ``num_steps`` steps (drawn once per draw, none per step)."""
    out = {}
    for p in plates:
        n_strides = stride_table(p.size, p.subsample_size).shape[0]
        out[p.name] = (torch.randint(0, n_strides, (num_steps,), generator=key).tolist(),
                       torch.randint(0, p.size, (num_steps,), generator=key).tolist())
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
        if left == 0:
            stride = int(stride_table(p.size, p.subsample_size)[int(draw_stride)])
            offset, left = int(draw_offset), p.size // p.subsample_size
        pos = (offset + stride * _arange(p.subsample_size, base.device)) % p.size
        idx[p.name] = base[pos]
        new[p.name] = (stride, (offset + stride * p.subsample_size) % p.size, left - 1)
    return idx, new


@functools.lru_cache(maxsize=None)
def _arange(n: int, device) -> torch.Tensor:
    # one per batch size: the step is eager, and a fresh arange per step is measurable on small models
    return torch.arange(n, device=device)


def split(epochs: dict):
    """``(bases, counters)`` of an epoch state."""
    return {k: e[0] for k, e in epochs.items()}, {k: e[1] for k, e in epochs.items()}


def join(bases: dict, counters: dict) -> dict:
    """Inverse of :func:`split`."""
    return {k: (bases[k], counters[k]) for k in bases}
