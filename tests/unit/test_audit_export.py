"""The decision log exported to Parquet: every record exactly, its chain range stated, and replayed as the log is."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from engine.audit.columns import META_KEY
from engine.audit.errors import AuditError, LogGap
from engine.audit.export import MANIFEST, export_log, parse_when
from engine.audit.exported import ExportedLog
from engine.audit.record import payload
from engine.audit.replay import load_outcomes, load_protected, replay
from engine.audit.report import render_table
from engine.audit.segments import FileStore, list_segments
from engine.audit.source import open_source
from engine.audit.writer import GroupCommitWriter
from engine.cli import main
from engine.policy.loader import load_policies

from .audit_helpers import PAN, payload_of
from .export_helpers import N_PER_PHASE, outcomes_file, protected_file, reload_log, unlocked_root

REPLAYED = ("input", "action", "reasons", "fired", "scores", "flow", "version", "revision", "route", "decision_id",
            "request_id", "seq", "prev", "hash", "models", "masked")


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return unlocked_root(tmp_path_factory.mktemp("root"))


@pytest.fixture(scope="module")
def log(tmp_path_factory, root) -> Path:
    return reload_log(root, tmp_path_factory.mktemp("audit"))


@pytest.fixture(scope="module")
def policies(root, log):
    return load_policies(root)  # after the reload: the root as it is now


@pytest.fixture(scope="module")
def export(tmp_path_factory, log) -> Path:
    dest = tmp_path_factory.mktemp("export") / "log.parquet"
    source = open_source(log)
    try:
        export_log(source, dest, row_group_rows=100)
    finally:
        source.close()
    return dest


@pytest.fixture(scope="module")
def side_files(tmp_path_factory) -> tuple[Path, Path]:
    d = tmp_path_factory.mktemp("side")
    return outcomes_file(d / "outcomes.csv"), protected_file(d / "protected.csv")


def _without_log(report: dict) -> dict:
    return {k: v for k, v in report.items() if k != "log"}


def _table_body(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.startswith("log: ")]


def test_every_decision_record_comes_back_exactly(log, export):
    """Each decision record of the log reads back from the export with the same input, outcome, ids and chain links."""
    source = open_source(log)
    logged = [{k: r.get(k) for k in REPLAYED} for r in source.decisions()]
    source.close()
    exported = [{k: r.get(k) for k in REPLAYED} for r in ExportedLog(export).decisions()]
    assert len(logged) == N_PER_PHASE * 6 + 40
    assert exported == logged


def test_the_export_states_which_chain_range_it_covers(log, export):
    """The description names the log, each chain's first and last seq and last hash (as verify reports them), and the headers skipped."""
    meta = ExportedLog(export).meta
    source = open_source(log)
    verified = source.verify()
    source.close()
    (chain,) = meta["chains"]
    assert meta["log"] == str(log) and meta["complete"] and meta["gaps"] == []
    assert (chain["first_seq"], chain["last_seq"], chain["last_hash"]) == (0, verified.chains[0].last_seq, verified.chains[0].last_hash)
    assert meta["decisions"] == chain["decisions"] == N_PER_PHASE * 6 + 40
    assert meta["other_records"] == {"segment": len(list_segments(log))} and len(list_segments(log)) > 3
    assert pq.ParquetFile(export).metadata.num_row_groups == -(-meta["decisions"] // 100)


def test_masked_fields_stay_masked(export):
    """The planted card number is in no cell of the export: the logged mask is what is exported."""
    table = pq.read_table(export)
    cells = [str(v) for column in table.columns for v in column.to_pylist()]
    assert not any(PAN in c for c in cells)
    masked = [v for v in table.column("input_card_number").to_pylist() if v is not None]
    assert masked and all(v.endswith(PAN[-4:]) and "*" in v for v in masked)


@pytest.mark.parametrize("version", ["1", "3"])
def test_replay_of_the_export_is_the_replay_of_the_log(log, export, policies, side_files, version):
    """Replaying the export gives the report of the log's replay (several versions, a hot reload mid-log), outcomes and fairness too."""
    compiled = policies.flows["credit_application"].versions[version]
    outcomes, protected = load_outcomes(side_files[0]), load_protected(side_files[1], age="age")
    source = open_source(log)
    from_log = replay(source.decisions(flow="credit_application"), compiled, outcomes=outcomes, protected=protected)
    source.close()
    exported = ExportedLog(export)
    from_export = replay(exported.decisions("credit_application"), compiled, outcomes=outcomes, protected=protected,
                         order=lambda r: r["log_order"])
    assert _without_log(from_export.as_dict()) == _without_log(from_log.as_dict())
    assert _table_body(render_table(from_export)) == _table_body(render_table(from_log))
    if version == "1":  # two revisions of version 1 logged; only the current one must reproduce exactly
        assert len([v for v in from_log.produced_by if v.startswith("1@")]) == 2
        assert from_log.same_version == N_PER_PHASE and from_log.same_version_differs == 0


def test_parts_replayed_in_any_order_and_merged_give_the_same_report(export, policies, side_files):
    """A replay split into parts, read out of order and merged (what Spark does) equals one replay in log order."""
    compiled = policies.flows["credit_application"].versions["1"]
    outcomes, protected = load_outcomes(side_files[0]), load_protected(side_files[1], age="age")
    records = list(ExportedLog(export).decisions("credit_application"))
    whole = replay(records, compiled, outcomes=outcomes, protected=protected, order=lambda r: r["log_order"])
    random.Random(7).shuffle(records)
    parts = [replay(records[k::3], compiled, outcomes=outcomes, protected=protected, order=lambda r: r["log_order"])
             for k in range(3)]
    merged = parts[0]
    for part in parts[1:]:
        merged.merge(part)
    merged.count_unmatched(outcomes)
    assert whole.changed > 0 and whole.examples
    assert merged.as_dict() == whole.as_dict()
    assert render_table(merged) == render_table(whole)


def test_flow_and_time_filters(log, tmp_path):
    """--flow keeps one flow's decisions and --from/--to a half-open time range; the description says so."""
    source = open_source(log)
    stamps = sorted(r["ts"] for r in source.decisions(flow="credit_application"))
    since, until = stamps[100], stamps[300]
    summary = export_log(source, tmp_path / "part.parquet", flow="credit_application", since=since, until=until)
    source.close()
    rows = list(ExportedLog(tmp_path / "part.parquet").decisions())
    assert {r["flow"] for r in rows} == {"credit_application"}
    assert summary.decisions == len(rows) == sum(since <= t < until for t in stamps)
    meta = ExportedLog(tmp_path / "part.parquet").meta
    assert (meta["flow"], meta["from"], meta["to"]) == ("credit_application", since, until)


def test_parse_when_accepts_dates_and_times_and_names_bad_text():
    """Dates and times are read as UTC unless they name a zone; anything else is refused naming the text."""
    assert parse_when("2026-11-01") == "2026-11-01T00:00:00.000000Z"
    assert parse_when("2026-11-01T12:00:00+01:00") == "2026-11-01T11:00:00.000000Z"
    with pytest.raises(ValueError, match="'yesterday' is not an ISO-8601"):
        parse_when("yesterday")


def test_partitioned_export_by_flow_and_date_replays_the_same(log, export, policies, tmp_path):
    """--partition-by flow,date writes flow=F/date=D directories and a description; their replay equals the file's."""
    dest = tmp_path / "parts"
    source = open_source(log)
    summary = export_log(source, dest, partition_by=("flow", "date"), row_group_rows=50)
    source.close()
    flows = sorted(p.name for p in dest.iterdir() if p.is_dir())
    assert flows == ["flow=card_payment", "flow=credit_application"]
    assert all(p.name.startswith("date=") for p in (dest / flows[0]).iterdir())
    assert (dest / MANIFEST).is_file() and summary.files >= 2
    compiled = policies.flows["credit_application"].versions["2"]
    got = replay(ExportedLog(dest).decisions("credit_application"), compiled, order=lambda r: r["log_order"])
    want = replay(ExportedLog(export).decisions("credit_application"), compiled, order=lambda r: r["log_order"])
    assert _without_log(got.as_dict()) == _without_log(want.as_dict())


def _log_with(directory: Path, payloads: list[bytes], max_segment_bytes: int = 1 << 20) -> Path:
    writer = GroupCommitWriter(FileStore(directory, fsync=False, max_segment_bytes=max_segment_bytes))
    try:
        for p in payloads:
            writer.append(p)
    finally:
        writer.close()
    return directory


def test_record_kinds_it_does_not_know_are_counted_not_exported(tmp_path):
    """A record of another kind (e.g. a case disposition) is skipped and counted by kind; the chain range still covers it."""
    payloads = [payload_of(0), payload({"kind": "case_disposition", "case": "c1", "outcome": "fraud"}), payload_of(1)]
    log = _log_with(tmp_path / "log", payloads)
    source = open_source(log)
    summary = export_log(source, tmp_path / "out.parquet")
    source.close()
    assert summary.decisions == 2
    assert summary.other_records == {"segment": 1, "case_disposition": 1}
    assert summary.chains[str(log)].last_seq == 3


def test_input_values_of_mixed_types_come_back_exactly(tmp_path):
    """A field whose values are whole and fractional, null, lists or huge integers is JSON text; typed fields stay typed."""
    from engine.audit.record import decision_payload

    from .audit_helpers import make_decision

    inputs = [{"x": 1, "flag": True, "n": 2, "big": 2**70}, {"x": 1.5, "flag": False, "n": 3, "tags": ["a"]},
              {"x": None, "n": 4, "name": "ä"}]
    payloads = [decision_payload(make_decision(i), inp, [], ts=1_700_000_000.0 + i) for i, inp in enumerate(inputs)]
    log = _log_with(tmp_path / "log", payloads)
    source = open_source(log)
    export_log(source, tmp_path / "out.parquet")
    source.close()
    exported = ExportedLog(tmp_path / "out.parquet")
    assert dict(exported.meta["input_columns"]) == {"big": "json", "flag": "bool", "n": "int", "name": "string",
                                                    "tags": "json", "x": "json"}
    assert [r["input"] for r in exported.decisions()] == inputs
    schema = pq.read_schema(tmp_path / "out.parquet")
    assert str(schema.field("input_n").type) == "int64" and str(schema.field("input_flag").type) == "bool"


def test_a_gap_stops_the_export_unless_allowed_and_then_it_is_stated(tmp_path, policies):
    """A missing segment raises LogGap; with allow_gaps the export states the gap and its replay reports it as the log's does."""
    log = _log_with(tmp_path / "log", [payload_of(i) for i in range(300)], max_segment_bytes=8 * 1024)
    segments = list_segments(log)
    segments[2][1].unlink()
    source = open_source(log)
    with pytest.raises(LogGap, match="is missing"):
        export_log(source, tmp_path / "refused.parquet")
    assert not (tmp_path / "refused.parquet").exists() and not list(tmp_path.glob(".refused*"))
    summary = export_log(source, tmp_path / "gappy.parquet", allow_gaps=True)
    gaps_from_log: list = []
    from_log = replay(source.decisions(gaps=gaps_from_log), policies.flows["card_payment"].versions["1"], gaps=gaps_from_log)
    source.close()
    exported = ExportedLog(tmp_path / "gappy.parquet")
    assert not summary.complete and exported.meta["complete"] is False and exported.meta["allow_gaps"] is True
    from_export = replay(exported.decisions(), policies.flows["card_payment"].versions["1"], gaps=exported.gaps(),
                         order=lambda r: r["log_order"])
    assert from_export.as_dict()["gaps"] == from_log.as_dict()["gaps"] and from_export.as_dict()["gaps"]
    assert from_export.considered == from_log.considered


def test_an_unfinished_or_foreign_file_is_not_taken_for_an_export(tmp_path):
    """A Parquet file without the export's description, a directory without its manifest, or no file: AuditError naming it."""
    import pyarrow as pa

    pq.write_table(pa.table({"a": [1]}), tmp_path / "other.parquet")
    (tmp_path / "dir").mkdir()
    for bad in (tmp_path / "other.parquet", tmp_path / "dir", tmp_path / "missing.parquet"):
        with pytest.raises(AuditError, match=str(bad.name)):
            ExportedLog(bad)
    assert META_KEY == b"verdict.export"


def test_cli_export_then_replay_local_prints_the_log_replay(log, root, side_files, tmp_path, capsys):
    """`verdict audit export` then `verdict replay --input` print the report `verdict replay LOG` prints (but the log line)."""
    dest = tmp_path / "cli.parquet"
    assert main(["audit", "export", str(log), "--output", str(dest)]) == 0
    out = capsys.readouterr().out
    assert f"exported {N_PER_PHASE * 6 + 40:,} decision records" in out and "last hash" in out
    common = ["--flow", "credit_application", "--version", "2", "--root", str(root), "--no-progress",
              "--outcomes", str(side_files[0])]
    assert main(["replay", str(log), *common]) == 0
    from_log = capsys.readouterr().out
    assert main(["replay", "--input", str(dest), "--engine", "local", *common]) == 0
    from_export = capsys.readouterr().out
    assert _table_body(from_export) == _table_body(from_log)
    assert f"log: {dest} (export of {log})" in from_export


def test_cli_usage_errors(log, root, tmp_path, capsys):
    """Bad times, partition keys, LOG with --input, spark without an export, a non-export: one line each, exit 2 (1 for an unreadable export)."""
    assert main(["audit", "export", str(log), "-o", str(tmp_path / "a.parquet"), "--from", "soon"]) == 2
    assert "'soon' is not an ISO-8601" in capsys.readouterr().err
    assert main(["audit", "export", str(log), "-o", str(tmp_path / "b"), "--partition-by", "month"]) == 2
    assert "--partition-by 'month'" in capsys.readouterr().err
    base = ["--flow", "credit_application", "--version", "1", "--root", str(root)]
    assert main(["replay", str(log), "--input", "x.parquet", *base]) == 2
    assert "one of them" in capsys.readouterr().err
    assert main(["replay", str(log), "--engine", "spark", *base]) == 2
    assert "--engine spark replays a Parquet export" in capsys.readouterr().err
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    assert main(["replay", "--input", str(tmp_path / "junk.parquet"), *base]) == 1
    assert "junk.parquet" in capsys.readouterr().err


def test_cli_gap_exits_1_and_allow_gaps_states_it(tmp_path, capsys):
    """`verdict audit export` on a log with a missing segment exits 1 naming it; --allow-gaps exports and warns."""
    log = _log_with(tmp_path / "log", [payload_of(i) for i in range(300)], max_segment_bytes=8 * 1024)
    list_segments(log)[1][1].unlink()
    assert main(["audit", "export", str(log), "-o", str(tmp_path / "x.parquet")]) == 1
    assert "is missing" in capsys.readouterr().err and not (tmp_path / "x.parquet").exists()
    assert main(["audit", "export", str(log), "-o", str(tmp_path / "x.parquet"), "--allow-gaps"]) == 0
    assert "warning: part of the log is missing" in capsys.readouterr().err
    assert json.loads(pq.ParquetFile(tmp_path / "x.parquet").metadata.metadata[META_KEY])["gaps"]





def test_verify_export_matches_the_log_and_names_a_row_that_differs(log, export, tmp_path, capsys):
    """`verdict audit verify LOG --export F` passes for the log's own export (file and partitions) and names a tampered row."""
    import pyarrow as pa

    assert main(["audit", "verify", str(log), "--export", str(export)]) == 0
    assert f"holds exactly the log's {N_PER_PHASE * 6 + 40:,} decision records" in capsys.readouterr().out
    source = open_source(log)
    export_log(source, tmp_path / "parts", partition_by=("flow", "date"), row_group_rows=50)
    source.close()
    assert main(["audit", "verify", str(log), "--export", str(tmp_path / "parts")]) == 0
    capsys.readouterr()
    table = pq.read_table(export)
    actions = table.column("action").to_pylist()
    actions[7] = "APPROVE" if actions[7] != "APPROVE" else "DECLINE"
    forged = tmp_path / "forged.parquet"
    meta = pq.ParquetFile(export).metadata.metadata[META_KEY]
    with pq.ParquetWriter(forged, table.schema) as w:  # the description copied, one action changed
        w.write_table(table.set_column(table.schema.get_field_index("action"), "action", pa.array(actions)))
        w.add_key_value_metadata({META_KEY: meta})
    assert main(["audit", "verify", str(log), "--export", str(forged)]) == 1
    err = capsys.readouterr().err
    assert "EXPORT DIFFERS: log_order 7" in err and "action differ" in err
