"""`verdict replay --engine spark` on a real local[2] Spark session: the report of the local replay of the same log.

The log is made by several versions with a hot reload in the middle (case replay-hot-reload-same-revision,
tests/unit/export_helpers.py), exported to Parquet and spread over several partitions in any order,
whose partial reports the driver adds up."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.audit.export import export_log
from engine.audit.exported import ExportedLog
from engine.audit.replay import load_outcomes, load_protected, replay
from engine.audit.report import render_table
from engine.audit.source import open_source
from engine.batch.replay_spark import replay_export
from engine.cli import main
from engine.errors import VersionNotFound
from engine.policy.loader import load_policies
from tests.unit.export_helpers import outcomes_file, protected_file, reload_log, unlocked_root

from . import test_batch_spark

session = test_batch_spark.session  # the fixture: one local[2] Spark session for the module

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """The root after the reload, its log, the log's export (a file and a partitioned directory), outcomes and protected attributes."""
    base = tmp_path_factory.mktemp("spark-replay")
    root = unlocked_root(base / "root")
    log = reload_log(root, base / "audit")
    source = open_source(log)
    export_log(source, base / "log.parquet", row_group_rows=64)
    export_log(source, base / "parts", partition_by=("flow", "date"), row_group_rows=64)
    source.close()
    return {"root": root, "log": log, "file": base / "log.parquet", "parts": base / "parts",
            "outcomes": outcomes_file(base / "outcomes.csv"), "protected": protected_file(base / "protected.csv")}


def _local(made: dict[str, Path], version: str):
    compiled = load_policies(made["root"]).flows["credit_application"].versions[version]
    source = open_source(made["log"])
    try:
        return replay(source.decisions(flow="credit_application"), compiled, outcomes=load_outcomes(made["outcomes"]),
                      protected=load_protected(made["protected"], age="age"))
    finally:
        source.close()


def _body(report) -> tuple[dict, list[str]]:
    data = {k: v for k, v in report.as_dict().items() if k != "log"}
    return data, [line for line in render_table(report).splitlines() if not line.startswith("log: ")]


@pytest.mark.parametrize(("export", "version"), [("file", "1"), ("parts", "2"), ("file", "3")])
def test_spark_replay_equals_local_replay_of_the_log(session, made, export, version):
    """Spark's report (JSON and table) equals the local replay of the log: rates, transitions, drivers, outcomes, fairness."""
    data = ExportedLog(made[export])
    on_spark = replay_export(data, "credit_application", version, root=made["root"],
                             outcomes=load_outcomes(made["outcomes"]), protected=load_protected(made["protected"], age="age"),
                             spark=session, partitions=5)  # rows shuffled over 5 partitions: 5 partial reports merged
    local = _local(made, version)
    assert local.replayed > 0 and on_spark.replayed == local.replayed
    assert _body(on_spark) == _body(local)
    if version == "1":  # the hot reload: two revisions of version 1 in the log, the current one reproduced exactly
        assert len([v for v in on_spark.produced_by if v.startswith("1@")]) == 2
        assert on_spark.same_version > 0 and on_spark.same_version_differs == 0 and on_spark.changed > 0


def test_cli_replay_engine_spark_prints_the_log_replay(session, made, capsys):
    """`verdict replay --input EXPORT --engine spark` prints the table `verdict replay LOG` prints (but the log line)."""
    common = ["--flow", "credit_application", "--version", "1", "--root", str(made["root"]), "--no-progress",
              "--outcomes", str(made["outcomes"]), "--protected", str(made["protected"]), "--age", "age"]
    assert main(["replay", str(made["log"]), *common]) == 0
    from_log = capsys.readouterr().out
    assert main(["replay", "--input", str(made["file"]), "--engine", "spark", *common]) == 0
    on_spark = capsys.readouterr().out
    body = [line for line in on_spark.splitlines() if not line.startswith("log: ")]
    assert body == [line for line in from_log.splitlines() if not line.startswith("log: ")]
    assert "fairness, logged (before), marital" in on_spark


def test_unknown_version_is_refused_in_the_driver(session, made):
    """A version the root lacks is refused before Spark runs anything."""
    with pytest.raises(VersionNotFound):
        replay_export(ExportedLog(made["file"]), "credit_application", "99", root=made["root"], spark=session)
