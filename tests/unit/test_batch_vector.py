"""The vectorised parts of the batch core: each equals the row-by-row code it replaces, bit for bit."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path

import numpy as np
import pytest

from engine.batch import Decided, decide_rows
from engine.batch.encode import ChunkEncoder
from engine.batch.records import OutputColumns, reasons_json, to_columns, to_record
from engine.batch.run import resolver
from engine.datasets import read_card_payments, read_credit_applications
from engine.runtime.service import load_decider
from engine.types import Reason

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def decider():
    """The bundled policies, loaded as the server loads them."""
    return load_decider(ROOT)


def _derived(decider, flow, version, rows):
    compiled, _ = decider.resolve(flow, version)
    out = []
    for raw in rows:
        values = compiled.validator(raw)
        compiled.derive(values)
        out.append(values)
    return compiled, out


@pytest.mark.parametrize(("flow", "version", "rows"), [
    ("credit_application", "3", lambda: read_credit_applications(ROOT / "data" / "credit_data.csv", 500, integers=False)),
    ("card_payment", "1", lambda: read_card_payments(ROOT / "data" / "card_payments.csv", 500)),
])
def test_chunk_encoding_equals_row_encoding(decider, flow, version, rows):
    """A chunk encoded column by column equals the rows encoded one by one, NaNs in the same places."""
    compiled, values = _derived(decider, flow, version, rows())
    for bound in compiled.models:
        whole = ChunkEncoder.of(bound.model)(values)
        one_by_one = np.concatenate([bound.model.encode(v) for v in values])
        assert whole.dtype == one_by_one.dtype
        assert whole.tobytes() == one_by_one.tobytes()


def test_chunk_encoding_edge_values(decider):
    """Missing values, a Decimal derived feature, -0.0 and LightGBM's near-zero read as the row encoder reads them."""
    compiled, values = _derived(decider, "credit_application", "3",
                                read_credit_applications(ROOT / "data" / "credit_data.csv", 6, integers=False))
    model = compiled.models[0].model
    numeric = [f.name for f in model.features if f.type == "numeric"]
    values[0][numeric[0]] = None
    values[1][numeric[0]] = Decimal("0.1000000000000000055511151231257827")
    values[2][numeric[0]] = -0.0
    values[3][numeric[0]] = 1e-36
    values[4][numeric[0]] = 7  # an int beside floats
    whole = ChunkEncoder.of(model)(values)
    one_by_one = np.concatenate([model.encode(v) for v in values])
    assert whole.tobytes() == one_by_one.tobytes()
    assert math.isnan(whole[0, 0])


def test_reasons_json_equals_json_dumps():
    """The cached reasons column is the text json.dumps writes, contributions read back exactly."""
    reasons = (
        Reason("HIGH_RISK_SCORE", "m", "rule", "RISK-1"),
        Reason("SHORT_EMPLOYMENT", "m", "model", "RISK-1", "seniority", 0.1 + 0.2),
        Reason("X\"Y", "m", "model", "R\\2", "féature", -1.5e-300),
    )
    expected = json.dumps(
        [{"code": r.code, "source": r.source, "rule_id": r.rule_id, "feature": r.feature, "contribution": r.contribution}
         for r in reasons], separators=(",", ":"))
    assert reasons_json(reasons) == expected
    assert reasons_json(reasons) == expected  # from the cache too
    assert json.loads(reasons_json(reasons))[1]["contribution"] == 0.1 + 0.2
    assert reasons_json(()) == "[]"


def test_columns_equal_records(decider):
    """Output columns, transposed, are the records to_record writes row by row (failed rows too)."""
    rows = read_credit_applications(ROOT / "data" / "credit_data.csv", 200, integers=False)
    rows[5] = dict(rows[5], age="old")
    results = decide_rows(resolver(decider, "credit_application"), rows)
    compiled, _ = decider.resolve("credit_application")
    columns = OutputColumns.of([compiled], "id")
    ids = [f"a{i}" for i in range(len(rows))]
    out = to_columns(columns, 11, results, ids)
    assert list(out) == list(columns.names)
    for k, result in enumerate(results):
        assert {n: out[n][k] for n in out} == to_record(columns, 11 + k, result, ids[k])
    assert out["error_code"][5] == "invalid_input"
    assert out["row"][:2] == [11, 12]


def test_shared_resolution_keeps_each_rows_scores(decider):
    """Rows that share their fired rules share action and reasons but keep their own scores and features."""
    rows = read_credit_applications(ROOT / "data" / "credit_data.csv", 300, integers=False)
    results = decide_rows(resolver(decider, "credit_application", "3"), rows)
    compiled, _ = decider.resolve("credit_application", "3")
    by_fired: dict[tuple[str, ...], list[Decided]] = {}
    for raw, result in zip(rows, results, strict=True):
        assert isinstance(result, Decided)
        online = compiled.evaluate(raw)
        assert (result.outcome.action, result.outcome.reasons, result.outcome.fired) == (online.action, online.reasons, online.fired)
        assert dict(result.outcome.scores) == dict(online.scores)
        by_fired.setdefault(tuple(f.id for f in result.outcome.fired), []).append(result)
    shared = max(by_fired.values(), key=len)
    assert len(shared) > 10
    assert len({r.outcome.scores["pd"] for r in shared}) > 1


