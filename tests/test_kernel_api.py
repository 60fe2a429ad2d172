"""The kernels inside their hosts' ``MCMC`` machinery.

Pyro: warmup, ``get_samples``, ``summary``, ``diagnostics`` per chain, two chains in
worker processes, ``StreamingMCMC``, bounded memory.  NumPyro: the ``parallel``
chain method, progress bar, ``jit_model_args``, ``warmup`` / ``post_warmup_state``,
``print_summary``.  (Sequential and vectorized chains and the continuation from
``last_state`` are in ``test_reproducibility.py``.)
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from targets import as_array, conjugate_data, gaussian_potential

from ppl_kernels.config import STAT_FIELDS

NUM_WARMUP, NUM_SAMPLES = 4, 10
KERNEL = dict(step_size=0.005, num_steps=4, friction=20.0)


def pyro_model(y, subsample_size=8):
    """``loc ~ N(0, 1)``, ``scale ~ LogNormal(0, 1)``, ``y ~ N(loc, scale)`` with a
    subsampled plate; at module level so that it pickles for worker processes."""
    import pyro
    import pyro.distributions as dist

    loc = pyro.sample("loc", dist.Normal(0.0, 1.0))
    scale = pyro.sample("scale", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
        pyro.sample("obs", dist.Normal(loc, scale), obs=y[idx])


def numpyro_model(y, subsample_size=8):
    """The same model in NumPyro."""
    import numpyro
    import numpyro.distributions as dist

    loc = numpyro.sample("loc", dist.Normal(0.0, 1.0))
    scale = numpyro.sample("scale", dist.LogNormal(0.0, 1.0))
    with numpyro.plate("data", y.shape[0], subsample_size=subsample_size) as idx:
        numpyro.sample("obs", dist.Normal(loc, scale), obs=y[idx])


def _data(backend, shift=0.0):
    return as_array(backend, conjugate_data(40, theta=1.0) + shift)


def _check_pyro_diagnostics(diag, num_chains):
    """``MCMC.diagnostics()``: per-site n_eff / r_hat and every statistic per chain,
    sampling phase only."""
    for site in ("loc", "scale"):
        assert set(diag[site]) == {"n_eff", "r_hat"}
    for name in STAT_FIELDS:
        per_chain = diag[name]
        assert sorted(per_chain) == [f"chain {c}" for c in range(num_chains)]
        for values in per_chain.values():
            assert values.shape == (NUM_SAMPLES,)
    assert diag["divergences"] == {f"chain {c}": [] for c in range(num_chains)}


# -- Pyro ------------------------------------------------------------------------------
def test_pyro_mcmc_warmup_samples_summary_diagnostics(capsys):
    import pyro
    import torch
    from pyro.infer import MCMC

    from ppl_kernels.pyro import SGHMC

    pyro.set_rng_seed(0)
    kernel = SGHMC(pyro_model, **KERNEL)
    mcmc = MCMC(kernel, num_samples=NUM_SAMPLES, warmup_steps=NUM_WARMUP, disable_progbar=True)
    mcmc.run(_data("pyro"))

    samples = mcmc.get_samples()
    assert set(samples) == {"loc", "scale"}
    assert samples["loc"].shape == (NUM_SAMPLES,)
    assert torch.all(samples["scale"] > 0)  # constrained space
    assert mcmc.get_samples(group_by_chain=True)["loc"].shape == (1, NUM_SAMPLES)
    assert set(kernel.transforms) == {"loc", "scale"}  # Pyro's MCMC reads these

    _check_pyro_diagnostics(mcmc.diagnostics(), num_chains=1)
    # the kernel counted every draw: the last one had index warmup + samples - 1
    assert kernel.state.i == NUM_WARMUP + NUM_SAMPLES

    mcmc.summary()
    out = capsys.readouterr().out
    assert "loc" in out and "scale" in out and "n_eff" in out and "Number of divergences: 0" in out


def test_pyro_two_chains_in_worker_processes(monkeypatch):
    """Two chains, each in its own spawned process: the kernel pickles, and every
    chain's statistics come back through ``diagnostics()``."""
    import pyro
    import pyro.infer.mcmc.api as api
    from pyro.infer import MCMC

    from ppl_kernels.pyro import SGHMC

    # Pyro reserves a core for the main process and falls back to sequential chains on 2 cores
    monkeypatch.setattr(api.mp, "cpu_count", lambda: 4)
    pyro.set_rng_seed(1)
    mcmc = MCMC(SGHMC(pyro_model, **KERNEL), num_samples=NUM_SAMPLES, warmup_steps=NUM_WARMUP, num_chains=2,
                disable_progbar=True, mp_context="spawn")
    assert type(mcmc.sampler).__name__ == "_MultiSampler"
    mcmc.run(_data("pyro"))

    loc = mcmc.get_samples(group_by_chain=True)["loc"]
    assert loc.shape == (2, NUM_SAMPLES)
    assert np.all(loc[0].numpy() != loc[1].numpy())  # each worker has its own seed
    diag = mcmc.diagnostics()
    _check_pyro_diagnostics(diag, num_chains=2)
    # the per-chain statistics belong to their chain: ‖θ‖² of the unconstrained draws
    unconstrained = {k: mcmc.transforms[k](v) for k, v in mcmc.get_samples(group_by_chain=True).items()}
    for c in range(2):
        sq = (unconstrained["loc"][c] ** 2 + unconstrained["scale"][c] ** 2).numpy()
        np.testing.assert_allclose(diag["theta_sq_norm"][f"chain {c}"].numpy(), sq, rtol=1e-5)


