"""What logging the custom-list answers of each decision costs (``Decision.lists``, docs/lists.md#replays).

``Decider.decide`` of real card payments on card_payment version 1 (its ``fraud.lists`` rules read
``blocked_cards`` and ``blocked_devices`` on every payment with a card number or device; no state
store, so the lists are most of what differs) with each look-up answered through a ``ListTape``, as
served, against the same Decider with the tape switched off (``ListView.recording`` replaced by a
null context: look-ups read the snapshot directly, nothing is recorded). Rounds alternate; trust
the ratio (the machine is shared), and the load is recorded with the figures.

``lookups`` isolates the tape: the two look-ups of one payment (a card, a device) inside
``ListView.recording`` and the answers read, against the same two look-ups without it (best of 5
repeats of 20,000, alternating), so its cost shows even when the machine's noise hides it in a
whole decision.

    python benchmarks/list_tape_cost.py [--iterations 2000] [--rounds 5] [--out r.json]
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.metrics_cost import machine, report  # noqa: E402  (one way to stamp and write a result)
from engine.custom_lists.snapshot import ListView  # noqa: E402
from engine.datasets import read_card_payments  # noqa: E402
from engine.policy.loader import load_policies  # noqa: E402
from engine.runtime.service import Decider  # noqa: E402

PAN = "4111111111111111"  # a standard test card number: every payment reads the card list too


def _round(decider: Decider, rows: list[dict[str, Any]]) -> float:
    """Mean µs of one decide over ``rows``."""
    t = time.perf_counter_ns()
    for r in rows:
        decider.decide("card_payment", r, version="1")
    return (time.perf_counter_ns() - t) / 1000.0 / len(rows)


def lookups(view: ListView) -> dict[str, float]:
    """µs of a card and a device look-up without and with a tape (best of 5 repeats, alternating)."""
    card, device = view.lookup("blocked_cards"), view.lookup("blocked_devices")

    def bare() -> None:
        card(PAN)
        device("D-1")

    def taped() -> None:
        with view.recording() as tape:
            card(PAN)
            device("D-1")
        tape.read()

    best = {"untaped_us": float("inf"), "taped_us": float("inf")}
    for _ in range(5):
        for name, fn in (("untaped_us", bare), ("taped_us", taped)):
            t = time.perf_counter_ns()
            for _ in range(20_000):
                fn()
            best[name] = min(best[name], (time.perf_counter_ns() - t) / 1000.0 / 20_000)
    return {**best, "tape_adds_us": best["taped_us"] - best["untaped_us"]}


def cases(iterations: int, rounds: int) -> dict[str, Any]:
    rows = [{**r, "card_number": PAN} for r in read_card_payments(ROOT / "data" / "card_payments.csv", iterations)]
    decider = Decider(load_policies(ROOT))
    recording = ListView.recording
    off = lambda self, logged=None: contextlib.nullcontext()  # noqa: E731 - the baseline: no tape

    def measure(taped: bool) -> float:
        ListView.recording = recording if taped else off  # type: ignore[method-assign,assignment]
        try:
            return _round(decider, rows)
        finally:
            ListView.recording = recording  # type: ignore[method-assign]

    measure(True), measure(False)  # warm-up
    taped, bare = [], []
    for _ in range(rounds):
        taped.append(measure(True))
        bare.append(measure(False))
    answers = decider.decide("card_payment", rows[0], version="1").lists
    view = decider.policies.custom_lists
    isolated = lookups(view) if view is not None else {}
    decider.close()
    with_us, without_us = statistics.median(taped), statistics.median(bare)
    pairs = statistics.median(t / b for t, b in zip(taped, bare, strict=True))  # each round against its neighbour
    return {"decide": {"taped_us": with_us, "untaped_us": without_us, "ratio": with_us / without_us, "median_pair_ratio": pairs,
                       "rounds_taped": taped, "rounds_untaped": bare, "lists_logged": {k: list(v) for k, v in answers.items()}},
            "lookups": isolated}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000, help="decisions per round")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    return report({"machine": machine(), **cases(args.iterations, args.rounds)}, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
