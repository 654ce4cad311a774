"""load_outcomes reads outcomes files through the one CSV reader: encodings, delimiters, quoting, file:line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.audit.replay import OutcomesError, load_outcomes
from engine.datasets import read_card_payments, read_credit_applications

ROOT = Path(__file__).resolve().parents[2]


def test_outcomes_from_a_spreadsheet_export(tmp_path: Path) -> None:
    """A cp1252 file with a BOM-free semicolon layout, padded header and 1.0/0.0 labels reads like the plain one."""
    path = tmp_path / "o.csv"
    path.write_bytes(" Decision_ID ; Outcome \nné-1;BAD\nb;  good \nc;1.0\nd;0\n".encode("cp1252"))
    assert load_outcomes(path) == {"né-1": True, "b": False, "c": True, "d": False}


def test_outcomes_with_a_bom_and_quoted_ids(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark does not hide the id column; quoted ids with commas are one cell."""
    path = tmp_path / "o.csv"
    path.write_bytes(b'\xef\xbb\xbfrequest_id,label\n"a,1",bad\nb,good\n')
    assert load_outcomes(path) == {"a,1": True, "b": False}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("decision_id,label\na,bad\nb,maybe\n", "o.csv:3: outcome 'maybe' is neither good nor bad"),
        ("decision_id,label\na,bad\nb,good,extra\n", "o.csv:3: this row has 3 cells"),
        ("decision_id,label\n", "no data rows"),
    ],
)
def test_outcome_errors_name_file_and_line(tmp_path: Path, text: str, needle: str) -> None:
    """An unknown label, a ragged row or an empty file is an OutcomesError saying where."""
    path = tmp_path / "o.csv"
    path.write_text(text)
    with pytest.raises(OutcomesError, match=needle):
        load_outcomes(path)


def test_bundled_data_sets_read_the_same_through_any_layout(tmp_path: Path) -> None:
    """The bundled CSVs, rewritten with a BOM and semicolons, give the same flow inputs (types included)."""
    for name, read in (("credit_data.csv", read_credit_applications), ("card_payments.csv", read_card_payments)):
        lines = (ROOT / "data" / name).read_text().splitlines()[:200]
        assert not any(";" in line or '"' in line for line in lines)
        copy = tmp_path / name
        copy.write_bytes(b"\xef\xbb\xbf" + "\n".join(line.replace(",", ";") for line in lines).encode() + b"\n")
        original, rewritten = read(ROOT / "data" / name, 199), read(copy)
        assert rewritten == original
        assert [type(v) for r in rewritten for v in r.values()] == [type(v) for r in original for v in r.values()]