def test_pyro_two_chains_sequential_fallback(monkeypatch):
    """On a 2-core machine Pyro draws two chains one after the other with one kernel
    object: each chain's setup must start fresh statistics."""
    import pyro
    import pyro.infer.mcmc.api as api
    from pyro.infer import MCMC

    from ppl_kernels.pyro import SGHMC

    monkeypatch.setattr(api.mp, "cpu_count", lambda: 2)
    pyro.set_rng_seed(3)
    with pytest.warns(UserWarning, match="sequentially"):
        mcmc = MCMC(SGHMC(pyro_model, **KERNEL), num_samples=NUM_SAMPLES, warmup_steps=NUM_WARMUP, num_chains=2,
                    disable_progbar=True)
    mcmc.run(_data("pyro"))
    loc = mcmc.get_samples(group_by_chain=True)["loc"]
    assert loc.shape == (2, NUM_SAMPLES)
    assert np.all(loc[0].numpy() != loc[1].numpy())
    _check_pyro_diagnostics(mcmc.diagnostics(), num_chains=2)


def test_pyro_streaming_mcmc():
    import pyro
    from pyro.infer.mcmc.api import StreamingMCMC

    from ppl_kernels.pyro import SGHMC

    pyro.set_rng_seed(2)
    mcmc = StreamingMCMC(SGHMC(pyro_model, **KERNEL), num_samples=NUM_SAMPLES, warmup_steps=NUM_WARMUP,
                         disable_progbar=True)
    mcmc.run(_data("pyro"))
    stats = mcmc.get_statistics(group_by_chain=False)
    assert stats["loc"]["count"] == NUM_SAMPLES
    assert float(stats["scale"]["mean"]) > 0
    diag = mcmc.diagnostics()
    for name in STAT_FIELDS:
        assert diag[name]["chain 0"].shape == (NUM_SAMPLES,)


