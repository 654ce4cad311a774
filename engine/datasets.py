"""The bundled example data (data/*.csv) read as flow inputs: one reader for tests, benchmarks and tools.

Read by the one CSV reader (``engine.tabular.read_rows``). Cells that are empty are left out (a
missing optional field), labels are dropped, columns become the flows' snake_case field names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.tabular import parse_number, read_rows

__all__ = ["CREDIT_INTEGER_COLUMNS", "read_card_payments", "read_credit_applications"]

CREDIT_INTEGER_COLUMNS = frozenset({"seniority", "time", "age"})
_CREDIT_CATEGORIES = frozenset({"home", "marital", "job"})


def read_credit_applications(path: Path, limit: int | None = None, *, integers: bool = True) -> list[dict[str, Any]]:
    """Rows of credit_data.csv as credit_application inputs (``Status`` dropped).

    ``records`` becomes a boolean, the categories stay text, the rest are numbers: whole
    numbers for seniority, time and age when ``integers`` (as a JSON client would send them),
    otherwise floats (as a protobuf Struct carries every number).
    """
    table = read_rows(Path(path), limit=limit)
    names = [column.lower() for column in table.header]
    rows: list[dict[str, Any]] = []
    for cells in table.rows:
        row: dict[str, Any] = {}
        for name, cell in zip(names, cells, strict=True):
            if name == "status" or cell is None:
                continue
            if name == "records":
                row[name] = cell == "yes"
            elif name in _CREDIT_CATEGORIES:
                row[name] = cell
            elif integers and name in CREDIT_INTEGER_COLUMNS:
                row[name] = int(float(cell))
            else:
                row[name] = float(cell)
        rows.append(row)
    return rows


def read_card_payments(path: Path, limit: int | None = None) -> list[dict[str, Any]]:
    """Rows of card_payments.csv as card_payment inputs (``is_fraud`` dropped).

    ``true``/``false`` become booleans, numbers become floats, anything else stays text.
    """
    table = read_rows(Path(path), limit=limit)
    rows: list[dict[str, Any]] = []
    for cells in table.rows:
        row: dict[str, Any] = {}
        for name, cell in zip(table.header, cells, strict=True):
            if name == "is_fraud" or cell is None:
                continue
            if cell in ("true", "false"):
                row[name] = cell == "true"
            else:
                number = parse_number(cell, "plain")
                row[name] = cell if number is None else number
        rows.append(row)
    return rows
