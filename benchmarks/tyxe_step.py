"""Cost per gradient of SGHMC against Pyro's HMC on a TyXe Bayesian neural net, side by side.

TyXe's ``MCMC_BNN`` runs any Pyro kernel on the model it builds from a torch
network; this times Pyro's ``HMC`` (TyXe's documented kernel) and
``ppl_kernels.pyro.SGHMC`` on the same model in one process: TyXe's 1-D
regression network (1-50-1, tanh, 151 weights, N = 100 points; ``--width``
and ``--points`` change it), eager and with ``jit_compile=True``, and SGHMC
also with minibatches of ``--batch`` points.  No warmup (nothing adapts, the
step is fixed), so every call costs its gradients and the kernels' own work
only.

Each method runs ``U`` and ``3U`` gradients per call; the cost per gradient is
the slope between the two (the fixed cost of a call, Pyro's kernel setup and
jit tracing, drops out), the median over interleaved rounds, so that a drifting
machine load slows every method alike.  The ratios are to eager HMC, measured
in the same rounds.

    python benchmarks/tyxe_step.py [--units 400] [--rounds 5] [--width 50] [--points 100] [--batch 20]
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings


def _model(width, points):
    import pyro
    import pyro.distributions as dist
    import torch
    import tyxe
    from torch import nn

    torch.manual_seed(0)
    x = torch.rand(points, 1) * 2 - 1
    y = x.mul(4).add(0.8).cos() + 0.1 * torch.randn_like(x)
    pyro.clear_param_store()
    net = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, 1))
    return net, tyxe.priors.IIDPrior(dist.Normal(0.0, 1.0)), tyxe.likelihoods.HomoskedasticGaussian(points, scale=0.1), x, y


def methods(width, points, batch):
    """``{name: (kernel builder, gradients per draw)}``."""
    import pyro

    from ppl_kernels import Minibatches
    from ppl_kernels.pyro import SGHMC

    steps = 10
    hand = dict(step_size=1e-3, num_steps=steps, adapt_step_size=False, adapt_mass_matrix=False)
    out = {}
    for jit in (False, True):
        tag = " jit" if jit else ""
        out[f"HMC{tag}"] = (lambda m, j=jit: pyro.infer.HMC(m, step_size=1e-3, num_steps=steps, adapt_step_size=False,
                                                              jit_compile=j, ignore_jit_warnings=True), steps)
        out[f"SGHMC full batch{tag}"] = (lambda m, j=jit: SGHMC(m, jit_compile=j, ignore_jit_warnings=True, **hand), steps)
        out[f"SGHMC B={batch}{tag}"] = (lambda m, j=jit: SGHMC(m, minibatches=Minibatches(points, batch), jit_compile=j,
                                                               ignore_jit_warnings=True, **hand), steps)
    return out


def time_call(builder, draws, width, points):
    """Seconds of one ``MCMC_BNN.fit`` of ``draws`` draws (no warmup)."""
    import torch
    import tyxe

    net, prior, lik, x, y = _model(width, points)
    bnn = tyxe.bnn.MCMC_BNN(net, prior, lik, builder)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=points)
    start = time.perf_counter()
    bnn.fit(loader, draws, warmup_steps=0, disable_progbar=True)
    return time.perf_counter() - start


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--units", type=int, default=400, help="gradients of the small call (the large one does 3x)")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--width", type=int, default=50)
    p.add_argument("--points", type=int, default=100)
    p.add_argument("--batch", type=int, default=20)
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    ms = methods(args.width, args.points, args.batch)
    slopes = {name: [] for name in ms}
    for builder, grads in ms.values():  # the first call of each size compiles / traces: not timed
        for units in (args.units, 3 * args.units):
            time_call(builder, max(units // grads, 1), args.width, args.points)
    for r in range(args.rounds):
        order = list(ms) if r % 2 == 0 else list(reversed(ms))
        for name in order:
            builder, grads = ms[name]
            small, large = max(args.units // grads, 1), max(3 * args.units // grads, 1)
            t1 = time_call(builder, small, args.width, args.points)
            t3 = time_call(builder, large, args.width, args.points)
            slopes[name].append((t3 - t1) / ((large - small) * grads))
    base = statistics.median(slopes["HMC"])
    print(f"TyXe MCMC_BNN, 1-{args.width}-1 tanh, N = {args.points}; median of {args.rounds} interleaved rounds, "
          f"slope between {args.units} and {3 * args.units} gradients")
    print(f"{'kernel':<24} {'us per gradient':>16} {'min':>8} {'max':>8} {'/ HMC eager':>12}")
    for name, values in slopes.items():
        med = statistics.median(values)
        print(f"{name:<24} {med * 1e6:16.1f} {min(values) * 1e6:8.1f} {max(values) * 1e6:8.1f} {med / base:12.2f}")


if __name__ == "__main__":
    main()
