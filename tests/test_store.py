"""Draws streamed to disk (ppl_kernels.store) and exact continuation, in both backends:
a streamed store holds exactly the in-memory export of the same run; a run interrupted
(Ctrl-C, or the process killed) keeps its chunks and resumes to exactly the draws of the
uninterrupted run; one writer per store; Pyro's continuation from ``last_state``."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from targets import as_array, conjugate_data, conjugate_model

from ppl_kernels import runner, store, to_inference_data
from ppl_kernels._host import get_draws, get_stats, host_of

KERNEL = dict(step_size=0.02, num_steps=2)


def _run_kwargs(backend, num_samples=50, num_chains=2):
    y = as_array(backend, conjugate_data(200))
    return dict(model=conjugate_model(backend), model_args=(y, 0.0, 1.0, 2.0, 25), kernel_kwargs=KERNEL,
                num_samples=num_samples, num_warmup=30, num_chains=num_chains, seed=3)


def _assert_same_data(a, b):
    assert a.groups() == b.groups()
    for g in a.groups():
        assert set(a[g].data_vars) == set(b[g].data_vars), g
        for v in a[g].data_vars:
            np.testing.assert_array_equal(a[g][v].values, b[g][v].values, err_msg=f"{g}/{v}")


@pytest.mark.filterwarnings("ignore:num_chains=2 is more than available_cpu")
def test_stream_holds_the_in_memory_export(backend, tmp_path):
    kw = _run_kwargs(backend)
    memory = to_inference_data(runner.sample(backend, **kw))
    streamed = store.stream(backend, tmp_path / "s", chunk_draws=20, **kw)
    assert sorted(p.name for p in (tmp_path / "s").glob("chunk-*.nc")) == [f"chunk-{i:06d}.nc" for i in range(3)]
    _assert_same_data(memory, streamed)
    assert {"posterior", "sample_stats", "log_likelihood", "observed_data"} <= set(streamed.groups())
    np.testing.assert_array_equal(streamed.posterior.draw.values, np.arange(50))
    assert streamed.posterior.attrs["num_samples"] == 50 and streamed.posterior.attrs["num_warmup"] == 30
    assert not (tmp_path / "s" / ".lock").exists()

    # lazily: the same store, every draw still on disk until computed
    lazy = store.open_store(tmp_path / "s", lazy=True)
    for g in lazy.groups():
        if "draw" in lazy[g].dims:
            assert all(v.chunks is not None for v in lazy[g].data_vars.values()), g
    assert lazy.posterior.chunks["draw"] == (20, 20, 10)
    _assert_same_data(memory, lazy)
    assert lazy.posterior.attrs == streamed.posterior.attrs


def test_a_lazy_store_needs_dask(tmp_path, monkeypatch):
    kw = _run_kwargs("numpyro", num_samples=4, num_chains=1)
    store.stream("numpyro", tmp_path / "s", chunk_draws=2, **kw)
    monkeypatch.setitem(sys.modules, "dask", None)
    with pytest.raises(ImportError, match=r"lazy=True.*pip install dask"):
        store.open_store(tmp_path / "s", lazy=True)
    assert store.open_store(tmp_path / "s").posterior.sizes["draw"] == 4


def test_stream_writes_only_the_chosen_sites(backend, tmp_path):
    ppl = __import__(backend)
    import importlib

    dist = importlib.import_module(f"{backend}.distributions")
    y = as_array(backend, conjugate_data(40))

    def model(y):
        theta = ppl.sample("theta", dist.Normal(0.0, 1.0))
        ppl.sample("other", dist.Normal(0.0, 1.0))
        with ppl.plate("data", y.shape[0], subsample_size=10) as idx:
            ppl.sample("obs", dist.Normal(theta, 2.0), obs=y[idx])

    out = store.stream(backend, tmp_path / "s", model=model, model_args=(y,), kernel_kwargs=KERNEL, num_samples=6,
                       chunk_draws=4, sites=["theta"])
    assert list(out.posterior.data_vars) == ["theta"] and out.posterior.sizes["draw"] == 6
    assert "obs" in out.log_likelihood


def _softmax_kwargs(backend, num_samples=50, num_chains=2):
    import arviz_models as am

    return dict(model=am.MODELS["softmax", backend], model_args=am.classification_args(backend, batch=20),
                kernel_kwargs=KERNEL, num_samples=num_samples, num_warmup=30, num_chains=num_chains, seed=3)


def _held_out(backend):
    import arviz_models as am

    X_test, y_test, _ = am.classification_args(backend, split="test")
    return dict(model_args=(X_test,), model_kwargs=dict(batch=20), observed={"y": y_test})


@pytest.mark.filterwarnings("ignore:num_chains=2 is more than available_cpu")
def test_streamed_predictions_and_their_running_average_are_the_in_memory_ones(backend, tmp_path):
    """Each chunk's predictive draws come from the random streams of their places in the
    whole run (not of the chunk's own draw 0, 1, ...), and the running average over chunks
    is the average over all draws."""
    from ppl_kernels import predictive_mean

    kw, spec = _softmax_kwargs(backend), _held_out(backend)
    memory = to_inference_data(runner.sample(backend, **kw), predictions=spec)
    streamed = store.stream(backend, tmp_path / "s", chunk_draws=20, export=dict(predictions=spec), **kw)
    # The predictive draws (integers) are equal; the log probabilities up to float32 rounding,
    # since XLA rounds a vectorised evaluation of 20 draws and one of 100 differently.
    np.testing.assert_array_equal(streamed.predictions.y.values, memory.predictions.y.values)
    for v in ("y_class_log_prob", "y_log_density"):
        np.testing.assert_allclose(streamed.predictions[v].values, memory.predictions[v].values, rtol=1e-6, atol=1e-6)
    # A run that keeps no draw of the weights, only the held-out averages.
    lean = store.stream(backend, tmp_path / "lean", chunk_draws=20, sites=[], export=dict(log_likelihood=False),
                        predictive_mean=spec, **kw)
    assert {"posterior", "predictions", "log_likelihood"}.isdisjoint(lean.groups()) and "sample_stats" in lean.groups()
    expected, got = predictive_mean(memory), lean.predictive_mean
    assert set(got.data_vars) == {"y_mean", "y_class_prob", "y_log_density"} and got.attrs["num_draws"] == 50
    for v in expected.data_vars:
        np.testing.assert_allclose(got[v].values, expected[v].values, rtol=1e-6, atol=1e-6, err_msg=v)
        assert got[v].dims == expected[v].dims
    probs = got.y_class_prob.values
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-6)
    # log mean_s p(y*|θ_s) from the per-draw densities, independently of predictive_mean
    ld = memory.predictions.y_log_density.values.astype(np.float64)
    np.testing.assert_allclose(got.y_log_density.values, np.log(np.exp(ld).mean(1)), rtol=1e-6, atol=1e-6)
    y_test = spec["observed"]["y"]
    np.testing.assert_allclose(np.take_along_axis(probs, np.asarray(y_test)[None, :, None], -1)[..., 0],
                               np.exp(got.y_log_density.values), rtol=1e-6)


class _InterruptOnChunk:
    """Ctrl-C while the ``n``-th chunk is being exported (its draws are then lost, the
    earlier ones kept)."""

    def __init__(self, n, monkeypatch):
        self.n, self.calls, self.orig = n, 0, store._chunk_idata
        monkeypatch.setattr(store, "_chunk_idata", self)

    def __call__(self, *args):
        self.calls += 1
        if self.calls == self.n:
            raise KeyboardInterrupt
        return self.orig(*args)


def test_interrupt_keeps_the_chunks_and_resume_is_exact(backend, tmp_path, monkeypatch):
    kw = _run_kwargs(backend, num_samples=40, num_chains=1)
    whole = store.stream(backend, tmp_path / "whole", chunk_draws=20, **kw)
    _InterruptOnChunk(2, monkeypatch)
    with pytest.raises(store.Interrupted, match="after 20 of 40 draws.*resume=True") as info:
        store.stream(backend, tmp_path / "cut", chunk_draws=20, **kw)
    assert info.value.draws == 20 and isinstance(info.value, KeyboardInterrupt)
    assert not (tmp_path / "cut" / ".lock").exists()
    kept = store.open_store(tmp_path / "cut")
    assert kept.posterior.sizes["draw"] == 20
    np.testing.assert_array_equal(kept.posterior.theta.values, whole.posterior.theta.values[:, :20])
    monkeypatch.undo()
    resumed = store.stream(backend, tmp_path / "cut", chunk_draws=20, resume=True, **kw)
    _assert_same_data(whole, resumed)


_KILLED = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
from targets import as_array, conjugate_data, conjugate_model
from ppl_kernels import store
backend = {backend!r}
if backend == "pyro":
    import torch
    torch.set_num_threads(1)  # as the test process runs
y = as_array(backend, conjugate_data(200))
store.stream(backend, {folder!r}, model=conjugate_model(backend), model_args=(y, 0.0, 1.0, 2.0, 25),
             kernel_kwargs={kernel!r}, num_samples=100000, num_warmup=30, seed=3, chunk_draws=20)
"""


def test_killed_process_resumes_exactly(backend, tmp_path):
    folder = tmp_path / "killed"
    code = _KILLED.format(tests=str(Path(__file__).parent), backend=backend, folder=str(folder), kernel=KERNEL)
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        # chunk 2 is begun only after the checkpoint of chunk 1: two chunks are then kept
        while time.time() < deadline and not (folder / "chunk-000002.nc").exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # no handler runs: the lock and maybe a temporary file stay behind
    finally:
        proc.wait()
    assert (folder / ".lock").exists()
    kept = store.open_store(folder).posterior.sizes["draw"]
    assert kept >= 40 and kept % 20 == 0
    kw = _run_kwargs(backend, num_samples=100000, num_chains=1)  # the killed run's settings
    # the resumed run would go on to the end: it is interrupted after two more chunks
    calls = {"n": 0}
    orig = store._chunk_idata

    def two_more(*args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return orig(*args)

    store._chunk_idata = two_more
    try:
        with pytest.raises(store.Interrupted):
            store.stream(backend, folder, chunk_draws=20, resume=True, **kw)
    finally:
        store._chunk_idata = orig
    resumed = store.open_store(folder)
    assert resumed.posterior.sizes["draw"] == kept + 40
    whole = to_inference_data(runner.sample(backend, **dict(kw, num_samples=kept + 40)))
    np.testing.assert_array_equal(resumed.posterior.theta.values, whole.posterior.theta.values)
    for name in ("lp", "kinetic_temperature", "diverging", "step_size"):
        np.testing.assert_array_equal(resumed.sample_stats[name].values, whole.sample_stats[name].values)


def test_interrupt_of_an_in_memory_run_says_so(backend):
    """Ctrl-C inside the model (where it mostly lands) comes out as one clear interrupt."""
    ppl = __import__(backend)
    import importlib

    dist = importlib.import_module(f"{backend}.distributions")
    calls = {"n": 0}

    def model():
        calls["n"] += 1
        if calls["n"] == 6:
            raise KeyboardInterrupt
        ppl.sample("x", dist.Normal(0.0, 1.0))

    with pytest.raises(runner.Interrupted, match="an in-memory run keeps no draws; ppl_kernels.stream") as info:
        runner.sample(backend, model=model, kernel_kwargs=KERNEL, num_samples=50)
    assert info.value.store is None and info.value.draws == 0 and store.Interrupted is runner.Interrupted


def test_store_refuses_what_it_cannot_continue(backend, tmp_path):
    kw = _run_kwargs(backend, num_samples=4, num_chains=1)
    folder = tmp_path / "s"
    store.stream(backend, folder, chunk_draws=2, **kw)
    with pytest.raises(ValueError, match="exists: pass resume=True"):
        store.stream(backend, folder, chunk_draws=2, **kw)
    with pytest.raises(ValueError, match=r"other settings \(chunk_draws, seed differ\)"):
        store.stream(backend, folder, chunk_draws=4, resume=True, **dict(kw, seed=4))
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "data.txt").write_text("mine")
    with pytest.raises(ValueError, match="not a store of ppl_kernels"):
        store.stream(backend, tmp_path / "x", chunk_draws=2, resume=True, **kw)
    # another live process holds the lock: a one-line error, nothing written
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / ".lock").write_text(str(os.getppid()))
    with pytest.raises(ValueError, match=r"being written by another process \(pid \d+\)"):
        store.stream(backend, tmp_path / "busy", chunk_draws=2, **kw)
    assert [p.name for p in (tmp_path / "busy").iterdir()] == [".lock"]
    with pytest.raises(ValueError, match="chunk_draws"):
        store.stream(backend, tmp_path / "y", chunk_draws=0, **kw)
    with pytest.raises(ValueError, match="holds no finished chunk|not a store"):
        store.open_store(tmp_path / "busy")


