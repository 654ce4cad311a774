"""Timing a call in a loop: warm-up, then rounds of individually timed calls."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from typing import Any

from benchmarks.suite.stats import median_of_rounds, summarize

__all__ = ["time_call", "time_rounds"]


def time_call(fn: Callable[[Any], Any], inputs: Sequence[Any], iterations: int, start: int = 0) -> list[int]:
    """Nanoseconds of each of ``iterations`` calls of ``fn``, cycling through ``inputs``."""
    pc = time.perf_counter_ns
    n = len(inputs)
    out = [0] * iterations
    for i in range(iterations):
        arg = inputs[(start + i) % n]
        t0 = pc()
        fn(arg)
        out[i] = pc() - t0
    return out


def time_rounds(fn: Callable[[Any], Any], inputs: Sequence[Any], *, warmup: int, iterations: int, rounds: int) -> dict[str, Any]:
    """Warm up, then ``rounds`` rounds of ``iterations`` timed calls; the median of the rounds.

    The garbage collector stays on (a server has it on) but starts each round empty.
    """
    time_call(fn, inputs, warmup)
    per_round = []
    for r in range(rounds):
        gc.collect()
        per_round.append(summarize(time_call(fn, inputs, iterations, start=r * iterations)))
    return median_of_rounds(per_round)
