"""The population stability index over fixed bins: pure numpy, no I/O.

PSI = Σ_i (live_i − train_i) · ln(live_i / train_i), where train_i and live_i are the shares of
the training and live populations in bin i (Siddiqi, *Credit Risk Scorecards*, 2006, ch. 8;
Yurdakul, "Statistical properties of the population stability index", 2018). The common
credit-risk reading: below 0.1 stable, 0.1–0.25 watch, 0.25 and above act (``WATCH``, ``ACT``).

The bins are fixed once, at the training deciles stored in the model's baseline
(``engine.monitor.baseline``), never recomputed from the live data: equal-width or re-quantiled
bins make month-to-month values incomparable. A numeric value ``v`` falls in bin ``i`` when
``edges[i-1] < v <= edges[i]`` (bin 0 is ``v <= edges[0]``, the last ``v > edges[-1]``); a
categorical value's bin is its category. Missing values are not binned: their share is reported
apart. An empty bin would make the logarithm infinite, so every share is floored at
``EPSILON`` = 1e-4 (0.01 %) before the sum; with 10 bins that caps one bin's term near 0.09.
Always report the sample size with a PSI: on a few dozen decisions it is mostly noise.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["ACT", "EPSILON", "WATCH", "bin_counts", "decile_edges", "grade", "psi", "shares"]

WATCH = 0.1  # PSI at or above: watch the input (credit-risk convention, Siddiqi 2006)
ACT = 0.25  # PSI at or above: act (investigate, recalibrate or retrain)
EPSILON = 1e-4  # floor of a bin's share, so that an empty bin gives a finite term


def decile_edges(values: np.ndarray) -> np.ndarray:
    """The distinct training deciles (10 %, ..., 90 %) of the non-missing ``values``: the bin edges.

    Ties (a value held by more than a tenth of the rows) merge bins, so there may be fewer than
    nine edges; an empty or constant column gives one bin or none. Shape (k,), k <= 9.
    """
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return np.empty(0)
    return np.unique(np.quantile(v, np.linspace(0.1, 0.9, 9)))


def bin_counts(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """How many non-missing ``values`` fall in each of the ``len(edges) + 1`` bins (see module doc)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[~np.isnan(v)]
    index = np.searchsorted(np.asarray(edges, dtype=np.float64), v, side="left")
    return np.bincount(index, minlength=len(edges) + 1)


def shares(counts: np.ndarray) -> np.ndarray:
    """Counts as shares of their total (all zeros when the total is 0)."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    return c / total if total > 0 else np.zeros_like(c)


def psi(train_shares: Sequence[float] | np.ndarray, live_counts: Sequence[float] | np.ndarray, epsilon: float = EPSILON) -> float:
    """PSI of ``live_counts`` against ``train_shares`` over the same bins; NaN when no live value.

    Raises ValueError when the two have different lengths.
    """
    train = np.asarray(train_shares, dtype=np.float64)
    live_c = np.asarray(live_counts, dtype=np.float64)
    if train.shape != live_c.shape:
        raise ValueError(f"{train.size} training bins but {live_c.size} live bins")
    if live_c.sum() <= 0:
        return float("nan")
    t = np.maximum(train, epsilon)
    lv = np.maximum(live_c / live_c.sum(), epsilon)
    return float(np.sum((lv - t) * np.log(lv / t)))


def grade(value: float, watch: float = WATCH, act: float = ACT) -> str:
    """"stable", "watch" or "act" for a PSI ``value`` ("n/a" when NaN)."""
    if value != value:
        return "n/a"
    return "act" if value >= act else "watch" if value >= watch else "stable"
