"""The Parquet export carries what a decision read (event time, stateful features, custom-list answers), so a
replay of the export with the same version reproduces the log's decisions bit for bit, as a replay of the log does."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.audit.columns import CARRIED_SINCE_2, FORMATS, META_KEY, FieldKinds, input_kinds, record_of
from engine.audit.export import export_log
from engine.audit.export_check import check_export
from engine.audit.exported import ExportedLog
from engine.audit.record import decision_from_record
from engine.audit.replay import replay
from engine.audit.source import open_source
from engine.cli import main
from engine.custom_lists.kinds import entry_key
from engine.custom_lists.snapshot import Entry, ListSnapshot
from engine.policy.loader import load_policies
from engine.runtime.service import Decider
from engine.state.store import MemoryStore
from engine.types import Action

from .audit_helpers import logging_decider

ROOT = Path(__file__).resolve().parents[2]
# data/card_payments.csv line 2 (an everyday chip payment at home) as a card_payment 3 input, as in test_replay_lists
PAYMENT = {
    "amount": 7.94, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE", "card_country": "DE",
    "card_present": True, "entry_mode": "chip", "hour": 16, "customer_id": "C000747", "card_number": "5555555555554444",
    "account_age_days": 2058, "distance_from_home_km": 7.1, "device_id": "D-home",
}
STOLEN = "D-stolen-7"
T0 = 1_800_000_000.0
EXPECTED = {"burst-6": (Action.DECLINE, "VELOCITY"), "stolen": (Action.DECLINE, "BLOCKED_DEVICE"), "plain": (Action.APPROVE, None)}


def make_log(base: Path) -> Path:
    """A log of three card_payment 3 decisions whose answers depend on what is not in it: the 6th payment of a
    customer within an hour (the first five were decided before the log was kept: their events are only in the
    state store), a payment from a device on blocked_devices (the entry is removed afterwards) and a plain one."""
    policies = load_policies(ROOT)
    view = policies.custom_lists
    assert view is not None
    view.swap(ListSnapshot([Entry("blocked_devices", entry_key(view.kinds["blocked_devices"], STOLEN, view.key))], view.kinds))
    store = MemoryStore(b"s" * 32)
    earlier = Decider(policies, state=store)  # decisions whose records are not in this log (an older log)
    for i in range(5):
        earlier.decide("card_payment", {**PAYMENT, "customer_id": "C-burst", "event_time": T0 + 60 * i}, request_id=f"burst-{i + 1}")
    earlier.close()
    directory = base / "audit"
    decider, writer = logging_decider(directory, policies, state=store)
    made = {
        "burst-6": decider.decide("card_payment", {**PAYMENT, "customer_id": "C-burst", "event_time": T0 + 300}, request_id="burst-6"),
        "stolen": decider.decide("card_payment", {**PAYMENT, "customer_id": "C-thief", "device_id": STOLEN, "event_time": T0 + 310},
                                 request_id="stolen"),
        "plain": decider.decide("card_payment", {**PAYMENT, "customer_id": "C-plain", "event_time": T0 + 320}, request_id="plain"),
    }
    view.swap(ListSnapshot((), view.kinds))  # the fraud team removes the entry before the replay
    decider.close()
    writer.close()
    for rid, (action, code) in EXPECTED.items():
        assert made[rid].version == "3" and made[rid].outcome.action is action, rid
        assert code is None or code in [r.code for r in made[rid].outcome.reasons], rid
    return directory


def make_exports(base: Path, row_group_rows: int) -> dict[str, Path]:
    """``make_log``'s log under ``base`` and its export to one file and to partitions (``row_group_rows`` a row group)."""
    log = make_log(base)
    source = open_source(log)
    try:
        export_log(source, base / "log.parquet", row_group_rows=row_group_rows)
        export_log(source, base / "parts", partition_by=("flow", "date"), row_group_rows=row_group_rows)
    finally:
        source.close()
    return {"log": log, "file": base / "log.parquet", "parts": base / "parts", "base": base}


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """The log, its export to one file and to partitions (row groups of 2 rows: several batches)."""
    return make_exports(tmp_path_factory.mktemp("export-state"), 2)


def _logged(log: Path) -> list[dict]:
    source = open_source(log)
    try:
        return list(source.decisions(flow="card_payment"))
    finally:
        source.close()


def _version3():
    return load_policies(ROOT).flows["card_payment"].versions["3"]  # loaded afresh: empty lists, empty state


def _body(report) -> dict:
    return {k: v for k, v in report.as_dict().items() if k != "log"}


def _footer(path: Path) -> bytes:
    """The export's description (the Parquet footer's ``verdict.export`` key)."""
    return pq.ParquetFile(path).metadata.metadata[META_KEY]


def old_format(src: Path, dest: Path) -> Path:
    """``src`` as an export of format /1 (what `verdict audit export` wrote before): the four columns dropped."""
    table = pq.read_table(src)
    meta = json.loads(_footer(src))
    meta["format"] = FORMATS[0]
    old = table.drop_columns(list(CARRIED_SINCE_2)).replace_schema_metadata({META_KEY: json.dumps(meta).encode()})
    pq.write_table(old, dest)
    return dest


