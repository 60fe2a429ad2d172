"""Small models for the ArviZ / diagnostics / comparison tests, in both backends.

Every model is a top-level function so that it pickles by reference into the
worker processes of :func:`ppl_kernels.temperature_sweep`.  The Pyro and
NumPyro versions are the same model line by line; ``batch=None`` gives the
full-data model, ``batch=B`` the same model with a subsampled plate.
"""

from __future__ import annotations

import numpy as np

N_TRAIN, N_TEST, DIM, NUM_CLASSES = 120, 40, 3, 3

_rng = np.random.default_rng(20240601)
X_ALL = _rng.normal(size=(N_TRAIN + N_TEST, DIM)).astype(np.float32)
W_TRUE = np.array([1.0, -0.5, 0.25], np.float32)
Y_REG_ALL = (X_ALL @ W_TRUE + 0.3 + 0.5 * _rng.normal(size=N_TRAIN + N_TEST)).astype(np.float32)
_logits = X_ALL @ np.array([[2.0, -1.0, 0.0], [0.0, 1.5, -1.5], [-1.0, 0.0, 1.0]], np.float32)
Y_CLS_ALL = np.array([_rng.choice(NUM_CLASSES, p=np.exp(g) / np.exp(g).sum()) for g in _logits], np.int64)

X_TRAIN, X_TEST = X_ALL[:N_TRAIN], X_ALL[N_TRAIN:]
Y_REG_TRAIN, Y_REG_TEST = Y_REG_ALL[:N_TRAIN], Y_REG_ALL[N_TRAIN:]
Y_CLS_TRAIN, Y_CLS_TEST = Y_CLS_ALL[:N_TRAIN], Y_CLS_ALL[N_TRAIN:]


# The Pyro and NumPyro versions are one definition over the PPL module (``ppl`` is
# ``pyro`` or ``numpyro``, ``dist`` its distributions), as in ppl_kernels.models.
def _linreg(ppl, dist, X, y, batch):
    w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([X.shape[1]]).to_event(1))
    b = ppl.sample("b", dist.Normal(0.0, 1.0))
    sigma = ppl.sample("sigma", dist.HalfNormal(1.0))
    ppl.deterministic("w_norm", (w**2).sum())
    with ppl.plate("data", X.shape[0], subsample_size=batch) as idx:
        ppl.sample("obs", dist.Normal(X[idx] @ w + b, sigma), obs=None if y is None else y[idx])


def _softmax(ppl, dist, X, y, batch):
    W = ppl.sample("W", dist.Normal(0.0, 1.0).expand([X.shape[1], NUM_CLASSES]).to_event(2))
    with ppl.plate("data", X.shape[0], subsample_size=batch) as idx:
        ppl.sample("y", dist.Categorical(logits=X[idx] @ W), obs=None if y is None else y[idx])


def linreg_numpyro(X, y=None, batch=None):
    """Bayesian linear regression (a positive-constrained noise scale, a deterministic site)."""
    import numpyro
    import numpyro.distributions as dist

    _linreg(numpyro, dist, X, y, batch)


def softmax_numpyro(X, y=None, batch=None):
    """Multinomial logistic regression (class probabilities for held-out accuracy / NLL)."""
    import numpyro
    import numpyro.distributions as dist

    _softmax(numpyro, dist, X, y, batch)


def linreg_pyro(X, y=None, batch=None):
    """The Pyro twin of :func:`linreg_numpyro`."""
    import pyro
    import pyro.distributions as dist

    _linreg(pyro, dist, X, y, batch)


def softmax_pyro(X, y=None, batch=None):
    """The Pyro twin of :func:`softmax_numpyro`."""
    import pyro
    import pyro.distributions as dist

    _softmax(pyro, dist, X, y, batch)


MODELS = {
    ("linreg", "numpyro"): linreg_numpyro,
    ("linreg", "pyro"): linreg_pyro,
    ("softmax", "numpyro"): softmax_numpyro,
    ("softmax", "pyro"): softmax_pyro,
}


def as_backend(backend, *arrays):
    """The arrays as the backend's array type (torch tensors, jax arrays)."""
    if backend == "pyro":
        import torch

        return tuple(torch.as_tensor(a) for a in arrays)
    import jax.numpy as jnp

    return tuple(jnp.asarray(a) for a in arrays)


def zeros(backend, **shapes):
    """``{name: zeros(shape)}`` in the backend's array type (initial values for potentials)."""
    return dict(zip(shapes, as_backend(backend, *(np.zeros(s, np.float32) for s in shapes.values()))))


def init_to_median(backend):
    """The backend's ``init_to_median`` (a top-level function, so it pickles)."""
    if backend == "pyro":
        from pyro.infer.autoguide import init_to_median as f
    else:
        from numpyro.infer import init_to_median as f
    return f


def regression_args(backend, batch=None, split="train"):
    X, y = (X_TRAIN, Y_REG_TRAIN) if split == "train" else (X_TEST, Y_REG_TEST)
    return (*as_backend(backend, X, y), batch)


def classification_args(backend, batch=None, split="train"):
    X, y = (X_TRAIN, Y_CLS_TRAIN) if split == "train" else (X_TEST, Y_CLS_TEST)
    return (*as_backend(backend, X, y), batch)


def gaussian_potential(z):
    """U(θ) = ‖θ‖²/2 over a dict of arrays: a standard normal, in either backend."""
    return sum((v * v).sum() for v in z.values()) / 2.0
