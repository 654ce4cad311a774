"""The cost of handing a preempted step (a model score under a budget) to a step worker and back.

A flow with a ``score`` budget (docs/fallbacks.md; card_payment version 1) runs each model score
on a step worker so that the request can stop waiting at the budget. That hand-off is per
request. This compares, in one process with the rounds alternating, ``engine.runtime.fallback``'s
``WorkerPool`` with the pool it replaced (``concurrent.futures.ThreadPoolExecutor`` behind a
``BoundedSemaphore``, kept below as the baseline), each through ``StepGuard.run`` as a decision
calls it, on a step that does nothing (the hand-off alone) and on the card model's real score of
one row. It reports the median over rounds of wall time and CPU time per call, in microseconds,
and the load average.

    python benchmarks/step_handoff.py [--calls 20000] [--rounds 5]

Results: benchmarks/README.md, "The gRPC path".
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from engine.runtime.fallback import Budget, Budgets, StepGuard  # noqa: E402
from engine.runtime.step_pool import WorkerPool  # noqa: E402


class ExecutorPool:
    """The baseline: the step pool before this change (ThreadPoolExecutor behind a BoundedSemaphore)."""

    def __init__(self, workers: int) -> None:
        self._free = threading.BoundedSemaphore(workers)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="baseline-step")

    def try_submit(self, fn: Callable[..., Any], *args: Any, wait: float = 0.0) -> Future[Any] | None:
        if not (self._free.acquire(timeout=wait) if wait > 0 else self._free.acquire(blocking=False)):
            return None
        future = self._executor.submit(fn, *args)
        future.add_done_callback(lambda _f: self._free.release())
        return future

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def _card_score() -> Callable[[], Any]:
    """The card model's score of one real row, as the flow's score step calls it."""
    from benchmarks.suite.inputs import card_rows
    from engine.runtime.service import load_decider

    decider = load_decider(PROJECT)
    compiled = decider.policies.flows["card_payment"].versions["1"]
    bound = compiled.models[0]
    row = compiled.validator(card_rows(PROJECT, 1)[0])
    features = bound.model.encode(row)
    return lambda: bound.model.score(features)


def _time(guard: StepGuard, step: Callable[[], Any], calls: int) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        guard.run("score.m", step)
    return (time.perf_counter() - wall) / calls * 1e6, (time.process_time() - cpu) / calls * 1e6


def main() -> int:
    """Run the comparison and print one line per pool and step."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    # A long budget: the hand-off is measured, not the miss (on a loaded machine a 50 ms stall happens)
    budgets = Budgets({"score": Budget("score", 5.0, "rules_only", preempt=True)})
    pools: dict[str, Any] = {"ThreadPoolExecutor (before)": ExecutorPool(16), "WorkerPool": WorkerPool(16)}
    steps: dict[str, Callable[[], Any]] = {"no-op step": lambda: None}
    try:
        steps["card model score"] = _card_score()
    except Exception as exc:  # noqa: BLE001 - the hand-off alone is still worth reporting
        print(f"(card model score skipped: {type(exc).__name__}: {exc})")
    load = os.getloadavg()[0]
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for _ in range(args.rounds):
        for step_name, step in steps.items():
            for pool_name, pool in pools.items():
                guard = StepGuard(budgets, pool)
                _time(guard, step, max(1, args.calls // 10))  # warm-up
                results.setdefault((step_name, pool_name), []).append(_time(guard, step, args.calls))
    print(f"load average {load:.1f} at start, {os.getloadavg()[0]:.1f} at end; {args.rounds} rounds of {args.calls} calls")
    for (step_name, pool_name), rounds in results.items():
        wall = statistics.median(r[0] for r in rounds)
        cpu = statistics.median(r[1] for r in rounds)
        print(f"{step_name:<18} {pool_name:<28} wall {wall:7.1f} µs/call  CPU {cpu:6.1f} µs/call")
    for pool in pools.values():
        pool.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
