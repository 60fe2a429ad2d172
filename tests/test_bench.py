"""The benchmark runs end to end, and the faster JAX PRNGs it offers keep the
stationary law right."""

import json

import numpy as np
import pytest

from ppl_kernels import bench


def test_quick_bench_writes_every_field(tmp_path):
    argv = ["--quick", "--no-isolate", "--no-scaling", "--no-prng", "--repeats", "1", "--out", str(tmp_path)]
    assert bench.main(argv) == 0
    report = json.loads((tmp_path / "bench.json").read_text())
    md = (tmp_path / "bench.md").read_text()

    ok = [r for r in report["results"] if r["status"] == "ok"]
    # both backends ran their limit, floor and kernel rows; every anchor ran or says why not
    for backend in ("numpyro", "pyro"):
        roles = {r["role"] for r in ok if r["backend"] == backend}
        assert {"limit", "floor", "kernel"} <= roles, (backend, roles)
        anchors = [r for r in report["results"] if r["backend"] == backend and r["role"] == "anchor"]
        assert len(anchors) == 2 and all(r["status"] == "ok" or r["hint"] for r in anchors), anchors
    for r in ok:
        for clock in ("ms_per_step", "cpu_ms_per_step"):
            s = r[clock]
            assert s["min"] <= s["median"] <= s["max"], (r["method"], s)
            assert s["min"] > 0, (r["method"], s)
        assert r["compile_s"] >= 0 and r["peak_rss_mb"] > 0
        assert r["ratio_to_bare_gradient"] > 0 and r["ratio_to_gradient_plus_noise"] > 0
        assert r["ratio_to_best_anchor"] is None or r["ratio_to_best_anchor"] > 0
        limit = [x for x in ok if x["backend"] == r["backend"] and x["role"] == "limit"][0]
        assert r["ratio_to_bare_gradient"] == pytest.approx(r["ms_per_step"]["median"] / limit["ms_per_step"]["median"])
    # the hand-written potentials the limits differentiate are the models' potentials
    for r in ok:
        if r["role"] == "limit":
            assert r["check"]["potential_matches_model"] < 1e-5
        if r["role"] == "kernel":
            assert r["check"]["diverging_fraction"] == 0.0
    # a missing anchor is reported with its install hint, not dropped
    for r in report["results"]:
        if r["status"] == "skipped" and "not installed" in r["note"]:
            assert r["hint"].startswith("pip install")
    assert {t["target"] for t in report["targets"]} >= {"Pyro kernel <= 1.5 x bare PyTorch gradient"}
    storage = {(s["backend"], s["storage"]) for s in report["storage"]}
    assert ("numpyro", "thinning=5") in storage and ("pyro", "all sites") in storage
    thin = [s for s in report["storage"] if s["storage"] == "thinning=5"][0]
    assert thin["draws_kept"] == thin["draws_run"] // 5
    assert "## W3" in md and "## Targets" in md and "## Memory per stored draw" in md


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="workloads"):
        bench.main(["--workloads", "W9", "--no-isolate"])
    with pytest.raises(ValueError, match="num_steps"):
        bench.main(["--num-steps", "0", "--no-isolate"])


@pytest.mark.parametrize("impl", ["rbg", "unsafe_rbg"])
def test_rbg_keys_keep_the_gaussian_stationary_moments(impl):
    """SGHMC driven by ``jax.random.key(seed, impl=impl)`` through numpyro.infer.MCMC
    matches the exact discrete stationary moments of the integrator on a Gaussian
    (theory notes §8a), within 4 Monte Carlo standard errors from the ESS."""
    import arviz as az
    import jax
    import jax.numpy as jnp
    from numpyro.infer import MCMC

    from ppl_kernels.numpyro import SGHMC

    T, h, M, C = 0.5, 0.1, 1.0, 1.0
    s2 = np.array([0.5, 1.0, 2.0, 4.0])

    def potential(z):
        return 0.5 * jnp.sum(z["x"] ** 2 / s2)

    kern = SGHMC(potential_fn=potential, step_size=h, num_steps=10, temperature=T, mass=M, friction=C)
    mcmc = MCMC(kern, num_warmup=200, num_samples=4000, progress_bar=False)
    mcmc.run(jax.random.key(0, impl=impl), init_params={"x": jnp.zeros(4)})
    assert str(mcmc.last_state.rng_key.dtype) != "uint32"  # the typed key went all the way through

    x = np.asarray(mcmc.get_samples()["x"], dtype=float)  # (draws, 4)
    var_theta = T * s2 / (1 - h**2 / (4 * M * s2 - 2 * C * h * s2))
    for i in range(4):
        z = x[:, i] ** 2 / var_theta[i]  # E z = 1, Var z = 2 at stationarity
        ess = float(az.ess(z[None, :]))
        assert abs(z.mean() - 1.0) < 4 * np.sqrt(2.0 / ess), (i, z.mean(), ess)
        ess_m = float(az.ess(x[None, :, i]))
        assert abs(x[:, i].mean()) < 4 * np.sqrt(var_theta[i] / ess_m), (i, x[:, i].mean(), ess_m)

    # kinetic temperature: E[r^2/M] = exact discrete Var r / M, averaged over the 4 dims
    kin = np.asarray(mcmc.get_extra_fields()["kinetic_temperature"], dtype=float)
    var_r = T * M / (1 - C * h / (2 * M) - h**2 / (4 * M * s2))
    expected = float(np.mean(var_r / M))
    ess_k = float(az.ess(kin[None, :]))
    sd_k = float(np.sqrt(np.sum(2 * (var_r / M) ** 2)) / 4)  # r_i^2/M ~ Var_i chi2_1, independent
    assert abs(kin.mean() - expected) < 4 * sd_k / np.sqrt(ess_k), (kin.mean(), expected, ess_k)
