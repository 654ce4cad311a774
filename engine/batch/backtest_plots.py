"""The PNG plots of a backtest (``verdict backtest --plots DIR``): action rates per version, and
each comparison's transition matrix (rows: the baseline's action, columns: the other version's).

matplotlib is imported on first use: it is in the ``[plots]`` (and ``[train]``) extra, not the lean serving install.
"""

from __future__ import annotations

from pathlib import Path

from engine.audit.replay_report import ACTIONS
from engine.batch.backtest import Backtest

__all__ = ["plot"]


def plot(result: Backtest, directory: Path) -> list[Path]:
    """PNG plots into ``directory``: action rates per version, and each comparison's transition matrix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    names = [a.name for a in ACTIONS]
    fig, ax = plt.subplots(figsize=(6, 4))
    width = 0.8 / len(result.versions)
    for i, (v, r) in enumerate(result.versions.items()):
        rates = [100 * r.actions[a] / r.decided if r.decided else 0 for a in names]
        ax.bar(np.arange(len(names)) + i * width, rates, width, label=f"version {v}")
    ax.set_xticks(np.arange(len(names)) + width * (len(result.versions) - 1) / 2, names)
    ax.set_ylabel("% of decided rows")
    ax.set_title(f"{result.flow}: actions by version ({result.rows:,} rows)")
    ax.legend()
    path = directory / "actions.png"
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    written.append(path)
    for version, report in result.comparisons.items():
        matrix = np.array([[report.transitions[(b, a)] for a in names] for b in names])
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.imshow(matrix, cmap="Blues")
        for (i, j), n in np.ndenumerate(matrix):
            ax.text(j, i, f"{n:,}", ha="center", va="center")
        ax.set_xticks(range(3), names)
        ax.set_yticks(range(3), names)
        ax.set_xlabel(f"version {version}")
        ax.set_ylabel(f"version {result.baseline}")
        ax.set_title("transitions")
        path = directory / f"transitions_{result.baseline}_to_{version}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