def _memory_rss():
    """``benchmarks/memory_rss.py`` as a module (the benchmarks are scripts, not a package)."""
    import importlib.util

    path = os.path.join(os.path.dirname(__file__), os.pardir, "benchmarks", "memory_rss.py")
    spec = importlib.util.spec_from_file_location("memory_rss", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_pyro_memory_does_not_grow_with_steps():
    """No graph or per-step record is kept: from 10³ to 10⁴ integrator steps on a
    10⁴-dimensional target, RSS grows by less than 20 MiB (one retained graph per
    step would be hundreds of MiB)."""
    import torch

    from ppl_kernels.pyro import SGHMC

    kernel = SGHMC(potential_fn=gaussian_potential("pyro", 0.0, 1.0), step_size=0.05, num_steps=100)
    kernel.initial_params = {"x": torch.zeros(10_000)}
    kernel.setup(0)
    z = kernel.initial_params
    for _ in range(10):  # 10³ steps
        z = kernel.sample(z)
    rss_mib = _memory_rss().rss_mib
    before = rss_mib()
    for _ in range(90):  # 10⁴ steps in all
        z = kernel.sample(z)
    assert rss_mib() - before < 20.0
    assert kernel.state.i == 100


# -- NumPyro ---------------------------------------------------------------------------
def test_numpyro_progress_bar_jit_model_args_print_summary(capsys, monkeypatch):
    import jax
    from numpyro.infer import MCMC

    from ppl_kernels.numpyro import SGHMC

    # NumPyro silently turns the bar off under CI and pytest-xdist
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    mcmc = MCMC(SGHMC(numpyro_model, **KERNEL), num_warmup=NUM_WARMUP, num_samples=NUM_SAMPLES,
                progress_bar=True, jit_model_args=True)
    mcmc.run(jax.random.PRNGKey(0), _data("numpyro"))
    assert "|θ|²=" in capsys.readouterr().err  # the kernel's diagnostics string in the bar
    first = np.asarray(mcmc.get_samples()["loc"])
    assert first.shape == (NUM_SAMPLES,)
    fields = mcmc.get_extra_fields()
    assert set(STAT_FIELDS) <= set(fields)  # default fields: no extra_fields= needed
    assert fields["phase"].shape == (NUM_SAMPLES,)

    # jit_model_args: new data of the same shape reuses the compiled sampler
    mcmc.run(jax.random.PRNGKey(0), _data("numpyro", shift=10.0))
    assert len(mcmc._cache) == 1
    assert np.all(np.asarray(mcmc.get_samples()["loc"]) != first)  # the compiled code did not keep the old data
    assert not np.asarray(mcmc.get_extra_fields()["diverging"]).any()

    mcmc.print_summary()
    out = capsys.readouterr().out
    assert "loc" in out and "Number of divergences: 0" in out


def test_numpyro_warmup_then_run_equals_one_run():
    """``MCMC.warmup`` then ``run(post_warmup_state.rng_key)`` gives the draws of one
    ``run`` with the same warmup: there is no adaptation, and the draw index and
    the minibatch epoch continue in the state."""
    import jax
    from numpyro.infer import MCMC

    from ppl_kernels.numpyro import SGHMC

    mcmc = MCMC(SGHMC(numpyro_model, **KERNEL), num_warmup=NUM_WARMUP, num_samples=NUM_SAMPLES, progress_bar=False)
    y = _data("numpyro")
    mcmc.run(jax.random.PRNGKey(4), y)
    one_run = np.asarray(mcmc.get_samples()["loc"])
    one_fields = {k: np.asarray(v) for k, v in mcmc.get_extra_fields().items()}
    mcmc.warmup(jax.random.PRNGKey(4), y)
    assert int(mcmc.post_warmup_state.i) == NUM_WARMUP
    mcmc.run(mcmc.post_warmup_state.rng_key, y)
    np.testing.assert_array_equal(np.asarray(mcmc.get_samples()["loc"]), one_run)
    assert int(mcmc.last_state.i) == NUM_WARMUP + NUM_SAMPLES
    for name, values in mcmc.get_extra_fields().items():
        np.testing.assert_array_equal(np.asarray(values), one_fields[name], err_msg=name)


_PARALLEL_SCRIPT = """
import json, sys
import numpyro
numpyro.set_host_device_count(2)
import jax, jax.numpy as jnp
from numpyro.infer import MCMC
from ppl_kernels.numpyro import SGHMC
sys.path.insert(0, sys.argv[1])
from targets import gaussian_potential
out = {}
for method in ("parallel", "sequential"):
    mcmc = MCMC(SGHMC(potential_fn=gaussian_potential("numpyro", 0.0, 1.0), step_size=0.1, num_steps=3),
                num_warmup=2, num_samples=5, num_chains=2, chain_method=method, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), init_params={"x": jnp.array([[0.5, -0.5], [1.0, 2.0]])})
    out[method] = {"x": mcmc.get_samples(group_by_chain=True)["x"].tolist(),
                   "kinetic_temperature": mcmc.get_extra_fields(group_by_chain=True)["kinetic_temperature"].tolist()}
# a model with its data as traced arguments (jit_model_args), and warmup() then run(): no traced
# value may be kept on the kernel between the pmap'ed calls
from functools import partial
from targets import conjugate_data, conjugate_model
y = jnp.asarray(conjugate_data(40))
model = partial(conjugate_model("numpyro"), subsample_size=8)  # a batch size is static, not a traced argument
mcmc = MCMC(SGHMC(model, step_size=0.01, num_steps=3), num_warmup=3, num_samples=4,
            num_chains=2, chain_method="parallel", progress_bar=False, jit_model_args=True)
mcmc.warmup(jax.random.PRNGKey(1), y, 0.0, 1.0, 2.0)
mcmc.run(mcmc.post_warmup_state.rng_key, y, 0.0, 1.0, 2.0)
mcmc.run(jax.random.PRNGKey(2), y + 1.0, 0.0, 1.0, 2.0)
out["jit_model_args"] = mcmc.get_samples(group_by_chain=True)["theta"].shape
out["devices"] = jax.local_device_count()
print(json.dumps(out))
"""


def test_numpyro_parallel_chains():
    """``chain_method="parallel"`` (pmap over two host devices, which must be set before
    JAX starts, hence a fresh interpreter) gives the draws of sequential chains."""
    env = dict(os.environ, XLA_FLAGS=os.environ.get("XLA_FLAGS", "").replace("--xla_force_host_platform_device_count", ""))
    proc = subprocess.run([sys.executable, "-c", _PARALLEL_SCRIPT, os.path.dirname(__file__)], capture_output=True,
                          text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["devices"] == 2
    assert out["jit_model_args"] == [2, 4]
    parallel, sequential = np.array(out["parallel"]["x"]), np.array(out["sequential"]["x"])
    assert parallel.shape == (2, 5, 2)
    assert np.all(parallel[0] != parallel[1])
    np.testing.assert_allclose(parallel, sequential, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(out["parallel"]["kinetic_temperature"], out["sequential"]["kinetic_temperature"],
                               rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
@pytest.mark.parametrize("name, value, alternative", [
    ("dense_mass", True, "adapt_mass_matrix=True adapts it per coordinate"),
    ("full_mass", [("loc", "scale")], "give a fixed diagonal as mass="),
    ("target_accept_prob", 0.9, "no accept step"),
    ("max_tree_depth", 8, "num_steps"),
])
def test_nuts_only_arguments_name_the_alternative(backend, name, value, alternative):
    import importlib

    SGHMC = importlib.import_module(f"ppl_kernels.{backend}").SGHMC
    with pytest.raises(TypeError, match=rf"does not take {name}=.*NUTS/HMC.*{alternative}"):
        SGHMC({"pyro": pyro_model, "numpyro": numpyro_model}[backend], **{name: value})


def test_numpyro_forward_mode_differentiation():
    """A model that reverse mode cannot differentiate (a while loop) samples with
    forward_mode_differentiation=True as the same model without the loop does."""
    import jax
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC

    from ppl_kernels.numpyro import SGHMC

    y = as_array("numpyro", conjugate_data(40))

    def model(y, loop=True):
        theta = numpyro.sample("theta", dist.Normal(0.0, 1.0))
        if loop:  # the identity, three times, in a loop reverse mode refuses
            theta = jax.lax.while_loop(lambda c: c[0] < 3, lambda c: (c[0] + 1, c[1] * 1.0), (0, theta))[1]
        with numpyro.plate("data", y.shape[0], subsample_size=10) as idx:
            numpyro.sample("obs", dist.Normal(theta, 2.0), obs=y[idx])

    def draws(loop, **kw):
        mcmc = MCMC(SGHMC(model, **KERNEL, **kw), num_warmup=NUM_WARMUP, num_samples=NUM_SAMPLES, progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0), y, loop=loop)
        return np.asarray(mcmc.get_samples()["theta"])

    with pytest.raises(ValueError, match="[Rr]everse-mode differentiation does not work for lax.while_loop"):
        draws(True)
    np.testing.assert_allclose(draws(True, forward_mode_differentiation=True), draws(False), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backend", ["pyro", "numpyro"])
def test_hosts_predictive_on_the_samples_of_a_subsampled_model(backend):
    """The host's own Predictive on ``mcmc.get_samples()``: at the full training inputs and at
    held-out inputs with the plate unsubsampled (``batch=None``, as after SVI with
    subsampling), every row is predicted, from the draw it belongs to."""
    import arviz_models as am

    from ppl_kernels import runner

    model = am.MODELS["linreg", backend]
    mcmc = runner.sample(backend, model=model, model_args=am.regression_args(backend, batch=20),
                         kernel_kwargs=dict(step_size=4e-3, num_steps=10), num_samples=50, num_warmup=50, seed=0)
    samples = mcmc.get_samples()
    assert set(samples) >= {"w", "b", "sigma"} and "data" not in samples
    for X in (am.X_TRAIN, am.X_TEST):
        X_in = am.as_backend(backend, X, X[:, 0])[0]
        if backend == "pyro":
            import pyro

            obs = pyro.infer.Predictive(model, posterior_samples=samples, return_sites=["obs"])(X_in, None, None)["obs"]
        else:
            import jax
            import numpyro

            pred = numpyro.infer.Predictive(model, samples, return_sites=["obs"])
            obs = pred(jax.random.PRNGKey(1), X_in, None, None)["obs"]
        obs = np.asarray(obs)
        w, b, sigma = (np.asarray(samples[k]) for k in ("w", "b", "sigma"))
        assert obs.shape == (50, X.shape[0])
        z = (obs - (w @ X.T + b[:, None])) / sigma[:, None]  # N(0, 1) if each row came from its own draw
        assert abs(z.mean()) < 4 / np.sqrt(z.size) and abs(z.var() - 1) < 4 * np.sqrt(2 / z.size)
