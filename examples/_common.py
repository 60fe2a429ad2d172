"""Small helpers shared by the example scripts (argument parsing, figure files)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")


def parser(description: str, default_out: str, *, backend: bool = True) -> argparse.ArgumentParser:
    """The options every example has: ``--quick``, ``--out``, ``--seed`` (and ``--backend``)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a few seconds of sampling (for tests), not the full study")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures" / default_out,
                   help="folder for the figures (default: examples/figures/<example>)")
    p.add_argument("--seed", type=int, default=0)
    if backend:
        p.add_argument("--backend", choices=("numpyro", "pyro"), default="numpyro")
    return p


def save(fig, out: Path, name: str) -> Path:
    """Write ``fig`` as a small PNG (docs keep these under 200 KB) and close it."""
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return path


def publish(table, out: Path, stem: str, **to_string) -> str:
    """Print ``table`` and write it as ``<stem>.csv`` and, as printed, ``<stem>.txt``."""
    text = table.to_string(**to_string)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / f"{stem}.csv", index=to_string.get("index", True))
    (out / f"{stem}.txt").write_text(text + "\n")
    return text
