"""Percentiles of latency samples and the median of several rounds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["STATS", "median_of_rounds", "percentile", "summarize"]

STATS = ("p50_us", "p99_us", "p999_us", "mean_us")


def percentile(sorted_samples: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` quantile (0 < q <= 1) of already sorted samples."""
    if not sorted_samples:
        raise ValueError("no samples")
    rank = max(1, math.ceil(q * len(sorted_samples)))
    return float(sorted_samples[rank - 1])


def summarize(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50, p99, p99.9 and mean of nanosecond samples, in microseconds, and the sample count."""
    s = sorted(samples_ns)
    return {
        "p50_us": percentile(s, 0.50) / 1000.0,
        "p99_us": percentile(s, 0.99) / 1000.0,
        "p999_us": percentile(s, 0.999) / 1000.0,
        "mean_us": statistics.fmean(s) / 1000.0,
        "n": len(s),
    }


def median_of_rounds(rounds: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each statistic's median over rounds (a round is one ``summarize`` result, maybe with rps).

    The medians are taken statistic by statistic, so p50 and p99 may come from different rounds;
    the per-round p50s are kept for the spread.
    """
    if not rounds:
        raise ValueError("no rounds")
    out: dict[str, Any] = {}
    for key in (*STATS, "rps"):
        values = [float(r[key]) for r in rounds if key in r]
        if values:
            out[key] = statistics.median(values)
    out["n"] = int(sum(int(r["n"]) for r in rounds))
    out["rounds"] = len(rounds)
    out["round_p50_us"] = [round(float(r["p50_us"]), 3) for r in rounds]
    return out