def test_export_rows_carry_event_time_state_and_lists_as_logged(made):
    """Each exported record has the log's ``ts``, ``event_time`` (a double column), ``state`` and ``lists`` (JSON text columns)."""
    logged = {r["request_id"]: r for r in _logged(made["log"])}
    exported = {r["request_id"]: r for r in ExportedLog(made["file"]).decisions()}
    assert sorted(exported) == sorted(logged) == sorted(EXPECTED)
    for rid, record in logged.items():
        assert {k: exported[rid].get(k) for k in ("ts", "event_time", "state", "lists")} == \
               {k: record[k] for k in ("ts", "event_time", "state", "lists")}, rid
    assert logged["burst-6"]["state"]["txn_count_1h"] == 5 and logged["burst-6"]["event_time"] == T0 + 300
    assert logged["stolen"]["lists"]["blocked_devices"] == [True]
    schema = pq.read_schema(made["file"])
    assert (str(schema.field("event_time").type), str(schema.field("state").type), str(schema.field("lists").type)) == \
           ("double", "string", "string")
    assert json.loads(pq.ParquetFile(made["file"]).metadata.metadata[META_KEY])["format"] == FORMATS[-1] == "verdict-decision-log-export/2"


@pytest.mark.parametrize("export", ["file", "parts"])
def test_local_replay_of_the_export_reproduces_the_log_bit_for_bit(made, export):
    """Version 3 replayed from the export (empty lists, no state) reproduces all three decisions, the report equal to the log's replay."""
    from_export = replay(ExportedLog(made[export]).decisions("card_payment"), _version3(), order=lambda r: int(r["log_order"]))
    from_log = replay(_logged(made["log"]), _version3())
    assert (from_export.same_version, from_export.same_version_differs, from_export.differs) == (3, 0, 0)
    assert from_export.as_dict()["transitions"]["DECLINE"]["DECLINE"] == 2
    assert _body(from_export) == _body(from_log)


def test_cli_replay_of_the_export_prints_every_decision_reproduced(made, capsys):
    """`verdict replay --input EXPORT --version 3` reports the three logged decisions reproduced exactly, with no note."""
    args = ["replay", "--input", str(made["file"]), "--flow", "card_payment", "--version", "3", "--root", str(ROOT), "--no-progress"]
    assert main([*args, "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reproduction"] == {"logged_by_this_version": 3, "differs": 0, "fallbacks_left_out": 0}
    assert "notes" not in data


def test_verify_export_checks_the_new_columns_row_by_row(made):
    """`verify --export` passes on the export, and names ``state`` and ``lists`` when a row's differ from the log."""
    source = open_source(made["log"])
    try:
        assert check_export(ExportedLog(made["file"]), source) == (3, [])
        table = pq.read_table(made["file"])
        state = table.column("state").to_pylist()
        lists = table.column("lists").to_pylist()
        state[0] = json.dumps({**json.loads(state[0]), "txn_count_1h": 0})
        lists[0] = json.dumps({"blocked_devices": [False]})
        forged = table.set_column(table.schema.get_field_index("state"), "state", [state])
        forged = forged.set_column(table.schema.get_field_index("lists"), "lists", [lists])
        pq.write_table(forged.replace_schema_metadata({META_KEY: _footer(made["file"])}), made["base"] / "forged.parquet")
        checked, problems = check_export(ExportedLog(made["base"] / "forged.parquet"), source)
    finally:
        source.close()
    assert checked == 3 and len(problems) == 1 and problems[0].endswith("state, lists differ from the log")


def test_an_older_export_still_replays_with_a_note(made, capsys):
    """A format /1 export (no such columns) replays as before (lists and state of the replaying process) and the report says so."""
    old = old_format(made["file"], made["base"] / "old.parquet")
    source = open_source(made["log"])
    try:
        assert check_export(ExportedLog(old), source) == (3, [])  # what /1 carries is still checked
    finally:
        source.close()
    assert main(["replay", "--input", str(old), "--flow", "card_payment", "--version", "3", "--root", str(ROOT),
                 "--no-progress", "--json", "-"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["reproduction"]["differs"] == 2  # the VELOCITY and the block-list declines are not reproduced
    assert data["transitions"]["DECLINE"]["APPROVE"] == 2
    assert len(data["notes"]) == 1 and "without event_time, state, lists, fallback" in data["notes"][0]
    assert main(["replay", "--input", str(old), "--flow", "card_payment", "--version", "3", "--root", str(ROOT), "--no-progress"]) == 0
    assert "note: " in capsys.readouterr().out


def test_decision_from_record_leaves_out_what_the_decision_read(made):
    """decision_from_record (idempotency preload, notices) gives the answer without state, lists or event time:
    its users answer again or explain, and the idempotency cache's size estimate counts neither."""
    record = next(r for r in _logged(made["log"]) if r["request_id"] == "stolen")
    decision = decision_from_record(record)
    assert decision.outcome.action is Action.DECLINE and record["lists"] and record["state"]
    assert (decision.state, decision.lists, decision.event_time) == ({}, {}, None)



def test_a_fallback_decision_is_left_out_of_reproduction_from_the_export_as_from_the_log(made):
    """A record's ``fallback`` survives the export, so its replay counts it apart ("not expected to reproduce") as the log's does."""
    records = _logged(made["log"])
    records[0] = {**records[0], "fallback": [{"step": "card_fraud", "reason": "deadline", "mode": "skip"}]}
    kinds = FieldKinds()
    for record in records:
        kinds.observe(record)
    columns = kinds.columns()
    names = columns.names
    back = [record_of(dict(zip(names, columns.row(i, "c", r), strict=True)), input_kinds(columns.inputs))
            for i, r in enumerate(records)]
    assert back[0]["fallback"] == records[0]["fallback"] and "fallback" not in back[1]
    from_export, from_log = replay(back, _version3()), replay(records, _version3())
    assert (from_export.same_version_fallbacks, from_export.same_version) == (from_log.same_version_fallbacks, from_log.same_version) == (1, 2)
