"""The double well of Chen, Fox & Guestrin (2014, Fig. 1) under noisy gradients.

U(θ) = −2θ² + θ⁴, and every gradient carries N(0, 4) noise (a minibatch of one
point of a zero-sum "data set", see :mod:`ppl_kernels.models`).  The paper's
settings: ε = 0.1, C = 3, M = 1, momentum resampled every 50 steps (here: one
draw = 50 steps, ``resample_scale=1`` = N(0, M)).  We compare the sampled
density with the exact one, exp(−U), for

- SGHMC (the paper's setting);
- SGHMC without friction (C → 0: "naive" SGHMC, which only the resampling
  keeps from heating up);
- norm-adjusting SGHMC with the research notes' settings (α = 3, γ = 0.001,
  β = 0.001);
- the same α, γ with β = αT, the one resampling scale that keeps the target;
- the same α, γ without any resampling.

It reports, per sampler, E θ², the total-variation distance between the
0.1-wide histogram and the exact bin probabilities, the TV that exact samples
of the same effective size would show (the Monte Carlo floor), and the mean
kinetic and configurational temperatures.

Run ``python examples/double_well.py`` (about a minute on two cores with the
NumPyro backend) or ``--quick`` (seconds).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

#: The samplers compared: SGHMC arguments on top of the paper's ε, C, M, 50 steps.
VARIANTS = {
    "SGHMC": dict(resample_scale=1.0),
    "SGHMC, no friction": dict(friction=1e-8, resample_scale=1.0),
    "norm-adjusting": dict(boost=3.0, friction_scale=1e-3, resample_scale=1e-3),
    "norm-adjusting, β=αT": dict(boost=3.0, friction_scale=1e-3, resample_scale=3.0),
    "α, γ, no resampling": dict(boost=3.0, friction_scale=1e-3),
}
EDGES = np.linspace(-3.0, 3.0, 61)


def exact_bin_probabilities(edges=EDGES, fine: int = 100):
    """Exact probability of each histogram bin under exp(−U), by the midpoint rule on a fine grid."""
    from ppl_kernels.models import double_well_potential

    x = np.linspace(edges[0], edges[-1], (len(edges) - 1) * fine + 1)
    mid = 0.5 * (x[1:] + x[:-1])
    w = np.exp(-double_well_potential(mid))
    q = w.reshape(len(edges) - 1, fine).sum(1)
    return q / q.sum()


def tv_distance(samples, q, edges=EDGES) -> float:
    """Total-variation distance between the samples' histogram and bin probabilities ``q``;
    draws outside the bins count fully (the exact mass there is below 1e-20)."""
    samples = np.ravel(samples)
    h, _ = np.histogram(samples, bins=edges)
    p = h / len(samples)
    return 0.5 * float(np.abs(p - q).sum() + (1.0 - p.sum()))


def tv_floor(n: float, q, reps: int = 200, seed: int = 0) -> float:
    """Mean TV of ``n`` exact independent samples: what a perfect sampler would show."""
    rng = np.random.default_rng(seed)
    n = max(int(round(n)), 1)
    return float(np.mean([0.5 * np.abs(rng.multinomial(n, q) / n - q).sum() for _ in range(reps)]))


def run(backend: str = "numpyro", *, num_samples: int = 4000, num_warmup: int = 100, seed: int = 0):
    """Sample every variant; return ``(table, draws)`` (a DataFrame and ``{label: θ draws}``)."""
    import arviz as az
    import pandas as pd

    from ppl_kernels import runner
    from ppl_kernels._host import get_draws, get_stats
    from ppl_kernels.models import get_model

    spec = get_model("double-well", backend)
    q = exact_bin_probabilities()
    centres = 0.5 * (EDGES[1:] + EDGES[:-1])
    rows, draws = [], {}
    for label, extra in VARIANTS.items():
        mcmc = runner.sample(backend, model=spec.model, model_args=spec.model_args,
                             kernel_kwargs={**spec.kernel_kwargs, **extra},
                             num_samples=num_samples, num_warmup=num_warmup, seed=seed)
        theta = get_draws(mcmc)["theta"][..., 0]
        stats = get_stats(mcmc)
        ess = float(az.ess(theta))
        draws[label] = theta.ravel()
        rows.append({
            "sampler": label, "E θ²": float(np.mean(theta**2)), "TV": tv_distance(theta, q),
            "TV floor": tv_floor(ess, q, seed=seed), "ESS": ess,
            "T_kin": float(stats["kinetic_temperature"].mean()),
            "T_conf": float(stats["configurational_temperature"].mean()),
            "divergent": int(stats["diverging"].sum()),
        })
    rows.append({"sampler": "exact", "E θ²": float(np.sum(q * centres**2)), "TV": 0.0, "TV floor": 0.0,
                 "ESS": np.nan, "T_kin": 1.0, "T_conf": 1.0, "divergent": 0})
    return pd.DataFrame(rows).set_index("sampler"), draws


def figure(draws):
    """Histogram of each sampler against the exact density."""
    from matplotlib.figure import Figure

    q = exact_bin_probabilities()
    width = EDGES[1] - EDGES[0]
    centres = 0.5 * (EDGES[1:] + EDGES[:-1])
    n = len(draws)
    fig = Figure(figsize=(3.2 * n, 2.8), layout="constrained")
    axes = fig.subplots(1, n, sharey=True)
    for ax, (label, x) in zip(np.atleast_1d(axes), draws.items()):
        ax.hist(x, bins=EDGES, density=True, color="tab:blue", alpha=0.6, label="samples")
        ax.plot(centres, q / width, color="k", lw=1.2, label="exact")
        ax.set_title(label, fontsize="medium")
        ax.set_xlabel("θ")
    np.atleast_1d(axes)[0].set_ylabel("density")
    np.atleast_1d(axes)[0].legend(fontsize="small")
    return fig


def main(argv=None):
    """Run the study, print the table, save ``double_well_density.png`` and ``double_well.csv``."""
    args = _common.parser(__doc__.splitlines()[0], "double_well").parse_args(argv)
    n, w = (300, 20) if args.quick else (4000, 100)
    table, draws = run(args.backend, num_samples=n, num_warmup=w, seed=args.seed)
    _common.publish(table, args.out, "double_well", float_format="{:.4g}".format)
    path = _common.save(figure(draws), args.out, "double_well_density.png")
    print(f"figure: {path}")
    return table


if __name__ == "__main__":
    main()
