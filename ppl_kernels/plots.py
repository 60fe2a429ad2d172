"""Figures of SGHMC runs and temperature sweeps (matplotlib; every function returns a Figure).

- :func:`plot_norm_trajectories`: ‖θ‖², θᵀr and ‖r‖² per draw (or per
  integrator step), one line per run, coloured by temperature: the research
  notes' figures.
- :func:`plot_cold_posterior`: a metric of :func:`ppl_kernels.compare_temperatures`
  against T on a log axis, one line per kernel setting.
- :func:`plot_kinetic_temperature`: the kinetic temperature against its
  discretisation-corrected mean and χ² band, one panel per run.
- :func:`plot_moment_check`: the measured rates of ‖θ‖², θᵀr and ‖r‖² against
  the continuous and discrete moment relations.

The figures are :class:`matplotlib.figure.Figure` objects not registered with
pyplot, so making many of them (a sweep, a test suite) holds no global state.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from .compare import SETTING_COLUMNS
from .diagnostics import _is_steps

__all__ = ["plot_norm_trajectories", "plot_cold_posterior", "plot_kinetic_temperature", "plot_moment_check"]

#: Sample statistics of a run, and the per-step record's names for them.
_QUANTITIES = {
    "theta_sq_norm": ("theta_sq", "‖θ‖²"),
    "theta_dot_r": ("theta_dot_r", "θᵀr"),
    "r_sq_norm": ("r_sq", "‖r‖²"),
}


def _figure(nrows, ncols, *, width=4.2, height=3.0, sharex=False):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=sharex)
    return fig, axes.ravel()


def _as_runs(runs) -> dict[str, Any]:
    if isinstance(runs, Mapping) and not hasattr(runs, "dims"):
        if not runs:
            raise ValueError("runs must not be empty")
        return dict(runs)
    return {"run": runs}


def _temperature(data) -> float:
    attrs = data.attrs if _is_steps(data) else data.posterior.attrs
    return float(attrs.get("temperature", np.nan))


def _colours(runs):
    """One colour per run, ordered by temperature (cold = dark)."""
    from matplotlib import colormaps

    temps = np.array([_temperature(d) for d in runs.values()])
    order = np.argsort(np.argsort(np.nan_to_num(temps, nan=np.inf), kind="stable"))
    cmap = colormaps["viridis"]
    n = max(len(runs) - 1, 1)
    return {label: cmap(0.9 * order[i] / n) for i, label in enumerate(runs)}


def plot_norm_trajectories(runs, *, quantities=tuple(_QUANTITIES), chain: int = 0, logy: bool = False):
    """‖θ‖², θᵀr and ‖r‖² along the chain, overlaid per run.

    Parameters
    ----------
    runs : InferenceData, step record, or dict of them
        ``{label: data}``: runs from :func:`ppl_kernels.to_inference_data`
        (one point per draw) or records from
        :func:`ppl_kernels.diagnostics.record_steps` (one point per
        integrator step).
    quantities : sequence of str
        Among ``"theta_sq_norm"``, ``"theta_dot_r"``, ``"r_sq_norm"``.
    chain : int
        The chain to draw (runs only).
    logy : bool
        Log scale for ‖θ‖² and ‖r‖².

    Returns
    -------
    matplotlib.figure.Figure
    """
    unknown = [q for q in quantities if q not in _QUANTITIES]
    if unknown or not quantities:
        raise ValueError(f"quantities must be among {list(_QUANTITIES)}, got {quantities!r}")
    runs = _as_runs(runs)
    colours = _colours(runs)
    fig, axes = _figure(len(quantities), 1, width=7.0, height=2.4, sharex=True)
    for label, data in runs.items():
        for ax, q in zip(axes, quantities):
            name, _ = _QUANTITIES[q]
            if _is_steps(data):
                y, x = data[name].values.sum(-1), data["step"].values
            else:
                if not 0 <= chain < data.sample_stats.sizes["chain"]:
                    raise ValueError(f"chain must be in [0, {data.sample_stats.sizes['chain']}), got {chain!r}")
                y = data.sample_stats[q].values[chain]
                x = np.arange(len(y))
            ax.plot(x, y, lw=0.8, color=colours[label], label=label)
    for ax, q in zip(axes, quantities):
        ax.set_ylabel(_QUANTITIES[q][1])
        if logy and q != "theta_dot_r":
            ax.set_yscale("log")
    axes[-1].set_xlabel("integrator step" if all(_is_steps(d) for d in runs.values()) else "draw")
    axes[0].legend(fontsize="small", ncols=min(len(runs), 4))
    return fig


def _setting_label(row, columns) -> str:
    return ", ".join(f"{c}={row[c]}" for c in columns) or "all runs"


def plot_cold_posterior(table, metric: str = "test_accuracy", *, x: str = "temperature", group_by=None):
    """A comparison metric against the temperature (log axis): the cold-posterior curve.

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`ppl_kernels.compare_temperatures`.
    metric : str
        A column, e.g. ``"test_accuracy"``, ``"test_nll"``, ``"elpd_loo"``
        (drawn with ± ``se``), ``"theta_sq_mean"``.
    x : str
        The column on the (log) horizontal axis; rows with ``x <= 0`` (T = 0)
        cannot be placed on it and are left out.
    group_by : list of str, optional
        Columns whose values make separate lines; default: the kernel settings
        that differ between rows.

    Returns
    -------
    matplotlib.figure.Figure
    """
    for name, col in (("metric", metric), ("x", x)):
        if col not in table.columns:
            raise ValueError(f"{name} must be a column of the table {list(table.columns)}, got {col!r}")
    if group_by is None:
        group_by = [c for c in SETTING_COLUMNS if c != x and c in table and table[c].astype(str).nunique() > 1]
    elif any(c not in table.columns for c in group_by):
        raise ValueError(f"group_by must name columns of the table, got {group_by!r}")
    data = table[table[x].astype(float) > 0]
    fig, (ax,) = _figure(1, 1, width=5.5, height=3.8)
    groups = data.groupby([data[c].astype(str) for c in group_by], sort=False) if group_by else [(None, data)]
    for _, part in groups:
        part = part.sort_values(x)
        xs, ys = part[x].astype(float).values, part[metric].astype(float).values
        err = part["se"].astype(float).values if metric == "elpd_loo" and "se" in part else None
        ax.errorbar(xs, ys, yerr=err, marker="o", capsize=3, label=_setting_label(part.iloc[0], group_by))
    ax.set_xscale("log")
    ax.set_xlabel("temperature T" if x == "temperature" else x)
    ax.set_ylabel(metric)
    if group_by:
        ax.legend(fontsize="small")
    return fig


def plot_kinetic_temperature(runs, *, level: float = 0.99, burn_in: int = 0):
    """Kinetic temperature per draw (or step) with its expected value and χ² band, a panel per run.

    Parameters
    ----------
    runs : InferenceData, step record, or dict of them
    level : float
        Coverage of the band.
    burn_in : int
        Leading draws (or steps) to leave out.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .diagnostics import kinetic_temperature_band, kinetic_temperature_series

    runs = _as_runs(runs)
    ncols = min(len(runs), 3)
    fig, axes = _figure(-(-len(runs) // ncols), ncols)
    for ax, (label, data) in zip(axes, runs.items()):
        values, expected, dim, t = kinetic_temperature_series(data, burn_in=burn_in)
        values, expected = np.atleast_2d(values), np.broadcast_to(np.atleast_2d(expected), np.atleast_2d(values).shape)
        lo, hi = kinetic_temperature_band(expected[0], dim, level=level)
        x = burn_in + np.arange(values.shape[1])
        ax.fill_between(x, lo, hi, color="0.85", label=f"{level:.0%} band")
        for c, v in enumerate(values):
            ax.plot(x, v, lw=0.7, label="T_K" if c == 0 else None)
        ax.plot(x, expected[0], color="k", lw=1.0, label="T/(1 − a/2)")
        ax.axhline(t, color="k", lw=0.8, ls=":", label="T")
        ax.set_title(f"{label} (d = {dim})", fontsize="medium")
        ax.set_xlabel("step" if _is_steps(data) else "draw")
    for ax in axes[len(runs):]:
        ax.set_visible(False)
    axes[0].set_ylabel("kinetic temperature")
    axes[0].legend(fontsize="small")
    return fig


def plot_moment_check(steps, *, smooth: int = 50, site: str | None = None, burn_in: int = 0):
    """Measured rates of ‖θ‖², θᵀr, ‖r‖² against the continuous and discrete relations.

    Parameters
    ----------
    steps : xarray.Dataset
        A record from :func:`ppl_kernels.diagnostics.record_steps`.
    smooth : int
        Moving-average window in steps (the rates are noisy per step).
    site : str, optional
        One latent site instead of the whole state.
    burn_in : int
        Leading steps to leave out.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from .diagnostics import RELATIONS

    if not _is_steps(steps):
        raise ValueError("steps must be a record from record_steps")
    if isinstance(smooth, bool) or not isinstance(smooth, (int, np.integer)) or smooth < 1:
        raise ValueError(f"smooth must be a positive integer, got {smooth!r}")
    part = steps.isel(step=slice(burn_in, None))
    if site is not None:
        if site not in part.site.values:
            raise ValueError(f"site must be one of {list(part.site.values)}, got {site!r}")
        part = part.sel(site=[site])
    # Steps that begin with a momentum resampling obey no relation: blank them.
    skip = part["resampled"].values | part["diverging"].values
    kernel = np.ones(smooth) / smooth
    fig, axes = _figure(len(RELATIONS), 1, width=7.0, height=2.4, sharex=True)
    labels = {"theta_sq": "d‖θ‖²/dt", "theta_dot_r": "d(θᵀr)/dt", "r_sq": "d‖r‖²/dt"}
    x = part["step"].values
    for ax, rel in zip(axes, RELATIONS):
        for kind, style in (("measured", dict(color="k", lw=1.2)), ("discrete", dict(color="C1", ls="--")),
                            ("continuous", dict(color="C0", ls=":"))):
            y = np.where(skip, 0.0, part[f"{kind}_{rel}"].values.sum(-1))
            n = np.convolve(~skip, kernel, mode="same")
            with np.errstate(invalid="ignore", divide="ignore"):
                ax.plot(x, np.convolve(y, kernel, mode="same") / n, label=kind, **style)
        ax.set_ylabel(labels[rel])
    axes[-1].set_xlabel(f"integrator step (moving average over {smooth})")
    axes[0].legend(fontsize="small", ncols=3)
    return fig