def test_pyro_continues_from_last_state_exactly():
    """Pyro's MCMC has no continuation of its own: ``kernel.post_warmup_state`` gives the one
    NumPyro has (schedules, momentum, epochs, random stream and adaptation carry on)."""
    from pyro.infer import MCMC

    kw = _run_kwargs("pyro", num_samples=40, num_chains=1)
    whole = runner.sample("pyro", **kw)
    first = runner.sample("pyro", **dict(kw, num_samples=15))
    kernel = host_of(first).kernel_of(first)
    head = get_draws(first)["theta"]
    kernel.post_warmup_state = kernel.last_state
    with pytest.raises(ValueError, match="warmup_steps must be 0 when continuing.*got 5"):
        MCMC(kernel, num_samples=25, warmup_steps=5).run(*kw["model_args"])
    rest = MCMC(kernel, num_samples=25, warmup_steps=0)
    rest.run(*kw["model_args"])
    np.testing.assert_array_equal(np.concatenate([head, get_draws(rest)["theta"]], axis=1), get_draws(whole)["theta"])
    np.testing.assert_array_equal(get_stats(rest)["step_size"], get_stats(whole)["step_size"][:, 15:])
    with pytest.raises(ValueError, match="states must be SGHMCState"):
        kernel.post_warmup_state = {"theta": 1.0}
    kernel.post_warmup_state = None
    assert kernel.post_warmup_state is None


