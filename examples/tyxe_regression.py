"""TyXe's Bayesian neural net, sampled by SGHMC with its defaults, full batch and with minibatches.

TyXe (a Pyro library for Bayesian neural nets) builds the model from a torch
network, a prior and a likelihood, and runs any Pyro MCMC kernel through
``MCMC_BNN(net, prior, likelihood, kernel_builder)``.  Its likelihood takes the
data batch from outside (``pyro.plate(size=N, subsample=...)``), so SGHMC is
told which arguments to cut into minibatches with ``Minibatches``::

    tyxe.bnn.MCMC_BNN(net, prior, likelihood, lambda m: pyro.infer.HMC(m, step_size=1e-3, num_steps=50))
    tyxe.bnn.MCMC_BNN(net, prior, likelihood, lambda m: SGHMC(m))                                  # full batch
    tyxe.bnn.MCMC_BNN(net, prior, likelihood, lambda m: SGHMC(m, minibatches=Minibatches(N, 20)))  # minibatches

The data are those of TyXe's 1-D regression example: 100 points of
``cos(4x + 0.8)`` with noise 0.1, in two clusters with a gap between them, and a
network of 50 tanh units (151 weights, N(0, 1) prior).  The script prints, per
kernel, the held-out error of the posterior-predictive mean on a grid over
[-1.2, 1.2] (``mse``; and on the grid points inside the data's clusters,
``mse_data``), the mean held-out log predictive density per point (``lpd``),
‖θ‖²'s mean, the divergences, the wall time and the gradients per kept draw, and
plots the three predictive bands.

Run ``python examples/tyxe_regression.py`` (about a minute) or ``--quick``.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

#: Noise of the data and of TyXe's likelihood, number of points, minibatch.
SIGMA, N, BATCH = 0.1, 100, 20
#: TyXe's documented HMC settings for this example.
HMC_SETTINGS = dict(step_size=1e-3, num_steps=50)
KERNELS = ("TyXe HMC", "SGHMC full batch", f"SGHMC minibatch {BATCH}")


def data(seed: int = 0):
    """``(x, y, x_grid, f_grid)``: TyXe's two clusters of noisy ``cos(4x + 0.8)`` and the
    noise-free function on a grid over [-1.2, 1.2]."""
    import torch

    g = torch.Generator().manual_seed(seed)
    x = torch.cat([torch.rand(N // 2, 1, generator=g) * 0.3 - 1, torch.rand(N // 2, 1, generator=g) * 0.5 + 0.5])
    y = x.mul(4).add(0.8).cos() + SIGMA * torch.randn(x.shape, generator=g)
    grid = torch.linspace(-1.2, 1.2, 200).unsqueeze(-1)
    return x, y, grid, grid.mul(4).add(0.8).cos()


def builder(name: str):
    """TyXe's ``kernel_builder`` for one of :data:`KERNELS`."""
    import pyro

    from ppl_kernels import Minibatches
    from ppl_kernels.pyro import SGHMC

    if name == KERNELS[0]:
        return lambda model: pyro.infer.HMC(model, **HMC_SETTINGS)
    if name == KERNELS[1]:
        return lambda model: SGHMC(model)
    return lambda model: SGHMC(model, minibatches=Minibatches(N, BATCH))


def fit(name: str, x, y, *, num_warmup: int, num_samples: int, seed: int = 0):
    """Fit TyXe's BNN with one kernel; return ``(bnn, mcmc, seconds, rows)``, ``rows`` the
    number of data rows most passes through the network saw."""
    import pyro
    import pyro.distributions as dist
    import torch
    import tyxe
    from torch import nn

    pyro.clear_param_store()
    torch.manual_seed(seed)
    pyro.set_rng_seed(seed)
    net = nn.Sequential(nn.Linear(1, 50), nn.Tanh(), nn.Linear(50, 1))
    rows = []
    hook = net.register_forward_hook(lambda module, inputs, output: rows.append(inputs[0].shape[0]))
    bnn = tyxe.bnn.MCMC_BNN(net, tyxe.priors.IIDPrior(dist.Normal(0.0, 1.0)),
                            tyxe.likelihoods.HomoskedasticGaussian(N, scale=SIGMA), builder(name))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=N)
    start = time.perf_counter()
    mcmc = bnn.fit(loader, num_samples, warmup_steps=num_warmup, disable_progbar=True)
    seconds = time.perf_counter() - start
    hook.remove()
    return bnn, mcmc, seconds, max(set(rows), key=rows.count)


