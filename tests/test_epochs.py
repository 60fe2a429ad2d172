"""Minibatch epochs of the subsampled plates: without replacement within an epoch,
uniform over epochs, a fresh grouping each epoch, in both backends."""

import numpy as np
import pytest

N, B = 103, 10  # N mod B = 3: each epoch leaves three points out, as drop_last does
EPOCHS = 200


def _batches(backend, n, b, count, seed=0):
    """``count`` successive minibatches (count, b) of the backend's epoch machinery."""
    from ppl_kernels.config import SubsamplePlate

    plates = (SubsamplePlate("data", n, b),)
    if backend == "pyro":
        import torch

        from ppl_kernels.pyro import epochs

        g = torch.Generator().manual_seed(seed)
        bases, counters = epochs.split(epochs.init_epochs(plates, g))
        renew = epochs.renew_draws(plates, g, count)["data"]
        out = []
        for j in range(count):
            idx, counters = epochs.next_batch(plates, bases, counters, {"data": (renew[0][j], renew[1][j])})
            out.append(idx["data"].numpy())
        return np.stack(out)
    import jax
    from jax import random

    from ppl_kernels.numpyro import epochs

    k0, k1 = random.split(random.PRNGKey(seed))
    bases, counters = epochs.split(epochs.init_epochs(plates, k0))

    @jax.jit
    def run(counters):
        def step(counters, renew):
            idx, counters = epochs.next_batch(plates, bases, counters, {"data": renew})
            return counters, idx["data"]

        return jax.lax.scan(step, counters, epochs.renew_draws(plates, k1, count)["data"])[1]

    return np.asarray(run(counters))


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_epochs_without_replacement_and_uniform(backend):
    per_epoch = N // B
    idx = _batches(backend, N, B, EPOCHS * per_epoch).reshape(EPOCHS, per_epoch * B)
    # within an epoch no point repeats: all per_epoch * B indices distinct, all in range
    assert all(len(np.unique(e)) == per_epoch * B for e in idx)
    assert idx.min() >= 0 and idx.max() < N
    # over epochs every point is used equally often: each is left out with probability 3/N per epoch
    counts = np.bincount(idx.ravel(), minlength=N)
    p = per_epoch * B / N
    z = (counts - EPOCHS * p) / np.sqrt(EPOCHS * p * (1 - p))
    assert np.abs(z).max() < 5, np.abs(z).max()


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_epochs_regroup_the_data(backend):
    """Two points that share a minibatch in one epoch share one in the next epoch
    as often as under independent shuffles, not always (a fixed grouping)."""
    per_epoch, epochs = N // B, 300
    idx = _batches(backend, N, B, epochs * per_epoch, seed=1).reshape(epochs, per_epoch, B)
    kept = []
    for e in range(epochs - 1):
        group = np.full(N, -1)
        for g, batch in enumerate(idx[e + 1]):
            group[batch] = g
        i, j = np.triu_indices(B, 1)
        x, y = idx[e][:, i].ravel(), idx[e][:, j].ravel()
        kept.append(np.mean((group[x] == group[y]) & (group[x] >= 0)))
    # under independent shuffles: same-batch pairs of an epoch / all pairs
    expected = per_epoch * B * (B - 1) / (N * (N - 1))
    # the per-epoch fractions are heavy-tailed (an epoch order close to the last one keeps most
    # pairs), so the standard error comes from their own spread
    se = np.std(kept, ddof=1) / np.sqrt(len(kept))
    assert abs(np.mean(kept) - expected) < 5 * se, (np.mean(kept), expected, se)
    assert np.median(kept) < 3 * expected
