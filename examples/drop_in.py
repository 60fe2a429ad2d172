"""SGHMC as a drop-in for NUTS, in Pyro and in NumPyro.

One model (Bayesian logistic regression on the breast-cancer data, full batch
so that NUTS can run it too) is sampled four times; between NUTS and SGHMC the
only line that changes is the kernel::

    kernel = NUTS(model)    # before
    kernel = SGHMC(model)   # after: the warmup tunes step, mass and friction

The script prints, per backend, how far the SGHMC posterior means are from the
NUTS ones in units of the NUTS posterior standard deviation, the ratio of the
posterior standard deviations, and the smallest effective sample sizes (the
Monte Carlo error of a mean is about sd/√ESS), and plots one against the
other.

Run ``python examples/drop_in.py`` (about seven minutes of CPU, most of it
Pyro's NUTS on the correlated features of this data set) or ``--quick``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common


def run_pyro(X, y, *, num_warmup, num_samples, use_sghmc, seed=0):
    """Posterior draws ``{site: (draws, ...)}`` of the Pyro model under NUTS or SGHMC."""
    import pyro
    from pyro.infer import MCMC, NUTS

    from ppl_kernels.models import logreg_pyro as model
    from ppl_kernels.pyro import SGHMC

    pyro.set_rng_seed(seed)
    kernel = SGHMC(model) if use_sghmc else NUTS(model)  # the only change
    mcmc = MCMC(kernel, num_samples=num_samples, warmup_steps=num_warmup, disable_progbar=True)
    mcmc.run(X, y)
    return {k: v.numpy() for k, v in mcmc.get_samples().items()}


def run_numpyro(X, y, *, num_warmup, num_samples, use_sghmc, seed=0):
    """Posterior draws ``{site: (draws, ...)}`` of the NumPyro model under NUTS or SGHMC."""
    import jax
    from numpyro.infer import MCMC, NUTS

    from ppl_kernels.models import logreg_numpyro as model
    from ppl_kernels.numpyro import SGHMC

    kernel = SGHMC(model) if use_sghmc else NUTS(model)  # the only change
    mcmc = MCMC(kernel, num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(seed), X, y)
    return {k: np.asarray(v) for k, v in mcmc.get_samples().items()}


def flat(draws):
    """Stack every site into one (draws, parameters) matrix."""
    return np.concatenate([draws[k].reshape(draws[k].shape[0], -1) for k in sorted(draws)], axis=1)


def min_ess(draws) -> float:
    """Smallest bulk ESS over the columns of a (draws, parameters) matrix of one chain."""
    import arviz as az

    return float(min(az.ess(draws[None, :, j]) for j in range(draws.shape[1])))


def run(*, num_warmup: int = 300, num_samples: int = 1000, seed: int = 0):
    """Run both kernels in both backends; return ``(table, {backend: (nuts, sghmc)})``."""
    import pandas as pd

    from ppl_kernels.models import get_model

    rows, pairs = [], {}
    for backend, runner in (("numpyro", run_numpyro), ("pyro", run_pyro)):
        X, y, _ = get_model("logreg-cancer", backend).model_args
        kw = dict(num_warmup=num_warmup, num_samples=num_samples, seed=seed)
        nuts, sghmc = flat(runner(X, y, use_sghmc=False, **kw)), flat(runner(X, y, use_sghmc=True, **kw))
        sd = nuts.std(0)
        z = np.abs(sghmc.mean(0) - nuts.mean(0)) / sd
        ratio = sghmc.std(0) / sd
        pairs[backend] = (nuts, sghmc)
        rows.append({"backend": backend, "parameters": nuts.shape[1], "max |Δmean|/sd": float(z.max()),
                     "mean |Δmean|/sd": float(z.mean()), "sd ratio (min)": float(ratio.min()),
                     "sd ratio (max)": float(ratio.max()), "ESS NUTS (min)": min_ess(nuts),
                     "ESS SGHMC (min)": min_ess(sghmc)})
    return pd.DataFrame(rows).set_index("backend"), pairs


def figure(pairs):
    """SGHMC against NUTS posterior means (with ±1 sd bars), one panel per backend."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7.0, 3.3), layout="constrained")
    for ax, (backend, (nuts, sghmc)) in zip(fig.subplots(1, len(pairs)), pairs.items()):
        ax.errorbar(nuts.mean(0), sghmc.mean(0), xerr=nuts.std(0), yerr=sghmc.std(0), fmt="o", ms=3, lw=0.6)
        lim = [min(nuts.mean(0).min(), sghmc.mean(0).min()) - 0.5, max(nuts.mean(0).max(), sghmc.mean(0).max()) + 0.5]
        ax.plot(lim, lim, color="k", lw=0.8)
        ax.set_title(backend, fontsize="medium")
        ax.set_xlabel("NUTS posterior mean")
        ax.set_ylabel("SGHMC posterior mean")
    return fig


def main(argv=None):
    """Run the comparison, print the table, save ``drop_in.png`` and ``drop_in.csv``."""
    args = _common.parser(__doc__.splitlines()[0], "drop_in", backend=False).parse_args(argv)
    n = dict(num_warmup=10, num_samples=20) if args.quick else dict(num_warmup=300, num_samples=1000)
    table, pairs = run(seed=args.seed, **n)
    _common.publish(table, args.out, "drop_in", float_format="{:.3g}".format)
    print(f"figure: {_common.save(figure(pairs), args.out, 'drop_in.png')}")
    return table


if __name__ == "__main__":
    main()
