"""The two backends run the same integrators (each of ``dynamics.INTEGRATORS``): in float64, from the same (θ₀, r₀), with
the same injected noise (:class:`ppl_kernels.config.DrawNoise`) and full-batch
gradients, Pyro and NumPyro reach the same (θ_k, r_k) after every draw, to 1e-10,
also with momentum resampling; one public ``sghmc_step`` agrees to 1e-15, and so
does a run of a model with a subsampled plate, whose minibatches come from the same
base permutation and the same epoch renewals."""

import numpy as np
import pytest
from targets import conjugate_data, conjugate_model

from ppl_kernels import schedules
from ppl_kernels.config import DrawNoise
from ppl_kernels.dynamics import INTEGRATORS

NUM_STEPS, NUM_DRAWS = 3, 4
SHAPES = {"x": (3,), "y": (2, 2)}
KERNEL = dict(
    step_size=schedules.cyclical(0.08, 0.02, cycle_length=3, explore_fraction=0.0),
    num_steps=NUM_STEPS, temperature=0.7, mass={"x": np.array([1.0, 2.0, 0.5]), "y": 1.5},
    friction={"x": 0.8, "y": np.array([[0.5, 1.0], [1.5, 2.0]])}, boost=1.7, friction_scale=0.6,
)
STAT_NAMES = ("lp", "theta_sq_norm", "theta_dot_r", "r_sq_norm", "kinetic_temperature", "configurational_temperature",
              "thermostat", "step_size", "resample_scale")


def _potential(z):
    """A non-quadratic potential coupling the two sites (operators and ``.sum()`` only,
    so it is the same function for torch and jax)."""
    x, y = z["x"], z["y"]
    return (0.5 * x * x + 0.1 * x * x * x * x).sum() + (0.25 * y * y).sum() + 0.3 * x.sum() * y.sum()


@pytest.fixture(scope="module")
def inputs():
    """θ₀, r₀, the integrator noise ξ (per draw, per step) and the resampling noise (per draw)."""
    rng = np.random.default_rng(0)

    def normal(*lead):
        return {k: rng.standard_normal(lead + s) for k, s in SHAPES.items()}

    return dict(theta=normal(), r=normal(), xi=[normal(NUM_STEPS) for _ in range(NUM_DRAWS)],
                resample=[normal() for _ in range(NUM_DRAWS)])


class _Backend:
    """The few backend-specific lines: arrays, kernel set-up and the integrator module."""

    def __init__(self, name):
        self.name = name
        if name == "pyro":
            import torch

            from ppl_kernels.pyro import integrator

            self.t = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float64)
            self.i = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.int64)
        else:
            import jax.numpy as jnp

            from ppl_kernels.numpyro import integrator

            self.t = lambda a: jnp.asarray(a, dtype=jnp.float64)
            self.i = lambda a: jnp.asarray(a, dtype=jnp.int32)
        self.integrator = integrator

    def tree(self, d):
        return {k: self.t(v) for k, v in d.items()}

    def start(self, kernel_kwargs, theta, model=None, model_args=(), num_warmup=0):
        """``(static, state)`` of a fresh kernel at θ₀ (the model, else the test potential)."""
        if self.name == "pyro":
            from ppl_kernels.pyro import SGHMC

            kernel = SGHMC(model, None if model else _potential, **kernel_kwargs)
            kernel.initial_params = self.tree(theta)
            kernel.setup(num_warmup, *model_args)
            return kernel.static, kernel.state
        import jax

        from ppl_kernels.numpyro import SGHMC

        kernel = SGHMC(model, None if model else _potential, **kernel_kwargs)
        state = kernel.init(jax.random.PRNGKey(0), num_warmup, init_params=self.tree(theta), model_args=model_args)
        return kernel.static, state

    def numpy(self, tree):
        return {k: np.asarray(v.numpy() if hasattr(v, "numpy") else v) for k, v in tree.items()}


