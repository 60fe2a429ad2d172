"""Constant against cyclical momentum resampling on a 2-D mixture of Gaussians.

The research notes' "momentum cyclic scheduler": instead of a cyclical step
size (Zhang et al. 2020), cycle the momentum-resampling scale β with
:func:`ppl_kernels.schedules.cyclical`: a large β at the start of each cycle
(exploration: the fresh momentum carries the chain over the barriers) decaying
to a small β (sampling).  The target has four modes at (±2.5, ±2.5) with
s = 0.6, so the barriers between them are about 8.7 T high and plain SGHMC at
T = 1 stays in the mode it starts in.

Compared, all with N(0, 1) gradient noise, ε = 0.05 and 20 steps per draw:

- plain SGHMC (no resampling);
- norm-adjusting SGHMC (α = 3, γ = 0.001) with constant β = 0.001 (the
  notes' value) and with constant β = αT = 3 (the exact scale);
- the same with the cyclical β: 30 → 0.001 over cycles of 50 draws, the first
  70 % of each cycle marked "explore".

Reported per sampler: the modes visited by the draws of the sampling phase,
their share of draws per mode (1/4 each under the target), mode switches, the
mean squared distance to the nearest mode (2 s² = 0.72 under the target) and
the mean ‖θ‖² (13.22 under the target).  Figures: the draws over the density,
and the ‖θ‖² trajectories with the β schedule.

Run ``python examples/mixture_2d.py`` (about a minute) or ``--quick``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common


def variants():
    """``{label: SGHMC keyword arguments}`` of the samplers compared."""
    from ppl_kernels import schedules

    norm = dict(boost=3.0, friction_scale=1e-3)
    return {
        "SGHMC": {},
        "constant β=0.001": {**norm, "resample_scale": 1e-3},
        "constant β=αT=3": {**norm, "resample_scale": 3.0},
        "cyclical β 30→0.001": {**norm, "resample_scale": schedules.cyclical(30.0, 1e-3, cycle_length=50,
                                                                             explore_fraction=0.7)},
    }


def mode_summary(theta, phase):
    """Mode statistics of draws ``theta`` (n, 2); ``phase`` (n,) selects the sampling phase (0)."""
    from ppl_kernels.models import MIXTURE_MEANS

    mu = np.asarray(MIXTURE_MEANS)
    nearest = np.argmin(((theta[:, None, :] - mu) ** 2).sum(-1), axis=1)
    kept = nearest[phase == 0]
    share = np.bincount(kept, minlength=len(mu)) / max(len(kept), 1)
    d2 = ((theta - mu[nearest]) ** 2).sum(-1)[phase == 0]
    return {
        "modes visited": int((share > 0).sum()),
        "max |share − 1/4|": float(np.abs(share - 1 / len(mu)).max()),
        "mode switches": int((np.diff(nearest) != 0).sum()),
        "E d² to mode": float(d2.mean()),
    }


def run(backend: str = "numpyro", *, num_samples: int = 2000, seed: int = 0):
    """Sample every variant; return ``(table, idatas)``."""
    import pandas as pd

    from ppl_kernels import runner, to_inference_data
    from ppl_kernels.models import get_model

    spec = get_model("mixture-2d", backend)
    rows, idatas = [], {}
    for label, extra in variants().items():
        mcmc = runner.sample(backend, model=spec.model, model_args=spec.model_args,
                             kernel_kwargs={**spec.kernel_kwargs, **extra}, num_samples=num_samples, seed=seed)
        idata = to_inference_data(mcmc, log_likelihood=False)
        idatas[label] = idata
        theta = idata.posterior["theta"].values[0]
        stats = idata.sample_stats
        rows.append({"sampler": label, **mode_summary(theta, stats["phase"].values[0]),
                     "E ‖θ‖²": float(stats["theta_sq_norm"].mean())})
    return pd.DataFrame(rows).set_index("sampler"), idatas


def sample_figure(idatas):
    """The draws of each sampler over the target density."""
    from matplotlib.figure import Figure

    from ppl_kernels.models import mixture_2d_potential

    g = np.linspace(-5, 5, 121)
    xx, yy = np.meshgrid(g, g)
    dens = np.exp(-mixture_2d_potential(np.stack([xx, yy], -1)))
    fig = Figure(figsize=(3.0 * len(idatas), 3.0), layout="constrained")
    for ax, (label, idata) in zip(fig.subplots(1, len(idatas), sharey=True), idatas.items()):
        theta = idata.posterior["theta"].values[0]
        explore = idata.sample_stats["phase"].values[0] == 1
        ax.contour(xx, yy, dens, levels=5, colors="0.6", linewidths=0.6)
        ax.plot(*theta[explore].T, ".", ms=1.5, color="0.7", label="explore phase")
        ax.plot(*theta[~explore].T, ".", ms=1.5, alpha=0.5, color="tab:blue", label="sample phase")
        ax.set_title(label, fontsize="medium")
        ax.set_aspect("equal")
        ax.set_xlabel("θ₁")
    fig.axes[0].set_ylabel("θ₂")
    fig.axes[-1].legend(fontsize="small", markerscale=4)
    return fig


def norm_figure(idatas, draws: int = 300):
    """‖θ‖² over the first ``draws`` draws of each sampler
    (:func:`ppl_kernels.plots.plot_norm_trajectories`), with the cyclical β."""
    from ppl_kernels.plots import plot_norm_trajectories

    first = {k: v.sel(draw=slice(0, draws)) for k, v in idatas.items()}
    fig = plot_norm_trajectories(first, quantities=("theta_sq_norm",))
    ax = fig.axes[0]
    beta = first["cyclical β 30→0.001"].sample_stats["resample_scale"].values[0]
    twin = ax.twinx()
    twin.plot(beta, color="0.5", lw=0.6, ls="--")
    twin.set_ylabel("cyclical β (dashed)")
    return fig


def main(argv=None):
    """Run the study, print the table, save two figures and ``mixture_2d.csv``."""
    args = _common.parser(__doc__.splitlines()[0], "mixture_2d").parse_args(argv)
    table, idatas = run(args.backend, num_samples=200 if args.quick else 2000, seed=args.seed)
    _common.publish(table, args.out, "mixture_2d", float_format="{:.3g}".format)
    for name, fig in (("mixture_2d_samples.png", sample_figure(idatas)), ("mixture_2d_norms.png", norm_figure(idatas))):
        print(f"figure: {_common.save(fig, args.out, name)}")
    return table


if __name__ == "__main__":
    main()
