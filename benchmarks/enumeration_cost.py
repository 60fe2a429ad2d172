"""What summing out a discrete site costs per step, side by side with the same model written by hand.

A three-component Gaussian mixture over a subsampled plate (``--points`` rows,
minibatches of ``--batch``), written twice: with the assignment as a discrete
latent site that the kernel sums out (``k ~ Categorical(w)``, ``obs ~
Normal(loc[k], 1)``), and with the assignment summed out by hand
(``obs ~ MixtureSameFamily(...)``).  The two have the same potential.  Both
backends, fixed step and mass (nothing adapts), in one process.

Each case runs ``U`` and ``3U`` draws per call; the cost per integrator step is
the slope between the two (the fixed cost of a call, Pyro's setup, drops out),
the median over interleaved rounds.  NumPyro's calls continue a compiled run
(``host.continue_run``), so that its compilation, which varies by more than
the run it compiles, is not timed.  The ratio is the
enumerated model's cost to the hand-written one's, from the same rounds.

    python benchmarks/enumeration_cost.py [--units 100] [--rounds 3] [--points 10000] [--batch 100]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np

KERNEL = dict(step_size=1e-3, num_steps=10, adapt_step_size=False, adapt_mass_matrix=False)


def _models(backend):
    import importlib

    ppl = importlib.import_module(backend)
    dist = importlib.import_module(f"{backend}.distributions")
    ones = (lambda n: __import__("torch").ones(n)) if backend == "pyro" else (lambda n: __import__("jax").numpy.ones(n))

    def enumerated(data, batch):
        w = ppl.sample("w", dist.Dirichlet(ones(3)))
        loc = ppl.sample("loc", dist.Normal(0.0, 5.0).expand([3]).to_event(1))
        with ppl.plate("data", data.shape[0], subsample_size=batch) as idx:
            k = ppl.sample("k", dist.Categorical(w))
            ppl.sample("obs", dist.Normal(loc[k], 1.0), obs=data[idx])

    def by_hand(data, batch):
        w = ppl.sample("w", dist.Dirichlet(ones(3)))
        loc = ppl.sample("loc", dist.Normal(0.0, 5.0).expand([3]).to_event(1))
        with ppl.plate("data", data.shape[0], subsample_size=batch) as idx:
            ppl.sample("obs", dist.MixtureSameFamily(dist.Categorical(w), dist.Normal(loc, 1.0)), obs=data[idx])

    return {"enumerated": enumerated, "by hand": by_hand}


def _timer(backend, model, data, batch):
    """``draws -> seconds`` for a fresh run of ``draws`` draws (no warmup)."""
    if backend == "pyro":
        import pyro
        import torch
        from pyro.infer import MCMC

        from ppl_kernels.pyro import SGHMC

        x = torch.as_tensor(data, dtype=torch.float32)

        def run(draws):
            pyro.set_rng_seed(0)
            t = time.perf_counter()
            MCMC(SGHMC(model, **KERNEL), num_samples=draws, warmup_steps=0, disable_progbar=True).run(x, batch)
            return time.perf_counter() - t
    else:
        import jax
        from numpyro.infer import MCMC

        from ppl_kernels.numpyro import SGHMC, host

        x = jax.numpy.asarray(data)
        runs = {}  # draws -> (kernel, MCMC): a continuation of a compiled run compiles nothing

        def more(kernel, mcmc, draws):
            mcmc = host.continue_run(kernel, host.last_states(mcmc), num_warmup=0, num_samples=draws, num_chains=1,
                                     chain_method="sequential", progress_bar=False, model_args=(x, batch),
                                     model_kwargs={}, mcmc=mcmc)
            jax.block_until_ready(mcmc.get_samples())
            return mcmc

        def run(draws):
            if draws not in runs:
                kernel = SGHMC(model, **KERNEL)
                mcmc = MCMC(kernel, num_warmup=0, num_samples=draws, progress_bar=False)
                mcmc.run(jax.random.PRNGKey(0), x, batch)
                runs[draws] = kernel, more(kernel, mcmc, draws)
            kernel, mcmc = runs[draws]
            t = time.perf_counter()
            runs[draws] = kernel, more(kernel, mcmc, draws)
            return time.perf_counter() - t
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=100, help="draws of the short call (the long one has 3x)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--points", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    data = np.array([-4.0, 0.0, 4.0])[rng.choice(3, args.points, p=[0.2, 0.3, 0.5])] + rng.standard_normal(args.points)
    steps = 2 * args.units * KERNEL["num_steps"]
    print(f"mixture of 3, N = {args.points}, B = {args.batch}; ms per integrator step (median of {args.rounds} rounds)")
    print(f"{'backend':8s} {'enumerated':>11s} {'by hand':>9s} {'ratio':>6s}")
    for backend in ("pyro", "numpyro"):
        timers = {name: _timer(backend, m, data, args.batch) for name, m in _models(backend).items()}
        slopes = {name: [] for name in timers}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for run in timers.values():  # a first call of each length: imports, first-use costs, compiles
                run(args.units)
                run(3 * args.units)
            for _ in range(args.rounds):
                for name, run in timers.items():
                    slopes[name].append((run(3 * args.units) - run(args.units)) / steps * 1e3)
        med = {name: statistics.median(v) for name, v in slopes.items()}
        ratio = statistics.median(a / b for a, b in zip(slopes["enumerated"], slopes["by hand"]))
        print(f"{backend:8s} {med['enumerated']:11.4f} {med['by hand']:9.4f} {ratio:6.2f}")


if __name__ == "__main__":
    main()
