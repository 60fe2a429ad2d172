"""The benchmark's workloads: sizes, data, models and the hand-written potential.

====  =====================================================  ======  ======
name  model                                                  N       B
====  =====================================================  ======  ======
W1    Bayesian MLP 64-100-100-10, sklearn digits             1797    128
W2    Bayesian MLP 784-400-400-10, synthetic                 10 000  256
W3    Bayesian logistic regression, d = 50 + intercept       10 000  100
W4    Bayesian MLP 784-1200-1200-10, synthetic               60 000  1000
====  =====================================================  ======  ======

W3 is ``ppl_kernels.models``' logistic regression (``logreg_pyro`` /
``logreg_numpyro``).  That module's MLP has one hidden layer, so the deeper
MLPs are written here, once over the PPL module as ``ppl_kernels.models``
writes its models, rather than in ``ppl_kernels.models``: a ``--baseline``
copy of the package (an older commit) must find every model it is given.

The bare-gradient rows need the potential without the PPL machinery; it is
written once here, generic over the array library, and each run checks it
against the model (``potential_matches_model``).

Nothing here imports ``ppl_kernels`` at module level: a child process of a
``--baseline`` run imports this module before it puts the older copy first on
``sys.path``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["WORKLOADS", "Workload", "forward", "init_params", "make_data", "model", "potential_parts"]


@dataclass(frozen=True)
class Workload:
    """One benchmark problem: a model family, its sizes and its data.

    Attributes
    ----------
    name : str
        ``"W1"`` .. ``"W4"``, or ``"W3-N1000"`` for the N-scaling section.
    title : str
    kind : {"mlp", "logistic"}
    sizes : tuple of int
        Layer widths (``mlp``) or ``(d,)`` (``logistic``).
    n : int
        Data set size N (the plate size).
    batch : int
        Minibatch size B.
    data : {"digits", "synthetic"}
    step_size : float
        The kernels' step size (small enough that no run diverges).
    """

    name: str
    title: str
    kind: str
    sizes: tuple
    n: int
    batch: int
    data: str
    step_size: float

    def param_shapes(self) -> dict[str, tuple]:
        """Latent sites and their shapes, in the model's sampling order."""
        if self.kind == "logistic":
            return {"w": (self.sizes[0],), "b": ()}
        shapes = {}
        for i, (a, b) in enumerate(zip(self.sizes[:-1], self.sizes[1:])):
            shapes[f"w{i}"] = (a, b)
            shapes[f"b{i}"] = (b,)
        return shapes

    @property
    def dim(self) -> int:
        """Number of latent dimensions d."""
        return sum(math.prod(s) for s in self.param_shapes().values())

    def with_n(self, n: int) -> Workload:
        """The same model and minibatch on ``n`` data points."""
        return Workload(f"{self.name}-N{n}", self.title, self.kind, self.sizes, n, self.batch, self.data,
                        self.step_size)


WORKLOADS: dict[str, Workload] = {
    "W1": Workload("W1", "Bayesian MLP 64-100-100-10 on digits", "mlp", (64, 100, 100, 10), 1797, 128, "digits",
                   1e-3),
    "W2": Workload("W2", "Bayesian MLP 784-400-400-10, synthetic", "mlp", (784, 400, 400, 10), 10_000, 256,
                   "synthetic", 3e-4),
    "W3": Workload("W3", "logistic regression d=50 + intercept, synthetic", "logistic", (50,), 10_000, 100,
                   "synthetic", 1e-3),
    "W4": Workload("W4", "Bayesian MLP 784-1200-1200-10, synthetic", "mlp", (784, 1200, 1200, 10), 60_000, 1000,
                   "synthetic", 1e-4),
}


