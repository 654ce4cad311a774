"""What latency budgets (engine.fallback) and tracing (engine.tracing) cost a decision.

Each case against a baseline measured in the same run, rounds alternating (trust the ratios; the
machine is shared). Inputs: real card payments from data/card_payments.csv through the bundled
card_payment 1, whose flow declares a 50 ms budget on its model (a preempted step).

- ``budgets_preempted``: ``Decider.decide`` with the flow's budgets (the model runs on the step
  worker pool, the request waits on a future) against the same flow with no budgets.
- ``budgets_boundary``: budgets only on steps checked at their boundary (validate, features, rules,
  explain: two clock reads each, no thread hand-off) against no budgets.
- ``tracing_off``: tracing configured off (the default) against the same Decider before tracing
  existed would run: the cost of the off switch (``tracing=None``).
- ``tracing_on``: spans recorded (the SDK with an in-memory exporter; no network) against off.

    python benchmarks/ops_cost.py [--iterations 2000] [--rounds 5] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics_cost import machine  # noqa: E402
from engine.datasets import read_card_payments  # noqa: E402
from engine.fallback import Budget, Budgets  # noqa: E402
from engine.loader import load_policies  # noqa: E402
from engine.service import Decider  # noqa: E402

FLOW = "card_payment"


def _round(decider: Decider, inputs: list[dict[str, Any]]) -> float:
    """Mean µs of one decide over ``inputs``."""
    t = time.perf_counter_ns()
    for row in inputs:
        decider.decide(FLOW, row, version="1")
    return (time.perf_counter_ns() - t) / 1000.0 / len(inputs)


def _decider(budgets: Budgets | None, **kwargs: Any) -> Decider:
    """A Decider over the bundled policies whose card_payment 1 has ``budgets`` (None: as shipped)."""
    decider = Decider(load_policies(ROOT), **kwargs)
    if budgets is not None:
        decider.policies.flows[FLOW].versions["1"].budgets = budgets
    return decider


def compare(case: Decider, baseline: Decider, inputs: list[dict[str, Any]], rounds: int) -> dict[str, float]:
    """Median over alternating rounds of µs per decision, for ``case`` and ``baseline``, and the ratio."""
    for d in (case, baseline):
        _round(d, inputs[:300])
    with_case, without = [], []
    for _ in range(rounds):
        with_case.append(_round(case, inputs))
        without.append(_round(baseline, inputs))
    a, b = statistics.median(with_case), statistics.median(without)
    return {"case_us": a, "baseline_us": b, "ratio": a / b}


def boundary_budgets() -> Budgets:
    """Generous budgets on the steps checked at their boundary only (never missed: the cost alone)."""
    return Budgets({s: Budget(s, 1.0, "error") for s in ("validate", "features", "rules", "explain")})


def cases(iterations: int, rounds: int, extra: dict[str, Callable[[], tuple[Decider, Decider]]] | None = None) -> dict[str, Any]:
    inputs = read_card_payments(ROOT / "data" / "card_payments.csv", iterations)
    pairs: dict[str, Callable[[], tuple[Decider, Decider]]] = {
        "budgets_preempted": lambda: (_decider(None), _decider(Budgets({}))),
        "budgets_boundary": lambda: (_decider(boundary_budgets()), _decider(Budgets({}))),
        **(extra or {}),
    }
    out: dict[str, Any] = {}
    for name, make in pairs.items():
        case, baseline = make()
        try:
            out[name] = compare(case, baseline, inputs, rounds)
        finally:
            case.close()
            baseline.close()
    return out


def tracing_pairs() -> dict[str, Callable[[], tuple[Decider, Decider]]]:
    """The tracing cases, when engine.tracing and the otel extra are there."""
    try:
        from engine.tracing import Tracing
    except ImportError:
        return {}
    try:
        on = Tracing.in_memory()
    except ImportError:  # the otel extra is not installed: only the off switch is measured
        on = None
    pairs: dict[str, Callable[[], tuple[Decider, Decider]]] = {
        "tracing_off": lambda: (_decider(Budgets({}), tracing=Tracing.off()), _decider(Budgets({}))),
    }
    if on is not None:
        pairs["tracing_on"] = lambda: (_decider(Budgets({}), tracing=on), _decider(Budgets({}), tracing=Tracing.off()))
    return pairs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000, help="decisions per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    result = {"machine": machine(), **cases(args.iterations, args.rounds, tracing_pairs())}
    result["machine"]["load_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