def _run(backend, inputs, kernel_kwargs):
    import jax

    b = _Backend(backend)
    with jax.enable_x64(True):
        static, state = b.start(kernel_kwargs, inputs["theta"])
        state = state._replace(r=b.tree(inputs["r"]))
        out = []
        for d in range(NUM_DRAWS):
            noise = DrawNoise(resample=b.tree(inputs["resample"][d]), steps=b.tree(inputs["xi"][d]))
            state = b.integrator.sghmc_draw(static, state, (), {}, noise=noise)
            assert str(state.z["x"].dtype).endswith("float64")
            stats = {name: float(getattr(state, name)) for name in STAT_NAMES}
            out.append((b.numpy(state.z), b.numpy(state.r), stats))
    return out


@pytest.mark.parametrize("integrator", INTEGRATORS)
@pytest.mark.parametrize("resample_scale", [None, schedules.cyclical(0.9, 0.3, cycle_length=2)],
                         ids=["no-resampling", "resampling"])
def test_backends_agree_exactly_in_float64(inputs, resample_scale, integrator):
    kernel_kwargs = dict(KERNEL, resample_scale=resample_scale, integrator=integrator)
    pyro_run = _run("pyro", inputs, kernel_kwargs)
    numpyro_run = _run("numpyro", inputs, kernel_kwargs)
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


@pytest.mark.parametrize("integrator", INTEGRATORS)
def test_injected_noise_matters(inputs, integrator):
    """Guard against a vacuous agreement: different ξ give a different θ, and the
    integrators different chains."""
    kernel_kwargs = dict(KERNEL, integrator=integrator)
    a = _run("pyro", inputs, kernel_kwargs)
    flipped = dict(inputs, xi=[{k: -v for k, v in xi.items()} for xi in inputs["xi"]])
    b = _run("pyro", flipped, kernel_kwargs)
    assert np.abs(a[-1][0]["x"] - b[-1][0]["x"]).min() > 1e-4
    other = _run("pyro", inputs, dict(KERNEL, integrator=[i for i in INTEGRATORS if i != integrator][0]))
    assert np.abs(a[-1][0]["x"] - other[-1][0]["x"]).min() > 1e-4


@pytest.mark.parametrize("integrator", INTEGRATORS)
def test_one_public_step_agrees(inputs, integrator):
    """``sghmc_step`` (one step of the integrator) from the same state and ξ: the same θ, r, ∇Ũ."""
    import jax

    got = {}
    with jax.enable_x64(True):
        for backend in ("pyro", "numpyro"):
            b = _Backend(backend)
            static, state = b.start(dict(KERNEL, integrator=integrator), inputs["theta"])
            state = state._replace(r=b.tree(inputs["r"]))
            xi = static.layout.flatten(b.tree({k: v[0] for k, v in inputs["xi"][0].items()}))
            out = b.integrator.sghmc_step(static, state, 0.05, 0.7, xi, {})
            got[backend] = [b.numpy(out.z), b.numpy(out.r), b.numpy(out.grad), float(out.potential_energy)]
    for part, (p, n) in enumerate(zip(got["pyro"], got["numpyro"])):
        if isinstance(p, dict):
            for k in SHAPES:
                np.testing.assert_allclose(p[k], n[k], rtol=0, atol=1e-15, err_msg=f"part {part} [{k}]")
        else:
            assert p == pytest.approx(n, abs=1e-13)
    assert np.abs(got["pyro"][0]["x"] - inputs["theta"]["x"]).max() > 1e-3


