"""How far momentum resampling with β ≠ αT moves the sampled temperature.

On a Gaussian target U(θ) = ‖θ‖² / 2s² (d = 100 independent coordinates) the
integrator is linear, so the stationary covariance of the chain, with the
momentum redrawn from N(0, βM) (plus the half kick) every ``k`` steps, can be
computed exactly from the covariance recursion S ← A S Aᵀ + Q.  This
script runs :class:`ppl_kernels.numpyro.SGHMC` (``num_steps = k``,
``resample_scale = β``) and compares the measured effective temperature
T_eff = E‖θ‖² / (d s²) at the end of each draw with that exact value, for the
(α, γ, β) of ``theory-notes.md`` §8b (T = 0.1, s² = M = C = 1).  The exact
recursion reproduces the notes' table at their ε = 0.01; the chains run at
ε = 0.1, because at ε = 0.01 a chain that resamples every step forgets its
start only after ~10⁵ steps (θ then moves like Langevin dynamics with step
ε²/2M').

It shows that

- β = αT leaves the target exact for every ``k`` (T_eff = T);
- any other β pulls T_eff towards β/α, the more the more often it resamples:
  with β = T and α = 4 the chain samples at T/4 when it resamples every step;
- the cycle average (theory-notes §8b (ii)) and the end-of-draw value (what the
  draws record) differ when ``k`` is comparable to the friction time.

Run ``python examples/resampling_bias.py`` (under a minute) or ``--quick``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

T, S2, MASS, FRICTION, EPS, DIM = 0.1, 1.0, 1.0, 1.0, 0.1, 100

#: (α, γ, β) as in theory-notes §8b (ii); β = αT is the exact scale.
SETTINGS = [(4.0, 0.2, 4.0 * T), (4.0, 0.2, T), (0.25, 0.2, T), (1.0, 0.2, 1.0)]
INTERVALS = (1, 10, 100)


def exact_temperature(alpha, gamma, beta, k, eps=EPS):
    """Exact stationary ``(end-of-draw, cycle-average)`` Var θ / s² of the kernel's
    integrator on one Gaussian coordinate, resampling every ``k`` steps.

    One step maps the covariance S of (θ, r) to A S Aᵀ + Q, the resampling (fresh
    r, then the half kick) to R S Rᵀ + diag(0, βM); the fixed point of a whole
    draw solves a 4×4 linear system in vec(S).
    """
    m, c = alpha * MASS, gamma * FRICTION
    A = np.array([[1.0, eps / m], [-eps / S2, 1.0 - eps**2 / (S2 * m) - eps * c / m]])
    Q = np.diag([0.0, 2.0 * eps * c * T])
    R = np.array([[1.0, 0.0], [-0.5 * eps / S2, 0.0]])
    AA = np.kron(A, A)
    L, const = np.kron(R, R), np.diag([0.0, beta * MASS]).ravel()
    for _ in range(k):
        L, const = AA @ L, AA @ const + Q.ravel()
    S = np.linalg.solve(np.eye(4) - L, const).reshape(2, 2)  # covariance at the end of a draw
    cycle, Sj = 0.0, R @ S @ R.T + np.diag([0.0, beta * MASS])
    for _ in range(k):
        Sj = A @ Sj @ A.T + Q
        cycle += Sj[0, 0]
    return S[0, 0] / S2, cycle / k / S2


def potential(z):
    return 0.5 * (z["theta"] ** 2).sum() / S2


def measure(alpha, gamma, beta, k, *, total_steps: int, seed: int):
    """Measured T_eff (mean ‖θ‖²/(d s²) over draws) and its standard error (batch means)."""
    import jax
    import jax.numpy as jnp

    from ppl_kernels import runner
    from ppl_kernels._host import get_stats

    start, _ = exact_temperature(alpha, gamma, beta, k)
    z0 = {"theta": jnp.sqrt(start * S2) * jax.random.normal(jax.random.PRNGKey(seed + 1), (DIM,))}
    draws = max(total_steps // k, 200)
    mcmc = runner.sample("numpyro", potential_fn=potential, init_params=z0, num_samples=draws, num_warmup=draws // 10,
                         seed=seed, kernel_kwargs=dict(step_size=EPS, num_steps=k, temperature=T, mass=MASS,
                                                       friction=FRICTION, boost=alpha, friction_scale=gamma,
                                                       resample_scale=beta))
    x = get_stats(mcmc)["theta_sq_norm"][0] / (DIM * S2)
    batches = np.array_split(x, 20)
    return float(x.mean()), float(np.std([b.mean() for b in batches], ddof=1) / np.sqrt(len(batches)))


def run(*, settings=SETTINGS, intervals=INTERVALS, total_steps: int = 60000, seed: int = 0):
    """The table of measured against exact effective temperatures."""
    import pandas as pd

    rows = []
    for alpha, gamma, beta in settings:
        for k in intervals:
            end, cycle = exact_temperature(alpha, gamma, beta, k)
            t_eff, se = measure(alpha, gamma, beta, k, total_steps=total_steps, seed=seed)
            rows.append({"α": alpha, "γ": gamma, "β": beta, "β/α": beta / alpha, "k": k, "T_eff measured": t_eff,
                         "se": se, "exact (end of draw)": end, "exact (cycle average)": cycle,
                         "z": (t_eff - end) / se})
    return pd.DataFrame(rows)


def figure(table):
    """T_eff / T against the resampling interval, one line per (α, γ, β)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for (a, g, b), part in table.groupby(["α", "γ", "β"], sort=False):
        line = ax.errorbar(part["k"], part["T_eff measured"] / T, yerr=2 * part["se"] / T, marker="o", ls="none",
                           capsize=3, label=f"α={a:g}, γ={g:g}, β={b:g} (β/αT={b / (a * T):g})")
        ax.plot(part["k"], part["exact (end of draw)"] / T, color=line[0].get_color(), lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("resampling interval k (integrator steps per draw)")
    ax.set_ylabel("T_eff / T")
    ax.set_title("measured (points, ±2 se) and exact (lines)", fontsize="medium")
    ax.legend(fontsize="x-small")
    return fig


def main(argv=None):
    """Run the study, print the table, save ``resampling_bias.png`` and ``.csv``."""
    args = _common.parser(__doc__.splitlines()[0], "resampling_bias", backend=False).parse_args(argv)
    if args.quick:  # two settings, two intervals, short chains: a smoke run, not a measurement
        table = run(settings=SETTINGS[:2], intervals=INTERVALS[:2], total_steps=2000, seed=args.seed)
    else:
        table = run(seed=args.seed)
    _common.publish(table, args.out, "resampling_bias", index=False, float_format="{:.4g}".format)
    print(f"figure: {_common.save(figure(table), args.out, 'resampling_bias.png')}")
    return table


if __name__ == "__main__":
    main()