def _bad_rows():
    """Credit inputs with every kind of bad value a column check must catch, beside good ones."""
    good = read_credit_applications(ROOT / "data" / "credit_data.csv", 8, integers=False)
    return [
        good[0],
        dict(good[1], age=17.5, home="castle"),  # not whole; not an allowed category
        dict(good[2], seniority=-1.0, amount=float("inf")),  # below min; not finite
        {k: v for k, v in good[3].items() if k not in ("price", "time")},  # required fields missing
        dict(good[4], income=2e6, records="perhaps"),  # above max; not a boolean
        dict(good[5], home=" OWNER ", customer_id="  c-1 "),  # cleaned: category spelling, trimmed text
        dict(good[6], age=40, amount=1500),  # ints beside floats: checked cell by cell
        dict(good[7], nickname="x"),  # not a field of the flow
    ]


def test_column_validation_equals_the_validator(decider):
    """Column-wise validation gives the validator's clean values for good rows and leaves exactly the bad ones to it."""
    from engine.batch.validate import validate_columns
    from engine.errors import InvalidInput

    compiled, _ = decider.resolve("credit_application", "3")
    rows = _bad_rows()
    names = dict.fromkeys(k for r in rows for k in r)
    values, bad = validate_columns(compiled.validator, {k: [r.get(k) for r in rows] for k in names}, len(rows))
    for i, raw in enumerate(rows):
        try:
            online = compiled.validator(raw)
        except InvalidInput:
            assert i in bad and values[i] is None
            continue
        assert i not in bad
        assert values[i] == online
        assert [type(v) for v in values[i].values()] == [type(v) for v in online.values()]
    assert bad == [1, 2, 3, 4, 7]


def test_bad_rows_fail_with_the_online_message(decider):
    """A batch row that fails validation carries the exact message and code the online evaluation raises."""
    from engine.errors import InvalidInput

    compiled, _ = decider.resolve("credit_application", "3")
    rows = _bad_rows()
    results = decide_rows(resolver(decider, "credit_application", "3"), rows)
    for raw, result in zip(rows, results, strict=True):
        try:
            online = compiled.evaluate(raw)
        except InvalidInput as exc:
            assert (result.code, result.message) == (exc.code, str(exc))
            continue
        assert isinstance(result, Decided)
        assert (result.outcome.action, result.outcome.reasons) == (online.action, online.reasons)


def test_csv_columns_convert_as_cells():
    """A CSV column converted at once equals its cells converted one by one, under each number convention."""
    from engine.batch.table import ColumnPlan, convert_cell, convert_column

    cases = [
        (ColumnPlan("c", "f", "number", "plain"), ["1", None, "-2.5e3", ".5", "1."]),
        (ColumnPlan("c", "f", "number", "plain"), ["1", "NA", "abc", "1e999", None]),  # falls back cell by cell
        (ColumnPlan("c", "f", "integer", "thousands_comma"), ["1,234", "12", None]),
        (ColumnPlan("c", "f", "number", "decimal_comma"), ["1.234,5", "0,25"]),
        (ColumnPlan("c", "f", "boolean"), ["yes", "No", "TRUE", "maybe", None]),
        (ColumnPlan("c", "f", "category"), ["rent", None, "x"]),
    ]
    for plan, cells in cases:
        got = convert_column(cells, plan)
        want = [convert_cell(c, plan) for c in cells]
        assert got == want and [type(v) for v in got] == [type(v) for v in want]


def test_worker_processes_write_the_same_file(decider, tmp_path):
    """--jobs 2 (forked workers, small chunks so that several are in flight) writes exactly the file one process writes."""
    import pyarrow.parquet as pq

    from engine.batch.run import decide_file

    src = tmp_path / "history.csv"
    lines = (ROOT / "data" / "credit_data.csv").read_text().splitlines()[:701]
    cells = lines[5].split(",")
    cells[3] = "old"  # Time: not a number, so this row fails validation
    lines[5] = ",".join(cells)
    src.write_text("\n".join(lines) + "\n")
    one = decide_file(decider, "credit_application", src, tmp_path / "one.parquet", chunk_rows=64)
    two = decide_file(decider, "credit_application", src, tmp_path / "two.parquet", chunk_rows=64, jobs=2)
    assert pq.read_table(tmp_path / "one.parquet").equals(pq.read_table(tmp_path / "two.parquet"))
    assert one.to_dict() | {"seconds": 0, "rows_per_second": 0} == two.to_dict() | {"seconds": 0, "rows_per_second": 0}
    assert one.rows == 700 and one.failed == 1
