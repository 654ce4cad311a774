"""`verdict train --from-log`: the exported point-in-time training set equals what the log holds
(inputs as logged, masked fields left out, derived features of the deciding version, the label),
and a model trains on it through the existing trainer."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from engine.audit.segments import FileStore
from engine.audit.sink import AuditSink
from engine.audit.source import open_source
from engine.audit.writer import GroupCommitWriter
from engine.cases import OutcomeKind, OutcomeLabel, open_store
from engine.cli import main
from engine.policy.loader import load_policies
from engine.runtime.privacy import HashKey
from engine.runtime.service import Decider
from engine.training.from_log import training_set

from .audit_helpers import ROOT, credit_applications, credit_statuses

N = 300


@pytest.fixture(scope="module")
def labelled_log(tmp_path_factory) -> tuple[Path, Path]:
    """A log of N real credit applications decided by the bundled flows, each labelled from data/credit_data.csv."""
    pytest.importorskip("pyarrow")
    base = tmp_path_factory.mktemp("from_log")
    policies = load_policies(ROOT)
    writer = GroupCommitWriter(FileStore(base / "log", fsync=False))
    decider = Decider(policies, sink=AuditSink(writer, HashKey(b"from-log-test")))
    store = open_store(base / "cases.db")
    labels = []
    for i, (application, status) in enumerate(zip(credit_applications(N), credit_statuses(N), strict=True)):
        decision = decider.decide("credit_application", application, request_id=f"a{i}")
        kind = OutcomeKind.DEFAULT if status == "bad" else OutcomeKind.REPAID
        if i % 10 != 9:  # every tenth decision has no outcome yet: left out of the set
            labels.append(OutcomeLabel(decision.decision_id, kind, "2026-06-30", "test"))
    store.add_outcomes(labels)
    store.close()
    writer.close()
    return base / "log", base / "cases.db"


def test_exported_rows_equal_the_logged_decisions_and_a_model_trains(labelled_log, tmp_path: Path) -> None:
    """Every exported row is a logged decision's input, its version's derived features and its label; the trainer writes a model."""
    log, store = labelled_log
    export = tmp_path / "set.csv"
    code = main(["train", "--from-log", str(log), "--flow", "credit_application", "--outcomes-store", str(store),
                 "--export", str(export), "--name", "from_log", "--out", str(tmp_path / "model"), "--algorithm", "logistic",
                 "--folds", "3", "--root", str(ROOT), "--quiet"])
    assert code == 0
    assert (tmp_path / "model" / "model.onnx").is_file()
    labels = open_store(store).outcomes()
    source = open_source(log)
    records = {r["decision_id"]: r for r in source.decisions(flow="credit_application")}
    with export.open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == len(labels) == N - N // 10
    compiled = load_policies(ROOT).flows["credit_application"].versions
    for row in rows:
        record = records[row["decision_id"]]
        for name, value in record["input"].items():
            if isinstance(value, bool):
                assert row[name] == str(value).lower(), name
            elif isinstance(value, int | float):
                assert float(row[name]) == float(value), name
            else:
                assert row[name] == value, name
        values = dict(record["input"])
        compiled[record["version"]].derive(values)
        for name in ("debt_to_income", "loan_to_price", "installment"):
            cell = row[name]
            assert (cell == "" and values[name] is None) or math.isclose(float(cell), float(values[name]), rel_tol=1e-12), name
        bad = labels[row["decision_id"]][0].kind is OutcomeKind.DEFAULT
        assert row["label"] == ("bad" if bad else "good")


def test_masked_fields_and_shadows_are_left_out() -> None:
    """A field the log masked is not a column, a shadow's record is not a row, an unlabelled one is counted."""
    base = {"kind": "decision", "ts": "t", "version": "9", "revision": "r", "route": "live", "masked": ["card_number"],
            "input": {"card_number": "411111******1111", "amount": 10}}
    records = [{**base, "decision_id": "a"}, {**base, "decision_id": "b", "route": "shadow"}, {**base, "decision_id": "c"}]
    labels = {"a": [OutcomeLabel("a", OutcomeKind.CHARGEBACK, "2026-01-01", "t")], "b": [OutcomeLabel("b", OutcomeKind.REPAID, "2026-01-01", "t")]}
    built = training_set(records, labels, {})
    assert built.header == ["decision_id", "ts", "amount", "label"]
    assert built.rows == [["a", "t", 10, "bad"]]
    assert (built.unlabelled, built.no_derived, built.masked_fields) == (1, 1, ["card_number"])


def test_from_log_needs_flow_and_export(capsys) -> None:
    """--from-log without --flow or --export is a usage error naming both (exit 2)."""
    assert main(["train", "--from-log", "x", "--name", "m", "--out", "o"]) == 2
    assert "--from-log needs --flow and --export" in capsys.readouterr().err
