"""Shared helpers of the decision-log unit tests: synthetic decisions and a small log on disk."""

from __future__ import annotations

import csv
import threading
from pathlib import Path
from typing import Any

from engine.audit.record import decision_payload
from engine.audit.segments import FileStore
from engine.audit.writer import GroupCommitWriter
from engine.datasets import read_card_payments, read_credit_applications
from engine.types import Action, Decision, FiredRule, Outcome, Reason


def make_decision(i: int, *, flow: str = "card_payment", route: str = "live", request_id: str | None = None) -> Decision:
    """A decision as the core makes them, varied by ``i``."""
    action = Action((i % 3) + 1)
    fired = (FiredRule(f"R{i % 5}", "fraud.rules", action, "VELOCITY", 50, i % 2 == 0),) if action > 1 else ()
    reasons = (
        (Reason("VELOCITY", "Too many", "rule", f"R{i % 5}"), Reason("NEW_DEVICE", "New device", "model", f"R{i % 5}", "new_device", 0.125 * i))
        if action > 1
        else ()
    )
    return Decision(
        decision_id=f"d{i:06d}",
        request_id=f"req-{i}" if request_id is None else request_id,
        flow=flow,
        version="1",
        revision="ab" * 32,
        outcome=Outcome(action, reasons, fired, {"fraud_score": i / 1000.0}),
        models={"card_fraud": "1@0123456789ab"},
        eval_us=12.5 + i,
        route=route,
    )


def payload_of(i: int, **kw: object) -> bytes:
    """The record payload of ``make_decision(i)``."""
    d = make_decision(i, **kw)  # type: ignore[arg-type]
    return decision_payload(d, {"amount": float(i), "card_number": "411111******1111"}, ["card_number"], ts=1_700_000_000.0 + i)


def write_log(directory: Path, n: int, *, max_segment_bytes: int = 1 << 20) -> None:
    """A closed log of ``n`` decision records under ``directory``."""
    writer = GroupCommitWriter(FileStore(directory, max_segment_bytes=max_segment_bytes))
    try:
        for i in range(n):
            writer.append(payload_of(i))
    finally:
        writer.close()


ROOT = Path(__file__).resolve().parents[2]
CREDIT_CSV = ROOT / "data" / "credit_data.csv"
CARD_CSV = ROOT / "data" / "card_payments.csv"
PAN = "4111111111111111"  # a Luhn-valid test card number, planted to prove it never reaches disk


def credit_applications(limit: int) -> list[dict[str, Any]]:
    """Rows of data/credit_data.csv as credit_application inputs (snake_case, gaps omitted, no label)."""
    return read_credit_applications(CREDIT_CSV, limit, integers=False)


def credit_statuses(limit: int) -> list[str]:
    """The good/bad status of the first ``limit`` rows of data/credit_data.csv."""
    with CREDIT_CSV.open(newline="") as f:
        return [row["Status"].strip().lower() for _, row in zip(range(limit), csv.DictReader(f))]


def card_payments(limit: int) -> list[dict[str, Any]]:
    """Rows of data/card_payments.csv as card_payment version 1 inputs (label dropped; with the counters)."""
    return read_card_payments(CARD_CSV, limit)


V1_COUNTERS = ("txn_count_1h", "txn_count_24h", "amount_avg_30d", "new_device")  # versions 2 and 3 compute them


def live_card_payments(limit: int) -> list[dict[str, Any]]:
    """Rows of data/card_payments.csv as inputs of card_payment versions 2 and 3 (live): without the counters."""
    return [{k: v for k, v in row.items() if k not in V1_COUNTERS} for row in card_payments(limit)]




def decide_concurrently(decider: Any, work: list[tuple[str, dict[str, Any], str]], threads: int = 8) -> None:
    """Decide every (flow, input, request id) of ``work``, split over ``threads`` threads, and wait."""

    def run(items: list[tuple[str, dict[str, Any], str]]) -> None:
        for flow, data, rid in items:
            decider.decide(flow, data, request_id=rid)

    pool = [threading.Thread(target=run, args=(work[k::threads],)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()


def logging_decider(directory: Path, policies: Any, **kw: Any) -> tuple[Any, Any]:
    """A Decider over ``policies`` logging to ``directory`` (unsynced FileStore, test key) and its writer."""
    from engine.audit.segments import FileStore
    from engine.audit.sink import AuditSink
    from engine.audit.writer import GroupCommitWriter
    from engine.runtime.idempotency import Fingerprinter
    from engine.runtime.privacy import HashKey
    from engine.runtime.service import Decider

    key = HashKey(b"test-key")
    writer = GroupCommitWriter(FileStore(directory, fsync=False))
    decider = Decider(policies, sink=AuditSink(writer, key, Fingerprinter(key)), **kw)
    return decider, writer
