"""`verdict replay --engine spark` of an export whose decisions read stateful features and custom lists, on a real
local[2] Spark session: the decisions reproduce bit for bit, and the report equals the local replay of the log.

The log (tests/unit/test_export_replay_state.make_log): card_payment 3's 6th payment of a customer within an hour
(declined for VELOCITY on history the log does not hold) and a payment from a device on blocked_devices (declined;
the entry removed before the replay)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from engine.audit.export import export_log
from engine.audit.exported import ExportedLog
from engine.audit.replay import replay
from engine.audit.source import open_source
from engine.batch.replay_spark import replay_export
from engine.cli import main
from engine.policy.documents import ROOT_DIRS
from engine.policy.loader import load_policies
from engine.state.store import MemoryStore
from tests.unit.audit_helpers import PAN, live_card_payments, logging_decider
from tests.unit.test_export_replay_state import ROOT, make_exports, old_format

from . import test_batch_spark

session = test_batch_spark.session  # the fixture: one local[2] Spark session for the module

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """The policy root (a copy of the bundled one, with no list entries), the log, its export (a file and partitions)
    and the export as format /1."""
    base = tmp_path_factory.mktemp("spark-replay-state")
    root = base / "root"
    for part in ROOT_DIRS:
        shutil.copytree(ROOT / part, root / part)
    return {**make_exports(base, 1), "root": root, "old": old_format(base / "log.parquet", base / "old.parquet")}


def _local(made: dict[str, Path]):
    source = open_source(made["log"])
    try:
        return replay(source.decisions(flow="card_payment"), load_policies(made["root"]).flows["card_payment"].versions["3"])
    finally:
        source.close()


def _body(report) -> dict:
    return {k: v for k, v in report.as_dict().items() if k != "log"}


@pytest.mark.parametrize("export", ["file", "parts"])
def test_spark_replay_of_the_export_reproduces_stateful_and_list_decisions(session, made, export):
    """On Spark (3 partitions), version 3 reproduces all three decisions (VELOCITY and block-list declines) as the log replay does."""
    on_spark = replay_export(ExportedLog(made[export]), "card_payment", "3", root=made["root"], spark=session, partitions=3)
    assert (on_spark.same_version, on_spark.same_version_differs, on_spark.differs) == (3, 0, 0)
    assert on_spark.as_dict()["transitions"]["DECLINE"]["DECLINE"] == 2
    assert _body(on_spark) == _body(_local(made))


def test_spark_replay_of_an_older_export_says_it_cannot_reproduce(session, made):
    """A format /1 export replays on Spark as before (the declines become approvals) with the same note as locally."""
    on_spark = replay_export(ExportedLog(made["old"]), "card_payment", "3", root=made["root"], spark=session)
    assert (on_spark.same_version, on_spark.same_version_differs) == (3, 2)
    assert on_spark.notes == ExportedLog(made["old"]).notes() and len(on_spark.notes) == 1


def test_cli_engine_spark_reports_every_decision_reproduced(session, made, capsys):
    """`verdict replay --input EXPORT --engine spark --version 3` reports the three logged decisions reproduced."""
    assert main(["replay", "--input", str(made["file"]), "--engine", "spark", "--flow", "card_payment", "--version", "3",
                 "--root", str(made["root"]), "--no-progress", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reproduction"] == {"logged_by_this_version": 3, "differs": 0, "fallbacks_left_out": 0}


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> dict[str, Path]:
    """card_payment 2 decisions of 12 customers on 5 devices, 2.5 minutes apart (bursts hit VELOCITY), exported, and a
    root with '2b' (version 2 with a longer lateness: another revision, so its features are recomputed), as in
    tests/unit/test_replay_state.py."""
    base = tmp_path_factory.mktemp("spark-replay-history")
    root = base / "root"
    for part in ROOT_DIRS:
        shutil.copytree(ROOT / part, root / part)
    flow = yaml.safe_load((root / "policies/card_payment/2/flow.yaml").read_text())
    flow["version"], flow["behaviour"]["lateness"] = "2b", "20m"
    (root / "policies/card_payment/2b").mkdir()
    (root / "policies/card_payment/2b/flow.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    decider, writer = logging_decider(base / "audit", load_policies(root), state=MemoryStore(b"s" * 32))
    for i, row in enumerate(live_card_payments(60)):
        row.update(customer_id=f"C{i % 12}", device_id=f"D{i % 5}", card_number=PAN, event_time=1_800_000_000.0 + 150 * i)
        decider.decide("card_payment", row, version="2", request_id=f"card-{i}")
    decider.close()
    writer.close()
    source = open_source(base / "audit")
    try:
        export_log(source, base / "log.parquet", row_group_rows=7)
    finally:
        source.close()
    return {"root": root, "log": base / "audit", "file": base / "log.parquet"}


def test_another_stateful_version_recomputes_features_over_the_whole_log_on_spark(session, history):
    """Version 2b recomputes its features on Spark from every decision before each one (not per partition): the local report."""
    on_spark = replay_export(ExportedLog(history["file"]), "card_payment", "2b", root=history["root"], spark=session, partitions=3)
    source = open_source(history["log"])
    try:
        local = replay(source.decisions(flow="card_payment"), load_policies(history["root"]).flows["card_payment"].versions["2b"])
    finally:
        source.close()
    assert local.replayed == on_spark.replayed == 60 and on_spark.same_version == 0
    assert _body(on_spark) == _body(local)
