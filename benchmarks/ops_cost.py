"""What latency budgets (engine.runtime.fallback) and tracing (engine.tracing) cost a decision.

Each case against a baseline measured in the same run, rounds alternating (trust the ratios; the
machine is shared). Inputs: real card payments from data/card_payments.csv through the bundled
card_payment 1, whose flow declares a 50 ms budget on its model (a preempted step).

- ``budgets_preempted``: ``Decider.decide`` with the flow's budgets (the model runs on the step
  worker pool, the request waits on a future) against the same flow with no budgets.
- ``budgets_boundary``: budgets only on steps checked at their boundary (validate, features, rules,
  explain: two clock reads each, no thread hand-off) against no budgets.
- ``budgets_state``: card_payment 2 (stateful features, in-memory state store) with its shipped
  ``state`` budget (the store's transaction runs on a step worker behind a Gate) against the same
  version with no budgets (the transaction on the request thread).
- ``tracing_off``: ``Decider.decide`` with tracing off (the default) against the same decision
  without the tracing switch (``Decider._decide_call``): the cost of the off switch.
- ``tracing_on``: spans recorded through the SDK's batching processor (to an exporter that drops
  them: the SDK's cost, not the network's) against tracing off.

    python benchmarks/ops_cost.py [--iterations 2000] [--rounds 5] [--cases a,b] [--out r.json]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics_cost import machine, report  # noqa: E402
from engine.datasets import read_card_payments  # noqa: E402
from engine.policy.loader import load_policies  # noqa: E402
from engine.runtime.fallback import Budget, Budgets  # noqa: E402
from engine.runtime.service import Decider  # noqa: E402

FLOW = "card_payment"


Decide = Callable[[dict[str, Any]], Any]


def _round(decide: Decide, inputs: list[dict[str, Any]]) -> float:
    """Mean µs of one ``decide`` over ``inputs``."""
    t = time.perf_counter_ns()
    for row in inputs:
        decide(row)
    return (time.perf_counter_ns() - t) / 1000.0 / len(inputs)


def _decider(budgets: Budgets | None, **kwargs: Any) -> Decider:
    """A Decider over the bundled policies whose card_payment 1 has ``budgets`` (None: as shipped)."""
    decider = Decider(load_policies(ROOT), **kwargs)
    if budgets is not None:
        decider.policies.flows[FLOW].versions["1"].budgets = budgets
    return decider


def _public(decider: Decider) -> Decide:
    """``Decider.decide`` of card_payment 1 (what the servicer calls)."""
    return lambda row: decider.decide(FLOW, row, version="1")


def _stateful(decider: Decider) -> Decide:
    """``Decider.decide`` of card_payment 2; the payment's counters (which version 2 computes) left out."""
    fields = decider.policies.flows[FLOW].versions["2"].validator.fields
    return lambda row: decider.decide(FLOW, {k: v for k, v in row.items() if k in fields}, version="2")


def _no_v2_budgets() -> Decider:
    decider = Decider(load_policies(ROOT))
    decider.policies.flows[FLOW].versions["2"].budgets = Budgets({})
    return decider


def _untraced(decider: Decider) -> Decide:
    """The same decision without the tracing switch (``Decider._decide_call``): what decide was before traces."""
    return lambda row: decider._decide_call(FLOW, row, "1", "", "", None)


def compare(case: Decide, baseline: Decide, inputs: list[dict[str, Any]], rounds: int) -> dict[str, float]:
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


Pair = Callable[[], tuple[Decider, Decide, Decider, Decide]]


def _pair(case: Decider, case_decide: Callable[[Decider], Decide], baseline: Decider,
          baseline_decide: Callable[[Decider], Decide]) -> tuple[Decider, Decide, Decider, Decide]:
    return case, case_decide(case), baseline, baseline_decide(baseline)


def pairs() -> dict[str, Pair]:
    """Every case: (case Decider, its decide, baseline Decider, its decide), built when run."""
    out: dict[str, Pair] = {
        "budgets_preempted": lambda: _pair(_decider(None), _public, _decider(Budgets({})), _public),
        "budgets_boundary": lambda: _pair(_decider(boundary_budgets()), _public, _decider(Budgets({})), _public),
        "budgets_state": lambda: _pair(Decider(load_policies(ROOT)), _stateful, _no_v2_budgets(), _stateful),
        "tracing_off": lambda: _pair(_decider(Budgets({})), _public, _decider(Budgets({})), _untraced),
    }
    try:
        from engine.tracing import Tracing

        Tracing.in_memory()  # raises MissingExtra (an ImportError) without the otel extra
    except ImportError:
        return out
    out["tracing_on"] = lambda: _pair(_decider(Budgets({}), tracing=_discarding()), _public, _decider(Budgets({})), _public)
    return out


def _discarding() -> Any:
    """Tracing whose spans go through the SDK's batching processor to an exporter that drops them."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from engine.tracing import Tracing, _provider

    class Drop(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = _provider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    return Tracing(provider)


def cases(iterations: int, rounds: int, only: list[str] | None = None) -> dict[str, Any]:
    inputs = read_card_payments(ROOT / "data" / "card_payments.csv", iterations)
    out: dict[str, Any] = {}
    for name, make in pairs().items():
        if only and name not in only:
            continue
        case, case_decide, baseline, baseline_decide = make()
        try:
            out[name] = compare(case_decide, baseline_decide, inputs, rounds)
        finally:
            case.close()
            baseline.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000, help="decisions per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--cases", help="comma-separated subset of the cases")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    only = args.cases.split(",") if args.cases else None
    return report({"machine": machine(), **cases(args.iterations, args.rounds, only)}, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
