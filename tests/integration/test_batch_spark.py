"""The batch on a real local Spark session (local[2]): the same answers as the gRPC service and as
`verdict batch --engine local`, through the command's Spark engine and the Python API.

One Spark session for the module (starting one takes ~15 s on 2 cores)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.batch import spark as verdict_spark
from engine.batch.run import decide_file
from engine.batch.table import TableFormatError
from engine.cli import main

from .helpers import ROOT
from .test_batch_parity import _compare, _credit_csv, _online

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def session():
    """One local[2] Spark session for the module."""
    s = verdict_spark.session("local[2]", "verdict-batch-tests")
    yield s
    s.stop()


def test_spark_file_equals_grpc_and_local(session, stub, decider, tmp_path):
    """The Spark engine on a CSV decides every row as the gRPC service and the local engine do, in input order."""
    src, inputs = _credit_csv(tmp_path)
    online = _online(stub, "credit_application", inputs)
    summary = verdict_spark.decide_file_spark(ROOT, "credit_application", src, tmp_path / "spark.parquet", spark=session)
    assert (summary.rows, summary.failed) == (len(inputs), 0)
    on_spark = pq.read_table(tmp_path / "spark.parquet").to_pylist()
    _compare(online, on_spark)
    decide_file(decider, "credit_application", src, tmp_path / "local.parquet")
    assert pq.read_table(tmp_path / "local.parquet").to_pylist() == on_spark


def test_python_api_on_a_typed_dataframe(session, decider, tmp_path):
    """decide(df, ...) on typed columns keeps ids, fails bad rows alone, matches local, refuses a missing id column."""
    _, inputs = _credit_csv(tmp_path)
    rows = [dict(r, app_id=f"a{i}") for i, r in enumerate(inputs[:120])]
    rows[5] = dict(rows[5], age=-3.0, home="castle")
    path = tmp_path / "apps.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path)
    df = session.read.parquet(str(path)).repartition(3)
    out = {r["id"]: r.asDict() for r in verdict_spark.decide(df, "credit_application", "2", root=ROOT,
                                                               id_column="app_id").collect()}
    assert len(out) == len(rows)
    bad = out["a5"]
    assert bad["error_code"] == "invalid_input" and "age" in bad["error"] and "home" in bad["error"]
    with pytest.raises(TableFormatError, match="no column 'nope'"):
        verdict_spark.decide(df, "credit_application", "2", root=ROOT, id_column="nope")
    decide_file(decider, "credit_application", path, tmp_path / "local.parquet", version="2", id_column="app_id")
    for rec in pq.read_table(tmp_path / "local.parquet").to_pylist():
        rec.pop("row")
        assert out[rec["id"]] == rec


def test_flows_load_once_per_process(session, monkeypatch, tmp_path):
    """The shipped root is loaded once per process and hash: a second task reuses the cached flows."""
    import engine.runtime.service

    data, digest = verdict_spark.pack_root(ROOT)
    assert verdict_spark.pack_root(ROOT)[1] == digest  # reproducible: the same files, the same hash
    path = tmp_path / f"verdict-root-test-{digest[:16]}.vroot"
    path.write_bytes(data)
    session.sparkContext.addFile(str(path))
    loads = []
    real = engine.runtime.service.load_decider
    monkeypatch.setattr(engine.runtime.service, "load_decider", lambda root: loads.append(root) or real(root))
    monkeypatch.setattr(verdict_spark, "_cache", {})
    first = verdict_spark._decider(path.name, digest)
    assert verdict_spark._decider(path.name, digest) is first
    assert len(loads) == 1
    assert first.flows()["credit_application"] == ["1", "2", "3"]


def test_cli_engine_spark(tmp_path, capsys, session):
    """verdict batch --engine spark (on the active session) writes the same file as --engine local."""
    src, _ = _credit_csv(tmp_path)
    for engine in ("local", "spark"):
        code = main(["batch", "credit_application", "-i", str(src), "-o", str(tmp_path / f"{engine}.csv"),
                     "--engine", engine, "--root", str(ROOT)])
        assert code == 0, capsys.readouterr().err
        assert json.loads(capsys.readouterr().out)["rows"] == 400
    assert (tmp_path / "local.csv").read_bytes() == (tmp_path / "spark.csv").read_bytes()


def test_backtest_on_spark_equals_local(session, decider, tmp_path):
    """verdict backtest on Spark reports exactly what the local engine reports (rates, transitions, rules, outcomes)."""
    from engine.batch.backtest import backtest

    src, _ = _credit_csv(tmp_path)
    local = backtest(decider, "credit_application", ["1", "2"], src, id_column="customer_id", outcome_column="Status")
    on_spark = backtest(decider, "credit_application", ["1", "2"], src, id_column="customer_id", outcome_column="Status",
                        engine="spark", root=ROOT)
    assert on_spark.as_dict() == local.as_dict()
    assert local.rows == 400 and local.comparisons["2"].changed > 0


def test_backtest_with_protected_attributes_on_spark_equals_local(session, decider, tmp_path):
    """Protected columns (an integer column with nulls, a boolean, an age) give the same per-group fairness on Spark as locally."""
    import pyarrow.csv as pacsv

    from engine.batch.backtest import backtest

    src, _ = _credit_csv(tmp_path)
    table = pacsv.read_csv(src, convert_options=pacsv.ConvertOptions(  # typed as a data team's Parquet would be
        true_values=["yes"], false_values=["no"], strings_can_be_null=True))
    n = table.num_rows
    table = table.append_column("group_code", pa.array([None if i % 7 == 0 else i % 3 for i in range(n)], pa.int64()))
    table = table.append_column("flag", pa.array([i % 5 == 0 for i in range(n)]))
    table = table.append_column("applicant_age", table.column("Age"))
    history = tmp_path / "history.parquet"
    pq.write_table(table, history)
    kw = dict(id_column="customer_id", outcome_column="Status", protected=["group_code", "flag"], age="applicant_age")
    local = backtest(decider, "credit_application", ["1", "2"], history, **kw)
    on_spark = backtest(decider, "credit_application", ["1", "2"], history, engine="spark", root=ROOT, **kw)
    assert on_spark.as_dict() == local.as_dict()
    assert local.versions["1"].decided == n and local.versions["2"].failed == 0
    groups = local.fairness()["versions"]["1"]["group_code"]["groups"]
    assert {g["group"] for g in groups} == {"0", "1", "2", "(missing)"}
