"""The batch core, its tables and ``verdict batch``: one decision per row, equal to the online one."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from engine.batch import Decided, Failed, decide_rows
from engine.batch.run import decide_file, resolver
from engine.batch.table import InputTable, TableFormatError, match_columns
from engine.cli import main
from engine.datasets import read_card_payments, read_credit_applications
from engine.runtime.service import load_decider
from engine.tabular import read_chunks, read_rows

ROOT = Path(__file__).resolve().parents[2]
CREDIT_CSV = ROOT / "data" / "credit_data.csv"
CARD_CSV = ROOT / "data" / "card_payments.csv"


@pytest.fixture(scope="module")
def decider():
    """The bundled policies, loaded as the server loads them."""
    return load_decider(ROOT)


def _same(batch: Decided, online) -> None:
    a, b = batch.outcome, online
    assert a.action == b.action
    assert a.reasons == b.reasons  # codes, sources, rules, features and contributions, exactly
    assert a.fired == b.fired
    assert dict(a.scores) == dict(b.scores)


@pytest.mark.parametrize(("flow", "version", "rows"), [
    ("credit_application", "1", lambda: read_credit_applications(CREDIT_CSV, 600, integers=False)),
    ("credit_application", "2", lambda: read_credit_applications(CREDIT_CSV, 600, integers=False)),
    ("card_payment", "1", lambda: read_card_payments(CARD_CSV, 600)),  # the CSV's rows are version 1's inputs
])
def test_batch_equals_one_by_one(decider, flow, version, rows):
    """Scoring a chunk at once and batched TreeSHAP give every row exactly the outcome of CompiledFlow.evaluate."""
    inputs = rows()
    results = decide_rows(resolver(decider, flow, version), inputs)
    assert len(results) == len(inputs)
    explained = 0
    for raw, result in zip(inputs, results, strict=True):
        assert isinstance(result, Decided), result
        compiled, _ = decider.resolve(flow, version, raw)
        _same(result, compiled.evaluate(raw))
        explained += any(r.source == "model" for r in result.outcome.reasons)
    if flow == "credit_application":
        assert explained > 10  # the batched explanations were exercised


def test_batch_routes_like_the_service(tmp_path):
    """Without --version a row goes where the service routes it: the challenger takes its customers."""
    from tests.unit.policy_roots import routed_copy

    decider = load_decider(routed_copy(tmp_path))  # credit_application 3 live, 4 its challenger
    rows = [dict(r, customer_id=f"c{i}") for i, r in enumerate(read_credit_applications(CREDIT_CSV, 300, integers=False))]
    results = decide_rows(resolver(decider, "credit_application"), rows)
    for raw, result in zip(rows, results, strict=True):
        assert isinstance(result, Decided)
        assert (result.flow.version, result.route) == (lambda c, r: (c.version, r))(*decider.resolve("credit_application", "", raw))
    assert {r.route for r in results} == {"live", "challenger"}


def test_bad_rows_fail_alone_naming_every_field(decider):
    """A row with several bad fields fails with each named; the rows around it are decided."""
    good = read_credit_applications(CREDIT_CSV, 2, integers=False)
    bad = dict(good[0], age="old", home="castle")
    del bad["amount"]
    results = decide_rows(resolver(decider, "credit_application", "1"), [good[0], bad, good[1]])
    assert isinstance(results[0], Decided) and isinstance(results[2], Decided)
    failed = results[1]
    assert isinstance(failed, Failed) and failed.code == "invalid_input"
    for name in ("age", "home", "amount"):
        assert name in failed.message


def _write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_cli_csv_with_bad_rows(tmp_path, capsys):
    """verdict batch writes one row per input row, the bad ones with their error, counts them and exits 1."""
    header = "id,Seniority,Home,Time,Age,Marital,Records,Job,Expenses,Income,Assets,Debt,Amount,Price,Status\n"
    rows = [
        "a1,9,rent,60,30,married,no,freelance,73,129,0,0,800,846,good",
        "a2,x,rent,60,30,married,maybe,freelance,73,129,0,0,800,846,good",  # seniority not a number, records not yes/no
        "a3,10,owner,36,46,married,yes,freelance,90,200,3000,0,2000,2985,bad",
        "a4,1,rent,60,17,single,no,partime,60,90,0,0,1400,,good",  # price missing (required)
    ]
    src = _write_csv(tmp_path / "in.csv", header + "\n".join(rows) + "\n")
    out = tmp_path / "out.csv"
    code = main(["batch", "credit_application", "--input", str(src), "--output", str(out), "--id-column", "id",
                 "--version", "1", "--root", str(ROOT)])
    summary = json.loads(capsys.readouterr().out)
    assert code == 1
    assert (summary["rows"], summary["decided"], summary["failed"]) == (4, 2, 2)
    assert summary["errors"] == {"invalid_input": 2}
    assert summary["ignored_columns"] == ["Status"]
    table = pcsv.read_csv(out).to_pylist()
    assert [r["row"] for r in table] == [1, 2, 3, 4]
    assert [r["id"] for r in table] == ["a1", "a2", "a3", "a4"]
    assert table[0]["action"] in ("APPROVE", "REVIEW", "DECLINE") and not table[0]["error"]
    assert "seniority" in table[1]["error"] and "records" in table[1]["error"] and not table[1]["action"]
    assert "price" in table[3]["error"] and "is required" in table[3]["error"]


def test_cli_parquet_round_trip_is_exact(tmp_path, decider, capsys):
    """Parquet in, Parquet and CSV out: scores and contributions read back bit for bit equal to evaluate."""
    inputs = read_credit_applications(CREDIT_CSV, 300, integers=False)
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(inputs), src)
    for out in (tmp_path / "out.parquet", tmp_path / "out.csv"):
        assert main(["batch", "credit_application", "-i", str(src), "-o", str(out), "--version", "1",
                     "--chunk-rows", "64", "--root", str(ROOT)]) == 0
        capsys.readouterr()
        table = (pq.read_table(out) if out.suffix == ".parquet" else pcsv.read_csv(out)).to_pylist()
        compiled, _ = decider.resolve("credit_application", "1")
        assert len(table) == len(inputs)
        for raw, rec in zip(inputs, table, strict=True):
            online = compiled.evaluate(raw)
            assert rec["action"] == online.action.name
            assert rec["score_pd"] == online.scores["pd"]
            assert json.loads(rec["reasons"]) == [
                {"code": r.code, "source": r.source, "rule_id": r.rule_id, "feature": r.feature,
                 "contribution": r.contribution} for r in online.reasons
            ]
            assert rec["fired_rules"] == ";".join(f.id for f in online.fired)


def test_parquet_nulls_and_nan_are_missing(tmp_path, decider):
    """A Parquet null or NaN is a missing value, exactly as a field left out of a request."""
    raw = read_credit_applications(CREDIT_CSV, 1, integers=False)[0]
    rows = [dict(raw, assets=None), dict(raw, assets=math.nan)]
    src = tmp_path / "in.parquet"
    pq.write_table(pa.Table.from_pylist(rows), src)
    fields = decider.resolve("credit_application", "1")[0].validator.fields
    chunk = next(InputTable(src, fields).chunks())
    expected = {k: v for k, v in raw.items() if k != "assets"}
    assert chunk.rows == [expected, expected]


def test_columns_match_fields_ignoring_case():
    """Seniority feeds seniority; a label column is ignored; an exact name wins over a case variant."""
    fields = {"seniority": 1, "age": 1}
    used, ignored = match_columns(["Seniority", "age", "AGE", "Status", "id"], fields, "id")
    assert used == {"Seniority": "seniority", "age": "age"}
    assert ignored == ["AGE", "Status"]


def test_unknown_format_and_flow_are_usage_errors(tmp_path, capsys):
    """An unknown suffix, flow or version exits 2 with a message naming it."""
    src = _write_csv(tmp_path / "in.json", "{}")
    assert main(["batch", "credit_application", "-i", str(src), "-o", str(tmp_path / "o.csv"), "--root", str(ROOT)]) == 2
    assert "unknown table format .json" in capsys.readouterr().err
    good = _write_csv(tmp_path / "in.csv", "age\n30\n")
    assert main(["batch", "nope", "-i", str(good), "-o", str(tmp_path / "o.csv"), "--root", str(ROOT)]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["batch", "credit_application", "-i", str(good), "-o", str(tmp_path / "o.csv"), "--version", "9",
                 "--root", str(ROOT)]) == 2
    assert "9" in capsys.readouterr().err


def test_missing_id_column_is_named(tmp_path, decider):
    """An --id-column the file lacks is refused naming it and the columns there are."""
    src = _write_csv(tmp_path / "in.csv", "age,income\n30,100\n")
    with pytest.raises(TableFormatError, match=r"no id column 'key'.*age, income"):
        decide_file(decider, "credit_application", src, tmp_path / "o.csv", id_column="key")


@pytest.mark.parametrize("size", [1, 7, 1000, 10_000])
def test_read_chunks_equals_read_rows(size):
    """The streamed reader gives the same header, rows and line numbers as read_rows, chunk by chunk."""
    whole = read_rows(CARD_CSV)
    chunks = list(read_chunks(CARD_CSV, size=min(size, 5000)))
    assert all(c.header == whole.header and c.delimiter == whole.delimiter for c in chunks)
    assert all(len(c.rows) <= size for c in chunks)
    assert tuple(r for c in chunks for r in c.rows) == whole.rows
    assert tuple(n for c in chunks for n in c.lines) == whole.lines


@pytest.mark.parametrize(("data", "encoding"), [
    (b"a;b\n1;2\n\"x;y\";3\n", "utf-8"),
    ("\ufeffa,b\nä,2\n".encode("utf-8"), "utf-8-sig"),
    ("a,b\né,2\n".encode("cp1252"), "cp1252"),
    ("a\tb\n1\t2\n".encode("utf-16"), "utf-16"),
])
def test_read_chunks_decodes_as_read_rows(tmp_path, data, encoding):
    """Encoding and delimiter are found as read_rows finds them, in a streaming pass."""
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    whole = read_rows(path)
    (chunk,) = read_chunks(path, size=10)
    assert (chunk.encoding, chunk.delimiter, chunk.header, chunk.rows) == (encoding, whole.delimiter, whole.header, whole.rows)
