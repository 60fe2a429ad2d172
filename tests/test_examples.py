"""Every example imports and runs with ``--quick``, and what it computes exactly is right."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def figures_ok(folder, names):
    for name in names:
        path = folder / name
        assert path.is_file() and 0 < path.stat().st_size < 200_000, path


def test_double_well(tmp_path):
    ex = load("double_well")
    q = ex.exact_bin_probabilities()
    centres = 0.5 * (ex.EDGES[1:] + ex.EDGES[:-1])
    assert np.sum(q * centres**2) == pytest.approx(0.8327, abs=2e-3)  # E θ² of exp(−U), theory-notes §8d
    table = ex.main(["--quick", "--out", str(tmp_path)])
    assert list(table.index) == [*ex.VARIANTS, "exact"]
    assert table["TV"].between(0, 1).all() and (table["divergent"] == 0).all()
    # Without friction nothing removes the gradient noise's energy: the chain heats up.
    assert table.loc["α, γ, no resampling", "T_kin"] > 5 * table.loc["SGHMC", "T_kin"]
    figures_ok(tmp_path, ["double_well_density.png"])
    assert (tmp_path / "double_well.csv").is_file()


def test_tv_floor_shrinks_like_one_over_root_n():
    ex = load("double_well")
    q = ex.exact_bin_probabilities()
    small, large = ex.tv_floor(100, q), ex.tv_floor(10_000, q)
    assert large < small and small / large == pytest.approx(10, rel=0.2)


def test_mixture_2d(tmp_path):
    ex = load("mixture_2d")
    table = ex.main(["--quick", "--out", str(tmp_path)])
    assert list(table.index) == list(ex.variants())
    assert table["modes visited"].between(1, 4).all()
    # β = 0.001 ≪ αT freezes the chain into its mode; plain SGHMC spreads over it (2 s² = 0.72 exactly).
    assert table.loc["constant β=0.001", "E d² to mode"] < 0.1 < 0.3 < table.loc["SGHMC", "E d² to mode"] < 1.5
    figures_ok(tmp_path, ["mixture_2d_samples.png", "mixture_2d_norms.png"])


def test_mode_summary_counts_modes_and_switches():
    ex = load("mixture_2d")
    theta = np.array([[2.4, 2.6], [2.6, 2.4], [-2.5, 2.5], [-2.5, -2.5], [2.5, -2.5]])
    s = ex.mode_summary(theta, np.array([0, 0, 0, 1, 0]))
    assert s["modes visited"] == 3 and s["mode switches"] == 3
    assert s["max |share − 1/4|"] == pytest.approx(0.25)  # shares 1/2, 1/4, 0, 1/4
    assert s["E d² to mode"] == pytest.approx(0.01)  # (0.02 + 0.02 + 0 + 0) / 4, sample phase only


def test_resampling_bias_exact_recursion_reproduces_the_theory_notes():
    """theory-notes §8b (ii): cycle-averaged Var θ / s² at ε = 0.01, half-kick resampling."""
    ex = load("resampling_bias")
    notes = {(4.0, 0.2, 0.4): (0.1000, 0.1000, 0.1000), (4.0, 0.2, 0.1): (0.0250, 0.0252, 0.0274),
             (0.25, 0.2, 0.1): (0.400, 0.385, 0.261), (1.0, 0.2, 1.0): (1.000, 0.989, 0.884)}
    for (a, g, b), values in notes.items():
        for k, v in zip((1, 10, 100), values):
            cycle = ex.exact_temperature(a, g, b, k, eps=0.01)[1]  # T = 0.1 as in the notes
            assert cycle == pytest.approx(v, abs=6e-4), (a, g, b, k)


def test_resampling_bias(tmp_path):
    ex = load("resampling_bias")
    table = ex.main(["--quick", "--out", str(tmp_path)])
    assert len(table) == 4 and np.isfinite(table["T_eff measured"]).all()
    # With β = T and α = 4, resampling every step samples at β/α = T/4.
    row = table[(table["β"] == ex.T) & (table["k"] == 1)].iloc[0]
    assert row["exact (end of draw)"] == pytest.approx(ex.T / 4, rel=0.01)
    assert row["T_eff measured"] == pytest.approx(ex.T / 4, rel=0.25)
    figures_ok(tmp_path, ["resampling_bias.png"])


def test_drop_in(tmp_path):
    ex = load("drop_in")
    table = ex.main(["--quick", "--out", str(tmp_path)])
    assert list(table.index) == ["numpyro", "pyro"] and (table["parameters"] == 31).all()
    assert np.isfinite(table.to_numpy(dtype=float)).all()
    figures_ok(tmp_path, ["drop_in.png"])


def test_bnn_digits(tmp_path):
    ex = load("bnn_digits")
    table = ex.main(["--quick", "--out", str(tmp_path)])
    assert list(table.index) == ["SGHMC T=1", "norm-adjusting T=1"]
    assert table["test_accuracy"].gt(0.8).all()
    # The notes' claim in miniature: the norm-adjusting settings keep ‖θ‖² far below plain SGHMC's at T = 1.
    assert table.loc["norm-adjusting T=1", "theta_sq_mean"] < 0.5 * table.loc["SGHMC T=1", "theta_sq_mean"]
    figures_ok(tmp_path, ["bnn_norms_sghmc.png", "bnn_norms_norm_adjusting.png", "bnn_test_nll.png"])


def test_tyxe_regression(tmp_path):
    """TyXe's MCMC_BNN with its documented HMC and with SGHMC's defaults, full batch and
    with minibatches that really reach the network; every run finite and no divergence."""
    ex = load("tyxe_regression")
    x, y, grid, f = ex.data()
    assert x.shape == (ex.N, 1) and grid.shape == (200, 1)
    table = ex.main(["--quick", "--out", str(tmp_path)])
    assert list(table.index) == list(ex.KERNELS)
    assert table.loc[ex.KERNELS[2], "rows per pass"] == ex.BATCH
    assert table.loc[ex.KERNELS[1], "rows per pass"] == ex.N
    assert np.isfinite(table[["mse", "mse_data", "lpd", "theta_sq_mean"]].to_numpy()).all()
    assert (table["divergences"] == 0).all()
    figures_ok(tmp_path, ["tyxe_regression.png"])
