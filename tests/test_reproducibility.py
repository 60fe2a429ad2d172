"""Seeds determine runs: the same seed gives identical draws and statistics, a
different seed different ones; in NumPyro, vectorized and sequential chains agree
and a run continued from ``last_state`` equals one uninterrupted run."""

import numpy as np
import pytest
from targets import as_array, conjugate_data, conjugate_model

from ppl_kernels import runner, schedules
from ppl_kernels._host import get_draws, get_stats

# A subsampled plate, momentum resampling and a cyclical step size: every source of
# randomness and every piece of state the kernels carry.
KERNEL = dict(step_size=schedules.cyclical(0.02, 0.005, cycle_length=5, explore_fraction=0.4),
              num_steps=5, resample_scale=0.5, temperature=0.5)


def _model_args(backend):
    y = as_array(backend, conjugate_data(40))
    return (y, 0.0, 1.0, 2.0, 8)  # prior loc and scale, noise scale, subsample size


def _run(backend, seed, num_samples=8):
    return runner.sample(backend, model=conjugate_model(backend), model_args=_model_args(backend),
                         kernel_kwargs=KERNEL, num_samples=num_samples, num_warmup=3, seed=seed)


def _assert_same_run(a, b):
    da, db = get_draws(a), get_draws(b)
    np.testing.assert_array_equal(da["theta"], db["theta"])
    sa, sb = get_stats(a), get_stats(b)
    for name in sa:
        np.testing.assert_array_equal(sa[name], sb[name], err_msg=name)


def test_same_seed_same_draws_different_seed_different_draws(backend):
    first = _run(backend, seed=11)
    again = _run(backend, seed=11)  # a fresh kernel and MCMC: no state leaks from the first run
    _assert_same_run(first, again)
    if backend == "numpyro":
        import jax

        # rerunning one MCMC object reuses its compiled code; only the key changes
        again.run(jax.random.PRNGKey(12), *_model_args(backend))
        other = again
    else:
        other = _run(backend, seed=12)
    assert np.all(get_draws(other)["theta"] != get_draws(first)["theta"])


# -- NumPyro chain methods and continuation ---------------------------------------------
def _numpyro_mcmc(chain_method, num_samples):
    from numpyro.infer import MCMC

    from ppl_kernels.numpyro import SGHMC

    return MCMC(SGHMC(conjugate_model("numpyro"), **KERNEL), num_warmup=3, num_samples=num_samples,
                num_chains=2, chain_method=chain_method, progress_bar=False)


def _chains(mcmc):
    draws = get_draws(mcmc)["theta"]
    stats = get_stats(mcmc)
    return draws, stats


@pytest.fixture(scope="module")
def vectorized_run():
    import jax

    mcmc = _numpyro_mcmc("vectorized", 8)
    mcmc.run(jax.random.PRNGKey(3), *_model_args("numpyro"))
    return _chains(mcmc)


def test_numpyro_vectorized_equals_sequential(vectorized_run):
    import jax

    mcmc = _numpyro_mcmc("sequential", 8)
    mcmc.run(jax.random.PRNGKey(3), *_model_args("numpyro"))
    draws, stats = _chains(mcmc)
    vdraws, vstats = vectorized_run
    assert draws.shape == vdraws.shape == (2, 8)
    assert np.all(draws[0] != draws[1])  # the two chains have their own keys
    # vmap may reorder float32 arithmetic; in practice the draws are bit-identical
    np.testing.assert_allclose(draws, vdraws, rtol=1e-6, atol=0)
    for name in stats:
        np.testing.assert_allclose(stats[name], vstats[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_numpyro_continuation_equals_one_run(vectorized_run):
    """The protocol of NumPyro's docs: ``post_warmup_state = last_state`` then
    ``run(post_warmup_state.rng_key)``.  The draw index, the epoch permutation of
    the subsampled plate and the key all live in the state, so two runs of 4 draws
    are one run of 8 (the second run has no warmup)."""
    import jax

    mcmc = _numpyro_mcmc("vectorized", 4)
    args = _model_args("numpyro")
    mcmc.run(jax.random.PRNGKey(3), *args)
    d1, s1 = _chains(mcmc)
    mcmc.post_warmup_state = mcmc.last_state
    mcmc.run(mcmc.post_warmup_state.rng_key, *args)
    d2, s2 = _chains(mcmc)
    vdraws, vstats = vectorized_run
    np.testing.assert_array_equal(np.concatenate([d1, d2], axis=1), vdraws)
    for name in s1:
        np.testing.assert_array_equal(np.concatenate([s1[name], s2[name]], axis=1), vstats[name], err_msg=name)
    # the cyclical step size continued where the first run stopped (draw index 3 + 4 = 7 onwards)
    np.testing.assert_allclose(s2["step_size"][0], [KERNEL["step_size"].value(k) for k in range(7, 11)], rtol=1e-6)
