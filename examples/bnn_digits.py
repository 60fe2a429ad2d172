"""The research notes' main study: weight norms of a Bayesian MLP against temperature.

A 64-32-10 tanh MLP with N(0, 1) priors on scikit-learn's digits (1347
training images, minibatches of 100; 450 held out), started near 0 as a network
is before training, sampled by

- plain SGHMC (ε = 0.01, C = 10, M = 1, 20 steps per draw) at T = 1 and colder;
- norm-adjusting SGHMC with the notes' settings (α = 3, γ = 0.001, β = 0.001,
  the momentum redrawn at every draw) at the same temperatures;
- at T = 1 only, α = 3 and γ = 0.001 with the exact resampling scale β = αT,
  which separates what α, γ do from what the small β does.

It shows ‖θ‖² (and θᵀr, ‖r‖²) along the chains, the "burst" of the norm at
T = 1 against the colder runs, and the comparison table
(:func:`ppl_kernels.compare_temperatures`): held-out accuracy and NLL, ELPD-LOO,
mean ‖θ‖² and kinetic temperature per run.  The first fifth of every chain is
left out of the table as burn-in (not out of the trajectories).

Without ``--quick`` it also records 40 draws of plain SGHMC at T = 1 step by
step and checks the notes' moment relations for ‖θ‖², θᵀr and ‖r‖² in their
continuous form and with the discrete-step terms
(:func:`ppl_kernels.diagnostics.moment_check`).

Run ``python examples/bnn_digits.py`` (a few minutes on two cores) or
``--quick``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

#: The research notes' norm-adjusting settings.
NORM_ADJUSTING = dict(boost=3.0, friction_scale=1e-3, resample_scale=1e-3)


def configurations(temperatures, control: bool = True):
    """``(label, T, kernel_kwargs)`` triples for :func:`ppl_kernels.temperature_sweep`."""
    runs = [(f"SGHMC T={t:g}", t, {}) for t in temperatures]
    runs += [(f"norm-adjusting T={t:g}", t, NORM_ADJUSTING) for t in temperatures]
    if control:
        runs.append(("α, γ with β=αT, T=1", 1.0, {**NORM_ADJUSTING, "resample_scale": 3.0}))
    return runs


def run(backend: str = "numpyro", *, temperatures=(1.0, 0.1, 0.01), num_samples: int = 400, seed: int = 0,
        executor: str = "process", control: bool = True):
    """Sample every configuration; return ``(table, runs)`` with ``runs = {label: InferenceData}``."""
    from ppl_kernels import compare_temperatures, temperature_sweep
    from ppl_kernels.models import get_model

    spec = get_model("bnn-digits", backend)
    runs = temperature_sweep(spec.model, configurations(temperatures, control), backend=backend,
                             kernel_kwargs=spec.kernel_kwargs, model_args=spec.model_args,
                             num_samples=num_samples, seed=seed, predictions=spec.predictions(), executor=executor)
    if runs.failures:
        raise RuntimeError("runs failed:\n" + "\n".join(runs.failures.values()))
    burn = num_samples // 5
    table = compare_temperatures({k: v.sel(draw=slice(burn, None)) for k, v in runs.items()})
    return table, runs


def moment_study(backend: str = "numpyro", *, num_draws: int = 40, burn_in: int = 200, seed: int = 0):
    """Per-step record of plain SGHMC at T = 1 and its moment check; returns ``(table, steps)``."""
    from ppl_kernels.diagnostics import moment_check, record_steps
    from ppl_kernels.models import get_model

    spec = get_model("bnn-digits", backend)
    steps = record_steps(backend, spec.model, model_args=spec.model_args, kernel_kwargs=spec.kernel_kwargs,
                         num_draws=num_draws, seed=seed)
    return moment_check(steps, burn_in=burn_in), steps


def main(argv=None):
    """Run the study, print the table, save the figures and ``bnn_digits.csv``."""
    p = _common.parser(__doc__.splitlines()[0], "bnn_digits")
    p.add_argument("--executor", choices=("process", "serial"), default=None,
                   help="one process per run (default) or all in this process (default with --quick)")
    args = p.parse_args(argv)
    from ppl_kernels.plots import plot_cold_posterior, plot_moment_check, plot_norm_trajectories

    temps, n = ((1.0,), 30) if args.quick else ((1.0, 0.1, 0.01), 400)
    executor = args.executor or ("serial" if args.quick else "process")
    table, runs = run(args.backend, temperatures=temps, num_samples=n, seed=args.seed, executor=executor,
                      control=not args.quick)
    cols = ["temperature", "boost", "friction_scale", "resample_scale", "test_accuracy", "test_nll", "elpd_loo",
            "theta_sq_mean", "kinetic_temperature_mean", "ess_bulk_min"]
    _common.publish(table[cols], args.out, "bnn_digits", float_format="{:.4g}".format)
    plain = {k: v for k, v in runs.items() if k.startswith("SGHMC")}
    adjusted = {k: v for k, v in runs.items() if not k.startswith("SGHMC")}
    figures = {
        "bnn_norms_sghmc.png": plot_norm_trajectories(plain, logy=True),
        "bnn_norms_norm_adjusting.png": plot_norm_trajectories(adjusted, logy=True),
        "bnn_test_nll.png": plot_cold_posterior(table, "test_nll"),
        "bnn_theta_sq.png": plot_cold_posterior(table, "theta_sq_mean"),
    }
    if not args.quick:
        moments, steps = moment_study(args.backend, seed=args.seed)
        cols = ["relation", "n_steps", "measured", "discrete", "continuous", "z_discrete", "z_continuous",
                "rel_residual"]
        _common.publish(moments[cols], args.out, "bnn_moment_check", index=False, float_format="{:.4g}".format)
        figures["bnn_moment_check.png"] = plot_moment_check(steps, burn_in=200)
    for name, fig in figures.items():
        fig.axes[0].set_title(name[:-4].replace("_", " "), fontsize="medium")
        print(f"figure: {_common.save(fig, args.out, name)}")
    return table


if __name__ == "__main__":
    main()
