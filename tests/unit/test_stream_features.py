"""Training rows from event streams: the serving code's features (no skew), the committed data and card_fraud/2 rebuilt."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.audit.source import open_source
from engine.models.runtime import load_model
from engine.policy.loader import load_policies
from engine.state.store import MemoryStore
from engine.training.derived import CARD_FRAUD_STREAM_DERIVED, add_derived
from engine.training.errors import DataError
from engine.training.fraud_stream import LABELS, StreamParams, generate_stream
from engine.training.rebuild import rebuild
from engine.training.stream_features import (
    STREAM_FLOW,
    TRAINING_SALT,
    behaviour_plan,
    holdout_auc,
    main,
    replay_features,
    to_csv,
)

from .audit_helpers import logging_decider

ROOT = Path(__file__).resolve().parents[2]
SLICE = StreamParams(seed=11, customers=150, days=8, bursts=10, card_tests=3, rings=3)


@pytest.fixture(scope="module")
def plan():
    """The compiled behaviour of card_payment version 3."""
    return behaviour_plan(ROOT / STREAM_FLOW, ROOT)


@pytest.fixture(scope="module")
def served(tmp_path_factory, plan):
    """A generated stream slice, its training rows, and the decision-log records of the same events
    decided in order by a real Decider on card_payment version 3."""
    events = generate_stream(SLICE)
    rows = replay_features(events, plan)
    directory = tmp_path_factory.mktemp("audit")
    decider, writer = logging_decider(directory, load_policies(ROOT), state=MemoryStore(TRAINING_SALT))
    for i, event in enumerate(events):
        decider.decide("card_payment", {k: v for k, v in event.items() if k not in LABELS}, version="3", request_id=f"e{i}")
    decider.close()
    writer.close()
    records = list(open_source(directory).decisions(flow="card_payment"))
    return events, rows, records


def test_training_rows_equal_the_features_a_live_decision_logged(served, plan) -> None:
    """Every stateful feature of every training row equals what the v3 decision of the same event logged."""
    events, rows, records = served
    assert len(records) == len(rows) == len(events) > 500
    names = [f.name for f in plan.features]
    for row, record in zip(rows, records, strict=True):
        assert record["version"] == "3"
        assert record["state"] == {n: row[n] for n in names}, record["request_id"]
    assert any(r["txn_count_1h"] >= 5 for r in rows) and any(r["cards_per_device_24h"] >= 8 for r in rows if r["cards_per_device_24h"])
    assert any(r["linked_customers_7d"] >= 3 for r in rows)


def test_the_model_scores_training_rows_as_it_scored_the_live_decisions(served) -> None:
    """card_fraud/2 on a training row (derived features by the trainer) gives exactly the score the decision logged."""
    _, rows, records = served
    add_derived(rows, CARD_FRAUD_STREAM_DERIVED)
    model = load_model(ROOT / "model_artifacts" / "card_fraud" / "2")
    scores = model.score_batch(np.vstack([model.encode(r) for r in rows]))
    logged = np.array([r["scores"]["fraud_score"] for r in records])
    assert np.array_equal(scores.astype(np.float64), logged)


def test_a_stream_going_back_in_time_is_refused(plan) -> None:
    """An event earlier than the one before it raises DataError naming its position."""
    events = generate_stream(StreamParams(seed=5, customers=40, days=3, bursts=2, card_tests=1, rings=1))[:3]
    events[2] = {**events[2], "event_time": events[1]["event_time"] - 1}
    with pytest.raises(DataError, match="event 3") as refused:
        replay_features(events, plan)
    assert refused.value.code == "event_order"


def test_a_flow_without_behaviour_is_refused() -> None:
    """Training rows need a behaviour section: version 1 of card_payment has none, and says so."""
    with pytest.raises(DataError, match="no behaviour") as refused:
        behaviour_plan(ROOT / "policies/card_payment/1/flow.yaml", ROOT)
    assert refused.value.code == "flow_without_behaviour"


def test_the_command_refuses_bad_parameters_with_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`python -m engine.training.stream_features --customers 3` exits 2 with one line naming the rule, writing nothing."""
    out = tmp_path / "s.csv"
    assert main(["--customers", "3", "--out", str(out), "--root", str(ROOT)]) == 2
    assert "at least 10 customers" in capsys.readouterr().err and not out.exists()


def test_committed_stream_data_is_the_generator_output(plan) -> None:
    """data/card_payment_stream.csv is exactly the seed-7 stream with the features replayed through card_payment 3."""
    committed = (ROOT / "data" / "card_payment_stream.csv").read_text(encoding="utf-8")
    assert committed == to_csv(replay_features(generate_stream(StreamParams(seed=7)), plan), plan)


def test_rebuild_reproduces_card_fraud_2(tmp_path: Path) -> None:
    """`models rebuild card_fraud/2` from the committed stream data gives the committed model, booster, card and baseline."""
    committed = ROOT / "model_artifacts" / "card_fraud" / "2"
    # the committed card only (it lets the rebuild keep created_at), and the data
    shutil.copytree(committed, tmp_path / "model_artifacts" / "card_fraud" / "2", ignore=lambda _d, names: [n for n in names if n != "card.json"])
    shutil.copytree(ROOT / "data", tmp_path / "data", ignore=lambda _d, names: [n for n in names if n != "card_payment_stream.csv"])
    card = rebuild(tmp_path, ["card_fraud/2"])["card_fraud/2"]
    files = ("model.onnx", "model.txt", "card.json", "baseline.json")
    rebuilt = {name: (tmp_path / "model_artifacts" / "card_fraud" / "2" / name).read_bytes() for name in files}
    assert rebuilt == {name: (committed / name).read_bytes() for name in files}
    assert card.metrics["cv_auc"] >= 0.95


def test_card_fraud_2_beats_card_fraud_1_on_a_held_out_stream() -> None:
    """On the same held-out stream (seed 8), scored on the features card_payment 3 computes, card_fraud/2's AUC
    is above card_fraud/1's (the skewed model) by at least 0.02."""
    aucs = holdout_auc(ROOT)
    assert aucs["card_fraud/2"] >= aucs["card_fraud/1"] + 0.02
    assert aucs["card_fraud/2"] >= 0.97