def test_subsampled_plate_run_agrees():
    """A model with ``plate(40, subsample_size=8)``: the same base permutation, epoch
    renewals and noise give the same minibatches, hence the same chain, in both backends."""
    import jax

    n, b_size, num_steps, num_draws = 40, 8, 7, 6  # 5 batches an epoch: several epochs start mid-draw
    y = conjugate_data(n)
    rng = np.random.default_rng(3)
    perm = rng.permutation(n)
    renew = [(rng.integers(0, 10, num_steps), rng.integers(0, n, num_steps)) for _ in range(num_draws)]
    xi = [rng.standard_normal((num_steps,)) for _ in range(num_draws)]
    kernel_kwargs = dict(step_size=0.01, num_steps=num_steps, temperature=0.5, friction=2.0)
    traj = {}
    with jax.enable_x64(True):
        for backend in ("pyro", "numpyro"):
            b = _Backend(backend)
            args = (b.t(y), 0.0, 1.0, 2.0, b_size)
            static, state = b.start(kernel_kwargs, {"theta": np.array(0.3)}, conjugate_model(backend), args)
            zero = b.i(0)
            state = state._replace(r={"theta": b.t(0.2)},
                                   epochs={"data": (b.i(perm), (zero, zero, zero) if backend == "numpyro" else (0, 0, 0))})
            out = []
            for d in range(num_draws):
                noise = DrawNoise(steps={"theta": b.t(xi[d])},
                                  renew={"data": (b.i(renew[d][0]), b.i(renew[d][1]))})
                state = b.integrator.sghmc_draw(static, state, args, {}, noise=noise)
                out.append((float(state.z["theta"]), float(state.r["theta"]), float(state.lp)))
            traj[backend] = np.array(out)
    np.testing.assert_allclose(traj["pyro"], traj["numpyro"], rtol=0, atol=1e-12)
    assert np.ptp(traj["pyro"][:, 0]) > 1e-3  # the chain moved


def test_warmup_adaptation_agrees():
    """The warmup, with its fresh momentum at every draw, mass window, curvature probes,
    step-size rule and momentum rescaling, from the same θ₀, r₀, noise and probes: the
    same chain, step sizes and adapted mass in both backends."""
    import jax

    num_warmup, num_draws = 40, 44  # one mass window (draws 6-35), then sampling
    rng = np.random.default_rng(5)
    xi = [{k: rng.standard_normal((NUM_STEPS,) + s) for k, s in SHAPES.items()} for _ in range(num_draws)]
    probes = [{k: rng.choice([-1.0, 1.0], size=s) for k, s in SHAPES.items()} for _ in range(num_draws)]
    fresh = [{k: rng.standard_normal(s) for k, s in SHAPES.items()} for _ in range(num_draws)]  # warmup's momenta
    theta = {k: rng.standard_normal(s) for k, s in SHAPES.items()}
    kernel_kwargs = dict(step_size=0.05, num_steps=NUM_STEPS, temperature=0.7)
    runs = {}
    with jax.enable_x64(True):
        for backend in ("pyro", "numpyro"):
            b = _Backend(backend)
            static, state = b.start(kernel_kwargs, theta, num_warmup=num_warmup)
            state = state._replace(r=b.tree({k: np.ones(s) for k, s in SHAPES.items()}))
            out = []
            for d in range(num_draws):
                noise = DrawNoise(resample=b.tree(fresh[d]), steps=b.tree(xi[d]), probe=b.tree(probes[d]))
                state = b.integrator.sghmc_draw(static, state, (), {}, noise=noise)
                out.append((b.numpy(state.z), b.numpy(state.r), float(state.step_size)))
            runs[backend] = out, b.integrator.adapted(static, state)
    (pyro_run, pyro_adapted), (numpyro_run, numpyro_adapted) = runs["pyro"], runs["numpyro"]
    for d, ((zp, rp, ep), (zn, rn, en)) in enumerate(zip(pyro_run, numpyro_run)):
        assert ep == pytest.approx(en, rel=1e-12), f"step size of draw {d}"
        for k in SHAPES:
            np.testing.assert_allclose(zp[k], zn[k], rtol=1e-9, atol=1e-10, err_msg=f"theta[{k}] after draw {d}")
            np.testing.assert_allclose(rp[k], rn[k], rtol=1e-9, atol=1e-10, err_msg=f"r[{k}] after draw {d}")
    for k in SHAPES:
        np.testing.assert_allclose(pyro_adapted["mass"][k], numpyro_adapted["mass"][k], rtol=1e-10)
    # the window changed the mass (away from 1) and the step (to its whitened value)
    assert not np.allclose(pyro_adapted["mass"]["x"], 1.0)
    assert pyro_run[0][2] == pytest.approx(0.05) and pyro_run[-1][2] != pytest.approx(0.05)
