"""The two backends run the same integrator: in float64, from the same (θ₀, r₀), with
the same injected noise and full-batch gradients, Pyro and NumPyro reach the same
(θ_k, r_k) after every draw, to 1e-10, also with momentum resampling."""

import numpy as np
import pytest

from ppl_kernels import schedules

NUM_STEPS, NUM_DRAWS = 3, 4
SHAPES = {"x": (3,), "y": (2, 2)}
KERNEL = dict(
    step_size=schedules.cyclical(0.08, 0.02, cycle_length=3, explore_fraction=0.0),
    num_steps=NUM_STEPS, temperature=0.7, mass={"x": np.array([1.0, 2.0, 0.5]), "y": 1.5},
    friction={"x": 0.8, "y": np.array([[0.5, 1.0], [1.5, 2.0]])}, boost=1.7, friction_scale=0.6,
)


def _potential(z):
    """A non-quadratic potential coupling the two sites (operators and ``.sum()`` only,
    so it is the same function for torch and jax)."""
    x, y = z["x"], z["y"]
    return (0.5 * x * x + 0.1 * x * x * x * x).sum() + (0.25 * y * y).sum() + 0.3 * x.sum() * y.sum()


@pytest.fixture(scope="module")
def inputs():
    """θ₀, r₀, the integrator noise ξ (per draw, per step) and the resampling noise (per draw)."""
    rng = np.random.default_rng(0)
    normal = lambda *lead: {k: rng.standard_normal(lead + s) for k, s in SHAPES.items()}  # noqa: E731
    return dict(theta=normal(), r=normal(), xi=[normal(NUM_STEPS) for _ in range(NUM_DRAWS)],
                resample=[normal() for _ in range(NUM_DRAWS)])


def _run_pyro(inputs, kernel_kwargs, monkeypatch):
    import torch

    from ppl_kernels.pyro import SGHMC
    from ppl_kernels.pyro import kernel as pk

    t = lambda a: torch.as_tensor(a, dtype=torch.float64)  # noqa: E731
    kernel = SGHMC(potential_fn=_potential, **kernel_kwargs)
    kernel.initial_params = {k: t(v) for k, v in inputs["theta"].items()}
    kernel.setup(0)
    static = kernel._static
    state = kernel._state._replace(r={k: t(v) for k, v in inputs["r"].items()})
    out = []
    for d in range(NUM_DRAWS):
        # the only other random draw in a draw is the momentum resampling
        monkeypatch.setattr(pk, "_normal_like", lambda tree, d=d: {k: t(inputs["resample"][d][k]) for k in tree})
        noise = [{k: t(inputs["xi"][d][k][j]) for k in SHAPES} for j in range(NUM_STEPS)]
        state, stats = pk.sghmc_draw(static, state, noise=noise)
        assert state.z["x"].dtype == torch.float64
        out.append(({k: v.numpy() for k, v in state.z.items()}, {k: v.numpy() for k, v in state.r.items()}, stats))
    return out


def _run_numpyro(inputs, kernel_kwargs, monkeypatch):
    import jax
    import jax.numpy as jnp

    from ppl_kernels.numpyro import SGHMC
    from ppl_kernels.numpyro import kernel as nk

    with jax.enable_x64(True):
        t = lambda a: jnp.asarray(a, dtype=jnp.float64)  # noqa: E731
        kernel = SGHMC(potential_fn=_potential, **kernel_kwargs)
        state = kernel.init(jax.random.PRNGKey(0), 0, init_params={k: t(v) for k, v in inputs["theta"].items()})
        state = state._replace(r={k: t(v) for k, v in inputs["r"].items()})
        out = []
        for d in range(NUM_DRAWS):
            monkeypatch.setattr(nk, "_normal_like", lambda key, tree, d=d: {k: t(inputs["resample"][d][k]) for k in tree})
            state = nk.sghmc_draw(kernel._static, state, (), {}, noise={k: t(v) for k, v in inputs["xi"][d].items()})
            assert state.z["x"].dtype == jnp.float64
            stats = {name: float(getattr(state, name)) for name in ("lp", "theta_sq_norm", "theta_dot_r", "r_sq_norm",
                                                                    "kinetic_temperature", "configurational_temperature",
                                                                    "step_size", "resample_scale")}
            out.append(({k: np.asarray(v) for k, v in state.z.items()}, {k: np.asarray(v) for k, v in state.r.items()},
                        stats))
    return out


@pytest.mark.parametrize("resample_scale", [None, schedules.cyclical(0.9, 0.3, cycle_length=2)],
                         ids=["no-resampling", "resampling"])
def test_backends_agree_exactly_in_float64(inputs, resample_scale, monkeypatch):
    kernel_kwargs = dict(KERNEL, resample_scale=resample_scale)
    pyro_run = _run_pyro(inputs, kernel_kwargs, monkeypatch)
    numpyro_run = _run_numpyro(inputs, kernel_kwargs, monkeypatch)
    theta0 = inputs["theta"]
    for d, ((zp, rp, sp), (zn, rn, sn)) in enumerate(zip(pyro_run, numpyro_run)):
        for k in SHAPES:
            np.testing.assert_allclose(zp[k], zn[k], rtol=0, atol=1e-10, err_msg=f"theta[{k}] after draw {d}")
            np.testing.assert_allclose(rp[k], rn[k], rtol=0, atol=1e-10, err_msg=f"r[{k}] after draw {d}")
            assert np.abs(zp[k] - theta0[k]).max() > 1e-3  # the chain moved
        for name, value in sn.items():
            np.testing.assert_allclose(sp[name], value, rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=name)
    step_sizes = [s["step_size"] for _, _, s in pyro_run]
    assert step_sizes == pytest.approx([KERNEL["step_size"].value(k) for k in range(NUM_DRAWS)], abs=1e-15)


def test_injected_noise_matters(inputs, monkeypatch):
    """Guard against a vacuous agreement: different ξ give a different θ."""
    a = _run_pyro(inputs, KERNEL, monkeypatch)
    flipped = dict(inputs, xi=[{k: -v for k, v in xi.items()} for xi in inputs["xi"]])
    b = _run_pyro(flipped, KERNEL, monkeypatch)
    assert np.abs(a[-1][0]["x"] - b[-1][0]["x"]).min() > 1e-4
