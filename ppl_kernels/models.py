"""The models of the command line and the examples, written for both backends.

Each model is written once, over the PPL module (``pyro`` or ``numpyro``, which
share ``sample``, ``plate``, ``factor`` and the distributions used), and
exposed as a Pyro and a NumPyro function with the same sites, priors and
arguments; :func:`get_model`
returns one of them together with its data and the kernel settings that suit
it, as a :class:`ModelSpec`.  The model functions are top-level functions (so
they pickle for multi-process chains) and take all their data as positional
arguments ``(X, y, subsample_size)``.

=================  ==========================================================
``bnn-digits``     a one-hidden-layer Bayesian MLP on scikit-learn's digits
                   (64 standardised pixels, 10 classes), minibatched
``logreg-cancer``  Bayesian logistic regression on the breast-cancer data
                   (30 standardised features), minibatched
``double-well``    U(θ) = −2θ² + θ⁴ with N(0, 4) gradient noise (Chen et al.
                   2014, Fig. 1)
``mixture-2d``     a 2-D mixture of four Gaussians with N(0, 1) gradient noise
=================  ==========================================================

The two potentials are written as models: a flat prior on θ (a normal whose
log density is masked out, so that every init strategy can still draw a
point), the potential as a ``factor`` site, and a subsampled plate of
zero-sum linear terms whose minibatch estimate adds Gaussian-like noise to the
gradient while leaving the full-data potential exactly unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache, reduce
from typing import Any, Callable

import numpy as np

__all__ = [
    "ModelSpec",
    "MODELS",
    "get_model",
    "load_data",
    "double_well_potential",
    "mixture_2d_potential",
    "MIXTURE_MEANS",
    "MIXTURE_SCALE",
    "gradient_noise_coefficients",
]

#: Names accepted by :func:`get_model` (and by ``ppl-kernels sweep --model``).
MODELS = ("bnn-digits", "logreg-cancer", "double-well", "mixture-2d")

#: Hidden units of the digits MLP.
HIDDEN = 32
#: Held-out fraction and split seed of both data sets.
TEST_FRACTION = 0.25
SPLIT_SEED = 0
#: Size of the zero-sum "data set" that carries the potentials' gradient noise.
NOISE_POINTS = 1000
#: Centres and common standard deviation of the ``mixture-2d`` components.
MIXTURE_MEANS = ((-2.5, -2.5), (-2.5, 2.5), (2.5, -2.5), (2.5, 2.5))
MIXTURE_SCALE = 0.6


@dataclass(frozen=True)
class ModelSpec:
    """A model ready to sample, with its data and suitable kernel settings.

    Attributes
    ----------
    name : str
        One of :data:`MODELS`.
    backend : {"pyro", "numpyro"}
    model : callable
        The model function, called as ``model(*model_args)``.
    model_args : tuple
        ``(X_train, y_train, subsample_size)`` as backend arrays.
    test_data : tuple or None
        ``(X_test, y_test)`` as backend arrays for the data models, ``None``
        for the potentials (see :meth:`predictions`).
    kernel_kwargs : dict
        Plain-SGHMC keyword arguments that keep this model's runs sane
        (step size, steps per draw, friction, used as given: no warmup
        adaptation; for the MLP a small initial point, as networks are
        initialised for training); the norm-adjusting settings are applied on
        top by the caller.
    obs_site : str or None
        Name of the observed site of the data models.
    num_data : int
        Training-set size N (the plate size).
    log_density : callable or None
        For the potentials, the exact un-normalised log density
        ``theta (..., d) -> -U(theta)`` in NumPy, for comparing sampled and exact
        densities.
    description : str
    """

    name: str
    backend: str
    model: Callable
    model_args: tuple
    test_data: tuple | None
    kernel_kwargs: dict
    obs_site: str | None
    num_data: int
    log_density: Callable | None = None
    description: str = ""

    def predictions(self) -> dict | None:
        """The ``predictions=`` argument of :func:`ppl_kernels.to_inference_data`
        (and of :func:`ppl_kernels.temperature_sweep`) for the held-out data."""
        if self.test_data is None:
            return None
        X, y = self.test_data
        return {"model_args": (X, None, None), "observed": {self.obs_site: y}}


# -- data ------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def load_data(name: str):
    """Standardised train/test split of a scikit-learn data set, as NumPy arrays.

    Parameters
    ----------
    name : {"digits", "cancer"}

    Returns
    -------
    X_train, y_train, X_test, y_test : numpy.ndarray
        ``float32`` features standardised with the training set's mean and
        standard deviation (constant pixels left at 0), ``int64`` labels.  The
        split is stratified with a fixed seed, so it is identical in every run.
    """
    from sklearn.datasets import load_breast_cancer, load_digits
    from sklearn.model_selection import train_test_split

    loaders = {"digits": load_digits, "cancer": load_breast_cancer}
    if name not in loaders:
        raise ValueError(f"name must be one of {sorted(loaders)}, got {name!r}")
    X, y = loaders[name](return_X_y=True)
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    mean, std = X_tr.mean(0), X_tr.std(0)
    std[std == 0] = 1.0

    def f(a):
        return ((a - mean) / std).astype(np.float32)

    return f(X_tr), y_tr.astype(np.int64), f(X_te), y_te.astype(np.int64)


def gradient_noise_coefficients(sigma: float, dim: int, n: int = NOISE_POINTS, seed: int = 0) -> np.ndarray:
    """Coefficients ``c`` (n, dim) of zero-sum linear terms ``c_i · θ``.

    Their sum is exactly 0, so the full-data potential is unchanged, and a
    minibatch of one point scaled by ``n`` adds ``n c_i`` to the gradient: per
    coordinate, the normal quantiles rescaled to mean 0 and variance
    ``sigma²``, in a random order, i.e. a discretised ``N(0, sigma²)`` noise.
    """
    from scipy.special import ndtri

    rng = np.random.default_rng(seed)
    q = ndtri((np.arange(n) + 0.5) / n)
    q = (q - q.mean()) / q.std()
    cols = [rng.permutation(q) for _ in range(dim)]
    return (sigma * np.stack(cols, axis=1) / n).astype(np.float32)


# -- potentials (NumPy, and generic over the array namespace) --------------------------


def double_well_potential(theta, xp=np):
    """U(θ) = −2θ² + θ⁴ (Chen et al. 2014, Fig. 1); ``xp`` is the array namespace."""
    return -2.0 * theta**2 + theta**4


def mixture_2d_potential(theta, xp=np):
    """U(θ) = −log Σ_k exp(−‖θ − μ_k‖² / 2s²) for θ of shape (..., 2).

    Four equal components at :data:`MIXTURE_MEANS` with s = :data:`MIXTURE_SCALE`
    (the normalising constant is dropped).  Written with ``maximum``, ``exp``
    and ``log`` only, so that ``xp`` may be NumPy, PyTorch or ``jax.numpy``; the
    largest exponent is factored out so that U stays finite far from the modes.
    """
    a = [-0.5 * ((theta[..., 0] - mx) ** 2 + (theta[..., 1] - my) ** 2) / MIXTURE_SCALE**2 for mx, my in MIXTURE_MEANS]
    m = reduce(xp.maximum, a)
    return -(m + xp.log(sum(xp.exp(ak - m) for ak in a)))


# -- the models, written once over the PPL module -------------------------------------
# ``ppl`` is ``pyro`` or ``numpyro`` and ``dist`` its distributions module: the two
# share ``sample``, ``plate``, ``factor`` and the distributions used here, so each
# model below is one function, and the backends' versions cannot drift apart.


def _mlp(ppl, dist, tanh, X, y, subsample_size, hidden, num_classes):
    n, p = X.shape
    w1 = ppl.sample("w1", dist.Normal(0.0, 1.0).expand([p, hidden]).to_event(2))
    b1 = ppl.sample("b1", dist.Normal(0.0, 1.0).expand([hidden]).to_event(1))
    w2 = ppl.sample("w2", dist.Normal(0.0, 1.0).expand([hidden, num_classes]).to_event(2))
    b2 = ppl.sample("b2", dist.Normal(0.0, 1.0).expand([num_classes]).to_event(1))
    with ppl.plate("data", n, subsample_size=subsample_size) as idx:
        logits = tanh(X[idx] @ w1 + b1) @ w2 + b2
        ppl.sample("y", dist.Categorical(logits=logits), obs=None if y is None else y[idx])


def _logreg(ppl, dist, X, y, subsample_size):
    n, p = X.shape
    w = ppl.sample("w", dist.Normal(0.0, 1.0).expand([p]).to_event(1))
    b = ppl.sample("b", dist.Normal(0.0, 1.0))
    with ppl.plate("data", n, subsample_size=subsample_size) as idx:
        ppl.sample("y", dist.Bernoulli(logits=X[idx] @ w + b), obs=None if y is None else y[idx])


def _potential_model(ppl, dist, xp, potential, coef, subsample_size):
    d = coef.shape[1]
    theta = ppl.sample("theta", dist.Normal(0.0, 1.0).expand([d]).to_event(1).mask(False))  # flat prior
    ppl.factor("potential", -potential(theta if d > 1 else theta[0], xp=xp))
    with ppl.plate("noise", coef.shape[0], subsample_size=subsample_size) as idx:
        ppl.factor("gradient_noise", -(coef[idx] @ theta))


def _pyro():
    import pyro
    import pyro.distributions as dist
    import torch

    return pyro, dist, torch


def _numpyro():
    import jax.numpy as jnp
    import numpyro
    import numpyro.distributions as dist

    return numpyro, dist, jnp


def bnn_pyro(X, y=None, subsample_size=None, hidden=HIDDEN, num_classes=10):
    """One-hidden-layer tanh MLP with N(0, 1) priors on every weight (Pyro)."""
    pyro, dist, torch = _pyro()
    _mlp(pyro, dist, torch.tanh, X, y, subsample_size, hidden, num_classes)


def bnn_numpyro(X, y=None, subsample_size=None, hidden=HIDDEN, num_classes=10):
    """One-hidden-layer tanh MLP with N(0, 1) priors on every weight (NumPyro)."""
    numpyro, dist, jnp = _numpyro()
    _mlp(numpyro, dist, jnp.tanh, X, y, subsample_size, hidden, num_classes)


def logreg_pyro(X, y=None, subsample_size=None):
    """Logistic regression with N(0, 1) priors on the weights and the intercept (Pyro)."""
    pyro, dist, _ = _pyro()
    _logreg(pyro, dist, X, y, subsample_size)


def logreg_numpyro(X, y=None, subsample_size=None):
    """Logistic regression with N(0, 1) priors on the weights and the intercept (NumPyro)."""
    numpyro, dist, _ = _numpyro()
    _logreg(numpyro, dist, X, y, subsample_size)


def double_well_pyro(coef, y=None, subsample_size=1):
    """θ ∈ R¹ with U(θ) = −2θ² + θ⁴ and minibatch gradient noise (Pyro)."""
    _potential_model(*_pyro(), double_well_potential, coef, subsample_size)


def double_well_numpyro(coef, y=None, subsample_size=1):
    """θ ∈ R¹ with U(θ) = −2θ² + θ⁴ and minibatch gradient noise (NumPyro)."""
    _potential_model(*_numpyro(), double_well_potential, coef, subsample_size)


def mixture_2d_pyro(coef, y=None, subsample_size=1):
    """θ ∈ R² in a four-component Gaussian mixture potential with gradient noise (Pyro)."""
    _potential_model(*_pyro(), mixture_2d_potential, coef, subsample_size)


def mixture_2d_numpyro(coef, y=None, subsample_size=1):
    """θ ∈ R² in a four-component Gaussian mixture potential with gradient noise (NumPyro)."""
    _potential_model(*_numpyro(), mixture_2d_potential, coef, subsample_size)


# -- registry --------------------------------------------------------------------------

_FUNCTIONS = {
    ("bnn-digits", "pyro"): bnn_pyro,
    ("bnn-digits", "numpyro"): bnn_numpyro,
    ("logreg-cancer", "pyro"): logreg_pyro,
    ("logreg-cancer", "numpyro"): logreg_numpyro,
    ("double-well", "pyro"): double_well_pyro,
    ("double-well", "numpyro"): double_well_numpyro,
    ("mixture-2d", "pyro"): mixture_2d_pyro,
    ("mixture-2d", "numpyro"): mixture_2d_numpyro,
}

# Plain-SGHMC settings per model (see docs/theory.rst, "Choosing ε and C").
# For the data models U is a sum over N points, so ε is small: ε²N/M is the
# learning rate on the mean loss (≈ 0.1 for the MLP); εC/M is the momentum
# decay per step.  These are the published, hand-set values the research runs
# reproduce: used as given (no warmup adaptation; friction is C itself).
_FIXED = dict(adapt_step_size=False, adapt_mass_matrix=False)
_DEFAULTS: dict[str, dict[str, Any]] = {
    "bnn-digits": dict(
        kernel=dict(step_size=0.01, num_steps=20, friction=10.0, **_FIXED),
        batch=100,
        description="Bayesian MLP (64-32-10, tanh) on scikit-learn digits, minibatch 100",
    ),
    "logreg-cancer": dict(
        kernel=dict(step_size=0.01, num_steps=20, friction=10.0, **_FIXED),
        batch=64,
        description="Bayesian logistic regression on breast cancer (30 features), minibatch 64",
    ),
    "double-well": dict(
        kernel=dict(step_size=0.1, num_steps=50, friction=3.0, **_FIXED),
        batch=1, noise_sigma=2.0,
        description="U = -2θ² + θ⁴ with N(0, 4) gradient noise (Chen et al. 2014, Fig. 1)",
    ),
    "mixture-2d": dict(
        kernel=dict(step_size=0.05, num_steps=20, friction=1.0, **_FIXED),
        batch=1, noise_sigma=1.0,
        description="four-mode 2-D Gaussian mixture with N(0, 1) gradient noise",
    ),
}


def _as_backend(backend: str, *arrays):
    if backend == "pyro":
        import torch

        return tuple(None if a is None else torch.as_tensor(a) for a in arrays)
    import jax.numpy as jnp

    return tuple(None if a is None else jnp.asarray(a) for a in arrays)


def _init(name: str, backend: str) -> dict:
    """The MLP starts near 0 (weights in ±0.1), as a network does before training;
    the other models use the kernels' default (uniform in ±2, unconstrained)."""
    if name != "bnn-digits":
        return {}
    if backend == "pyro":
        from pyro.infer.autoguide.initialization import init_to_uniform
    else:
        from numpyro.infer import init_to_uniform
    return {"init_strategy": init_to_uniform(radius=0.1)}


