"""Stateful features in batch and backtest: rows decided in event-time order, as of just before each, as online."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from engine.batch.backtest import backtest
from engine.batch.run import decide_file
from engine.batch.stateful import StatefulBatchError
from engine.cli import main
from engine.runtime.service import load_decider
from engine.state.store import MemoryStore

ROOT = Path(__file__).resolve().parents[2]

# docs/behaviour.md's worked example: a new customer pays six times at the same grocery within an hour.
PAYMENT = {"amount": 42.0, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE",
           "card_country": "DE", "card_present": True, "entry_mode": "chip", "hour": 14,
           "customer_id": "C-example", "device_id": "D-example", "card_number": "4111111111111111",
           "account_age_days": 400}
START = 1_790_000_000.0
COLUMNS = [*PAYMENT, "event_time"]


def _csv(path: Path, rows: list[dict]) -> Path:
    lines = [",".join(COLUMNS)]
    for row in rows:
        lines.append(",".join("" if row.get(c) is None else str(row[c]).lower() if isinstance(row[c], bool) else str(row[c])
                              for c in COLUMNS))
    path.write_text("\n".join(lines) + "\n")
    return path


def _payments() -> list[dict]:
    """Six payments ten minutes apart, written in shuffled order (the file is not in event-time order)."""
    rows = [dict(PAYMENT, event_time=START + 600 * k) for k in range(6)]
    return [rows[k] for k in (3, 0, 5, 1, 4, 2)]


def _online(rows: list[dict]) -> list:
    """The same payments sent one by one, in event-time order, to the decision service with its own store."""
    decider = load_decider(ROOT, state=MemoryStore(b"salt"))
    return [decider.decide("card_payment", r) for r in sorted(rows, key=lambda r: r["event_time"])]


def test_sixth_payment_declined_for_velocity_as_online(tmp_path):
    """From a shuffled CSV, the 6th payment in event time is declined for VELOCITY and every row equals the online answer."""
    rows = _payments()
    src = _csv(tmp_path / "payments.csv", rows)
    decider = load_decider(ROOT)
    live = decider.live_version("card_payment")  # a stateful version (2, then 3 once live)
    assert decider.policies.flows["card_payment"].versions[live].state is not None
    summary = decide_file(decider, "card_payment", src, tmp_path / "out.parquet")
    assert summary.failed == 0 and summary.versions == {live: 6}
    out = pq.read_table(tmp_path / "out.parquet").to_pylist()
    by_time = sorted(zip(rows, out, strict=True), key=lambda p: p[0]["event_time"])
    online = _online(rows)
    assert [rec["action"] for _, rec in by_time] == ["APPROVE"] * 5 + ["DECLINE"]
    assert "VELOCITY" in by_time[-1][1]["reason_codes"].split(";")
    for (_, rec), decision in zip(by_time, online, strict=True):
        o = decision.outcome
        assert rec["action"] == o.action.name
        assert rec["reason_codes"] == ";".join(r.code for r in o.reasons)
        assert json.loads(rec["reasons"]) == [
            {"code": r.code, "source": r.source, "rule_id": r.rule_id, "feature": r.feature, "contribution": r.contribution}
            for r in o.reasons]
        assert rec["fired_rules"] == ";".join(f.id for f in o.fired)
        assert rec["score_fraud_score"] == o.scores["fraud_score"]


def test_a_row_never_reads_the_future(tmp_path):
    """A payment an hour before the burst reads no velocity from the six that come after it in event time."""
    rows = [*_payments(), dict(PAYMENT, event_time=START - 3600)]  # last in the file, first in time
    src = _csv(tmp_path / "payments.csv", rows)
    decide_file(load_decider(ROOT), "card_payment", src, tmp_path / "out.csv")
    table = pcsv.read_csv(tmp_path / "out.csv").to_pylist()
    assert table[-1]["action"] == "APPROVE" and table[-1]["row"] == 7
    assert sum(r["action"] == "DECLINE" for r in table) == 1


@pytest.mark.parametrize(("cell", "shown"), [("", "row 2: missing"), ("yesterday", "row 2: 'yesterday'")])
def test_missing_or_unreadable_event_time_refuses_the_run_naming_the_row(tmp_path, cell, shown, capsys):
    """A row without a readable event time stops the run with exit 2, the row and the column named."""
    src = _csv(tmp_path / "payments.csv", _payments())
    lines = src.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + "," + cell
    src.write_text("\n".join(lines) + "\n")
    with pytest.raises(StatefulBatchError) as err:
        decide_file(load_decider(ROOT), "card_payment", src, tmp_path / "out.parquet")
    assert "event_time" in str(err.value) and shown in str(err.value)
    assert main(["batch", "card_payment", "-i", str(src), "-o", str(tmp_path / "o.csv"), "--root", str(ROOT)]) == 2
    assert shown in capsys.readouterr().err


def test_missing_event_time_column_is_named(tmp_path):
    """A history without the event-time column is refused, naming the column the flow reads its time from."""
    src = tmp_path / "payments.csv"
    src.write_text(",".join(PAYMENT) + "\n" + ",".join(str(v).lower() if isinstance(v, bool) else str(v) for v in PAYMENT.values()) + "\n")
    with pytest.raises(StatefulBatchError, match="no column 'event_time'"):
        decide_file(load_decider(ROOT), "card_payment", src, tmp_path / "out.parquet")


def test_stateless_version_of_the_same_file_needs_no_time(tmp_path):
    """Version 1 (counters sent by the caller) decides the same file without event-time order: no refusal."""
    src = _csv(tmp_path / "payments.csv", _payments())
    summary = decide_file(load_decider(ROOT), "card_payment", src, tmp_path / "out.parquet", version="1")
    assert summary.rows == 6


def test_backtest_of_a_stateful_version_recomputes_features_in_event_order(tmp_path):
    """A backtest of card_payment 1 vs 2 on the burst: version 2 computes the velocity itself and declines the 6th."""
    src = _csv(tmp_path / "payments.csv", _payments())
    result = backtest(load_decider(ROOT), "card_payment", ["1", "2"], src)
    assert result.versions["2"].actions["DECLINE"] == 1 and result.versions["2"].rules["FR-002"] == 1
    assert result.versions["1"].actions["DECLINE"] == 0  # version 1 reads counters from the input: none sent


def test_spark_refuses_a_stateful_version():
    """On Spark a version with stateful features is refused before any session starts, saying to use the local engine."""
    from engine.batch.spark import decide_file_spark

    with pytest.raises(StatefulBatchError, match="use --engine local"):
        decide_file_spark(ROOT, "card_payment", ROOT / "data" / "card_payments.csv", Path("/nonexistent/out.parquet"))