def test_running_average_resumes_exactly(backend, tmp_path, monkeypatch):
    kw, spec = _softmax_kwargs(backend, num_samples=40, num_chains=1), _held_out(backend)
    opts = dict(chunk_draws=20, sites=[], export=dict(log_likelihood=False), predictive_mean=spec)
    whole = store.stream(backend, tmp_path / "whole", **opts, **kw)
    _InterruptOnChunk(2, monkeypatch)
    with pytest.raises(store.Interrupted):
        store.stream(backend, tmp_path / "cut", **opts, **kw)
    assert store.open_store(tmp_path / "cut").predictive_mean.attrs["num_draws"] == 20
    monkeypatch.undo()
    resumed = store.stream(backend, tmp_path / "cut", resume=True, **opts, **kw).predictive_mean
    assert resumed.attrs["num_draws"] == 40
    for v in whole.predictive_mean.data_vars:
        np.testing.assert_array_equal(resumed[v].values, whole.predictive_mean[v].values, err_msg=v)
    with pytest.raises(ValueError, match="predictive_mean differ"):
        store.stream(backend, tmp_path / "cut", resume=True, **dict(opts, predictive_mean=None), **kw)


def test_a_numpyro_continuation_compiles_its_loop_once():
    """A streamed NumPyro run continues its chains chunk after chunk; the sampling loop is
    compiled for the first continuation only (NumPyro 0.22 without a progress bar compiles
    it at every run: ``ppl_kernels.numpyro.host._shared_jit_wrappers``).  The draws are the
    same as without the sharing."""
    import jax
    from jax import monitoring
    from numpyro.infer import MCMC

    from ppl_kernels.numpyro import SGHMC, host

    args = (as_array("numpyro", conjugate_data(200)), 0.0, 1.0, 2.0, 25)
    kernel = SGHMC(conjugate_model("numpyro"), **KERNEL)
    first = MCMC(kernel, num_warmup=20, num_samples=15, progress_bar=False)
    first.run(jax.random.PRNGKey(0), *args)
    start = host.last_states(first)  # (the continuations below run on first itself)
    compiles = []

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            compiles.append(event)

    monitoring.register_event_duration_secs_listener(listen)
    try:
        mcmc, states, draws, compiled = first, start, [], []
        for _ in range(3):
            before = len(compiles)
            mcmc = host.continue_run(kernel, states, num_warmup=20, num_samples=15, num_chains=1,
                                     chain_method="sequential", progress_bar=False, model_args=args, model_kwargs={},
                                     mcmc=mcmc)
            draws.append(np.asarray(mcmc.get_samples()["theta"]))
            compiled.append(len(compiles) - before)
            states = host.last_states(mcmc)
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert compiled[0] > 0 and compiled[1:] == [0, 0], compiled
    # the same chains as continuations on fresh MCMC objects (whose loops compile anew)
    states, plain = start, []
    for _ in range(3):
        mcmc = host.continue_run(kernel, states, num_warmup=20, num_samples=15, num_chains=1,
                                 chain_method="sequential", progress_bar=False, model_args=args, model_kwargs={})
        plain.append(np.asarray(mcmc.get_samples()["theta"]))
        states = host.last_states(mcmc)
    np.testing.assert_array_equal(np.concatenate(draws), np.concatenate(plain))
