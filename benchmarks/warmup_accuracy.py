"""Accuracy of ``SGHMC(model)`` with nothing tuned: the table of the warmup tests.

For every case of ``tests/warmup_cases.py`` (Gaussians with scales 0.01 … 100 and
a correlated pair; a linear regression with a subsampled plate, B = N/8), at
T = 1, 0.1 and 0.01, in the chosen backends: the expected and measured mean and
variance of the coordinate with the worst variance z-score, the largest |z| of
any mean and any variance, the largest split-R̂, and the sampling phase's kinetic
temperature over its expected value.  The same runs (seeds, lengths) as the
tests, so the numbers are the ones the tests assert on.

Usage: ``python benchmarks/warmup_accuracy.py [--backends pyro numpyro] [--out FILE.json]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from targets import as_array
from warmup_cases import (
    gaussian_model,
    gaussian_truth,
    kinetic_ratio,
    regression_data,
    regression_model,
    regression_truth,
    rhat,
    run,
    z_scores,
)


def _row(backend, case, temperature, mcmc, draws, truth, seconds):
    zs = z_scores(draws, truth)
    worst_site, worst_i, worst = None, 0, -1.0
    for site, (_, zv) in zs.items():
        i = int(np.argmax(np.abs(zv)))
        if abs(zv[i]) > worst:
            worst_site, worst_i, worst = site, i, abs(zv[i])
    x = draws[worst_site].reshape(draws[worst_site].shape[:2] + (-1,))[..., worst_i]
    mean, var = truth[worst_site]
    ratio, warning = kinetic_ratio(mcmc)
    return {
        "backend": backend, "case": case, "T": temperature, "coordinate": f"{worst_site}[{worst_i}]",
        "mean_expected": float(np.ravel(mean)[worst_i]), "mean_measured": float(x.mean()),
        "var_expected": float(np.ravel(var)[worst_i]), "var_measured": float(((x - np.ravel(mean)[worst_i]) ** 2).mean()),
        "max_abs_z_mean": float(max(np.abs(zm).max() for zm, _ in zs.values())),
        "max_abs_z_var": float(max(np.abs(zv).max() for _, zv in zs.values())),
        "max_rhat": float(max(rhat(draws, s).max() for s in truth)), "kinetic_ratio": ratio, "warning": warning,
        "seconds": seconds,
    }


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backends", nargs="+", default=["numpyro", "pyro"], choices=["numpyro", "pyro"])
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    rows = []
    for backend in args.backends:
        for temperature in (1.0, 0.1, 0.01):
            t0 = time.perf_counter()
            mcmc, draws, _, _ = run(backend, gaussian_model(backend), temperature=temperature)
            rows.append(_row(backend, "gaussians", temperature, mcmc, draws, gaussian_truth(temperature),
                             time.perf_counter() - t0))
            X, y = regression_data()
            t0 = time.perf_counter()
            mcmc, draws, _, _ = run(backend, regression_model(backend), (as_array(backend, X), as_array(backend, y)),
                                    temperature=temperature, num_samples=2000)
            rows.append(_row(backend, "regression B=N/8", temperature, mcmc, draws, regression_truth(temperature),
                             time.perf_counter() - t0))
    print("| backend | case | T | coordinate | mean exp. | mean meas. | var exp. | var meas. | max abs z mean | "
          "max abs z var | max R̂ | T_kin / expected |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['case']} | {r['T']:g} | {r['coordinate']} | {r['mean_expected']:.4g} | "
              f"{r['mean_measured']:.4g} | {r['var_expected']:.3g} | {r['var_measured']:.3g} | {r['max_abs_z_mean']:.2f} | "
              f"{r['max_abs_z_var']:.2f} | {r['max_rhat']:.3f} | {r['kinetic_ratio']:.3f} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