def evaluate(bnn, mcmc, grid, f_grid, num_samples: int):
    """The predictive draws on the grid and the table row's held-out numbers."""
    import torch

    with torch.no_grad():
        preds = bnn.predict(grid, num_predictions=num_samples, aggregate=False)  # (draws, points, 1)
    preds = preds[..., 0] if preds.dim() == 3 else preds
    mean = preds.mean(0)
    truth = f_grid[:, 0]
    inside = ((grid[:, 0] >= -1.0) & (grid[:, 0] <= -0.7)) | ((grid[:, 0] >= 0.5) & (grid[:, 0] <= 1.0))
    # log of the draws' average density of the noise-free value under N(f_θ, σ²)
    log_dens = torch.distributions.Normal(preds, SIGMA).log_prob(truth)
    lpd = torch.logsumexp(log_dens, 0) - math.log(preds.shape[0])
    samples = mcmc.get_samples()
    theta_sq = sum(v.reshape(v.shape[0], -1).pow(2).sum(1) for v in samples.values())
    divergences = sum(len(v) for v in mcmc.diagnostics().get("divergences", {}).values())
    return preds.numpy(), {"mse": float((mean - truth).pow(2).mean()), "mse_data": float((mean - truth)[inside].pow(2).mean()),
                           "lpd": float(lpd.mean()), "theta_sq_mean": float(theta_sq.mean()), "divergences": int(divergences)}


def run(*, num_warmup: int = 200, num_samples: int = 200, hmc_draws: tuple | None = None, seed: int = 0):
    """Fit with each of :data:`KERNELS` (HMC with ``hmc_draws = (warmup, samples)`` if
    given); return ``(table, grid, predictive draws per kernel, data)``."""
    import pandas as pd

    x, y, grid, f_grid = data(seed)
    rows, bands = [], {}
    for name in KERNELS:
        n_warm, n_samp = hmc_draws if hmc_draws and name == KERNELS[0] else (num_warmup, num_samples)
        bnn, mcmc, seconds, seen = fit(name, x, y, num_warmup=n_warm, num_samples=n_samp, seed=seed)
        preds, row = evaluate(bnn, mcmc, grid, f_grid, n_samp)
        kernel = mcmc.kernel
        grads = HMC_SETTINGS["num_steps"] if name == KERNELS[0] else kernel.config.num_steps
        rows.append({"kernel": name, **row, "draws": n_samp, "rows per pass": seen, "s": seconds,
                     "gradients per draw": grads})
        bands[name] = preds
    return pd.DataFrame(rows).set_index("kernel"), grid[:, 0].numpy(), bands, (x, y)


def figure(grid, bands, xy):
    """The posterior-predictive mean and 90 % band of f per kernel, with the data."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 2.8), layout="constrained")
    x, y = xy
    for ax, (name, preds) in zip(fig.subplots(1, len(bands), sharey=True), bands.items()):
        lo, hi = np.quantile(preds, [0.05, 0.95], axis=0)
        ax.fill_between(grid, lo, hi, alpha=0.3)
        ax.plot(grid, preds.mean(0), lw=1)
        ax.plot(grid, np.cos(4 * grid + 0.8), color="k", lw=0.6, ls="--")
        ax.plot(x[:, 0].numpy(), y[:, 0].numpy(), "k.", ms=2)
        ax.set_title(name, fontsize="medium")
        ax.set_ylim(-2.5, 2.5)
    return fig


def main(argv=None):
    """Run the comparison, print the table, save ``tyxe_regression.png`` and ``.csv``."""
    args = _common.parser(__doc__.splitlines()[0], "tyxe_regression", backend=False).parse_args(argv)
    # (--quick: HMC's 50 gradients a draw make it the slow one; a few draws show it runs)
    n = dict(num_warmup=30, num_samples=20, hmc_draws=(5, 5)) if args.quick else dict(num_warmup=200, num_samples=200)
    table, grid, bands, xy = run(seed=args.seed, **n)
    _common.publish(table, args.out, "tyxe_regression", float_format="{:.3g}".format)
    print(f"figure: {_common.save(figure(grid, bands, xy), args.out, 'tyxe_regression.png')}")
    return table


if __name__ == "__main__":
    main()