def make_data(wl: Workload, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and labels of a workload.

    Parameters
    ----------
    wl : Workload
    seed : int
        Seed of the synthetic data (unused for digits).

    Returns
    -------
    X : numpy.ndarray
        ``float32`` inputs ``(N, sizes[0])``.
    y : numpy.ndarray
        ``int32`` labels: class indices, or 0/1 for the logistic regression.
    """
    rng = np.random.default_rng(seed)
    if wl.data == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        return (d.data / 16.0).astype(np.float32), d.target.astype(np.int32)
    X = rng.standard_normal((wl.n, wl.sizes[0]), dtype=np.float32)
    if wl.kind == "logistic":
        w = rng.standard_normal(wl.sizes[0]) / math.sqrt(wl.sizes[0])
        y = rng.random(wl.n) < 1.0 / (1.0 + np.exp(-(X @ w)))
        return X, y.astype(np.int32)
    # labels from a random teacher network, so that the classes are learnable
    W = rng.standard_normal((wl.sizes[0], wl.sizes[-1])) / math.sqrt(wl.sizes[0])
    return X, np.argmax(X @ W + 0.5 * rng.standard_normal((wl.n, wl.sizes[-1])), axis=1).astype(np.int32)


def init_params(wl: Workload, seed: int = 1) -> dict[str, np.ndarray]:
    """A small random starting point (Glorot-like scale), the same for every method."""
    rng = np.random.default_rng(seed)
    # asarray: a scalar site (the intercept) must stay a 0-d array, not become a NumPy scalar
    return {k: np.asarray(rng.standard_normal(s) / math.sqrt(s[0] if len(s) == 2 else 1e4), dtype=np.float32)
            for k, s in wl.param_shapes().items()}


def forward(wl: Workload, params: dict, x, tanh):
    """Logits of the workload's model for inputs ``x``.

    Array-library agnostic: only ``@``, ``+`` and the given ``tanh`` are used.
    """
    if wl.kind == "logistic":
        return x @ params["w"] + params["b"]
    h = x
    layers = len(wl.sizes) - 1
    for i in range(layers):
        h = h @ params[f"w{i}"] + params[f"b{i}"]
        if i < layers - 1:
            h = tanh(h)
    return h


def potential_parts(wl: Workload, tanh, softplus, log_softmax_pick):
    """Hand-written ``(loglik, logprior, potential)`` of the workload's model.

    Parameters
    ----------
    wl : Workload
    tanh, softplus : callable
        The array library's functions.
    log_softmax_pick : callable
        ``(logits (B, K), y (B,)) -> log_softmax(logits)[i, y_i]``.

    Returns
    -------
    loglik : callable
        ``(params, x, y) -> (B,)`` per-point log likelihoods.
    logprior : callable
        ``params -> log p(θ)`` (standard normal priors).
    potential : callable
        ``(params, x, y) -> -(log p(θ) + N/B Σ log p(y|x, θ))``, the minibatch
        estimate the kernels get from the model with a subsampled plate.
    """
    half_log_2pi = 0.5 * math.log(2 * math.pi)

    def loglik(params, x, y):
        logits = forward(wl, params, x, tanh)
        if wl.kind == "logistic":
            return y * logits - softplus(logits)
        return log_softmax_pick(logits, y)

    def logprior(params):
        return sum((-0.5 * v * v - half_log_2pi).sum() for v in params.values())

    def potential(params, x, y):
        return -(logprior(params) + (wl.n / x.shape[0]) * loglik(params, x, y).sum())

    return loglik, logprior, potential


# -- the models ------------------------------------------------------------------------


def _mlp(ppl, dist, tanh, X, y, subsample_size, wl):
    """tanh MLP with N(0, 1) priors on every weight, over the PPL module ``ppl``."""
    params = {}
    for k, shape in wl.param_shapes().items():
        params[k] = ppl.sample(k, dist.Normal(0.0, 1.0).expand(list(shape)).to_event(len(shape)))
    with ppl.plate("data", X.shape[0], subsample_size=subsample_size) as idx:
        # the full-data model (for HMC) uses X as it is: no gather of all N rows per gradient
        x, obs = (X, y) if subsample_size is None else (X[idx], y[idx])
        ppl.sample("y", dist.Categorical(logits=forward(wl, params, x, tanh)), obs=obs)


def _mlp_pyro(X, y, subsample_size, wl):
    import pyro
    import pyro.distributions as dist
    import torch

    _mlp(pyro, dist, torch.tanh, X, y, subsample_size, wl)


def _mlp_numpyro(X, y, subsample_size, wl):
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    _mlp(numpyro, dist, jnp.tanh, X, y, subsample_size, wl)


def model(wl: Workload, backend: str, subsample: bool = True):
    """The workload's model for ``backend``, called as ``model(X, y)``.

    Parameters
    ----------
    wl : Workload
    backend : {"pyro", "numpyro"}
    subsample : bool
        Subsample the data plate to ``wl.batch`` points (the SGHMC rows), or
        not (the full-data HMC rows: both hosts' HMC refuse subsampled plates).

    Returns
    -------
    callable
        The model with its minibatch size bound, so that the jitted NumPyro
        runs see it as a static number.
    """
    size = wl.batch if subsample else None
    if wl.kind == "logistic":
        from ppl_kernels import models

        fn = models.logreg_numpyro if backend == "numpyro" else models.logreg_pyro
        return functools.partial(fn, subsample_size=size)
    fn = _mlp_numpyro if backend == "numpyro" else _mlp_pyro
    return functools.partial(fn, subsample_size=size, wl=wl)
