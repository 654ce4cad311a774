"""Binary-classification metrics: AUC, KS, Gini, Brier score, log-loss and a calibration table."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["auc", "binary_metrics", "brier", "calibration_table", "ks", "log_loss", "roc_curve"]


def _check(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y, dtype=np.float64).ravel()
    p = np.asarray(p, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"labels {y.shape} and scores {p.shape} differ in shape")
    return y, p


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties count one half)."""
    y, p = _check(y, p)
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(p, return_inverse=True, return_counts=True)
    upper = np.cumsum(counts)  # 1-based rank of the last member of each tie group
    ranks = (upper - (counts - 1) / 2.0)[inverse]  # average rank within the group
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def roc_curve(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """False- and true-positive rates at every distinct threshold (from (0,0) to (1,1))."""
    y, p = _check(y, p)
    order = np.argsort(-p, kind="mergesort")
    ys, ps = y[order], p[order]
    distinct = np.r_[np.where(np.diff(ps))[0], len(ps) - 1]
    tp = np.cumsum(ys)[distinct]
    fp = (distinct + 1) - tp
    n_pos, n_neg = max(ys.sum(), 1.0), max(len(ys) - ys.sum(), 1.0)
    return np.r_[0.0, fp / n_neg], np.r_[0.0, tp / n_pos]


def ks(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov-Smirnov statistic: the largest gap between the classes' score distributions."""
    fpr, tpr = roc_curve(y, p)
    return float(np.max(tpr - fpr))


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Mean squared error of the probabilities."""
    y, p = _check(y, p)
    return float(np.mean((p - y) ** 2))


def log_loss(y: np.ndarray, p: np.ndarray, eps: float = 1e-15) -> float:
    """Mean negative log-likelihood of the labels."""
    y, p = _check(y, p)
    q = np.clip(p, eps, 1 - eps)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, Any]]:
    """Rows sorted by score cut into ``bins`` equal-count bands: mean predicted vs observed rate."""
    y, p = _check(y, p)
    order = np.argsort(p, kind="mergesort")
    table = []
    for band, idx in enumerate(np.array_split(order, bins), start=1):
        if len(idx) == 0:
            continue
        table.append(
            {
                "band": band,
                "rows": len(idx),
                "score_min": float(p[idx].min()),
                "score_max": float(p[idx].max()),
                "mean_predicted": float(p[idx].mean()),
                "observed_rate": float(y[idx].mean()),
                "positives": int(y[idx].sum()),
            }
        )
    return table


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """AUC, KS, Gini, Brier and log-loss of probabilities ``p`` for 0/1 labels ``y``."""
    a = auc(y, p)
    return {
        "auc": a,
        "ks": ks(y, p),
        "gini": 2 * a - 1,
        "brier": brier(y, p),
        "logloss": log_loss(y, p),
    }