def get_model(name: str, backend: str, *, subsample_size: int | None = None) -> ModelSpec:
    """Return the model ``name`` for ``backend`` with its data and kernel defaults.

    Parameters
    ----------
    name : str
        One of :data:`MODELS`.
    backend : {"pyro", "numpyro"}
    subsample_size : int, optional
        Minibatch size of the model's plate (defaults per model: 100 for the
        MLP, 64 for the logistic regression, 1 for the potentials' noise plate).

    Returns
    -------
    ModelSpec

    Raises
    ------
    ValueError
        For an unknown name or backend, or a subsample size outside
        ``[1, N]``.

    Examples
    --------
    >>> spec = get_model("logreg-cancer", "numpyro")  # doctest: +SKIP
    >>> mcmc = MCMC(SGHMC(spec.model, **spec.kernel_kwargs), num_warmup=100, num_samples=100)  # doctest: +SKIP
    >>> mcmc.run(jax.random.PRNGKey(0), *spec.model_args)  # doctest: +SKIP
    """
    if name not in MODELS:
        raise ValueError(f"name must be one of {MODELS}, got {name!r}")
    from .runner import BACKENDS

    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    d = _DEFAULTS[name]
    batch = d["batch"] if subsample_size is None else subsample_size
    if name in ("bnn-digits", "logreg-cancer"):
        X_tr, y_tr, X_te, y_te = load_data("digits" if name == "bnn-digits" else "cancer")
        if name == "logreg-cancer":
            y_tr, y_te = y_tr.astype(np.float32), y_te.astype(np.float32)
        n = X_tr.shape[0]
        train = _as_backend(backend, X_tr, y_tr)
        test = _as_backend(backend, X_te, y_te)
        log_density, obs = None, "y"
    else:
        dim = 1 if name == "double-well" else 2
        coef = gradient_noise_coefficients(d["noise_sigma"], dim)
        n = coef.shape[0]
        train = _as_backend(backend, coef) + (None,)
        test = None
        potential = double_well_potential if name == "double-well" else mixture_2d_potential
        log_density = (lambda th: -potential(th[..., 0])) if dim == 1 else (lambda th: -potential(th))
        obs = None
    if isinstance(batch, bool) or not isinstance(batch, (int, np.integer)) or not 1 <= batch <= n:
        raise ValueError(f"subsample_size must be an integer in [1, {n}] for {name}, got {subsample_size!r}")
    return ModelSpec(
        name=name, backend=backend, model=_FUNCTIONS[(name, backend)],
        model_args=(*train, int(batch)), test_data=test,
        kernel_kwargs={**d["kernel"], **_init(name, backend)},
        obs_site=obs, num_data=int(n), log_density=log_density, description=d["description"],
    )
