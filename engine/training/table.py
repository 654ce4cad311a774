"""Reading a tabular CSV into typed columns, with type inference.

Empty cells are missing (None). A column whose present values are all yes/no or true/false
(any case) is boolean; one whose present values all parse as numbers is numeric; any other
column is categorical (strings). Values keep their Python type (float, bool, str or None) so
that derived features and the model encoders see what a flow sees at run time.
"""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.models import FeatureSpec
from engine.training.errors import DataError

__all__ = ["Table", "infer_type", "read_csv", "snake_case", "spec_for_column"]

_BOOL_TRUE = frozenset({"yes", "true"})


@dataclass(frozen=True)
class Table:
    """Typed columns of a CSV: ``columns[name][row]`` is float, bool, str or None."""

    path: Path
    names: tuple[str, ...]
    types: Mapping[str, str]
    columns: Mapping[str, list[object]]
    raw: Mapping[str, list[str | None]]

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def records(self, names: Iterable[str] | None = None) -> list[dict[str, object]]:
        """One dict per row (selected columns), as a flow would receive them."""
        keys = list(names) if names is not None else list(self.names)
        cols = [self.columns[k] for k in keys]
        return [dict(zip(keys, vals, strict=True)) for vals in zip(*cols, strict=True)]


def _is_number(text: str) -> bool:
    try:
        v = float(text)
    except ValueError:
        return False
    return not math.isinf(v)


def infer_type(values: Sequence[str | None]) -> str:
    """numeric, boolean or categorical for a column of raw cells (None = empty)."""
    present = {v for v in values if v is not None}
    if not present:
        return "numeric"
    lowered = {v.lower() for v in present}
    if lowered <= {"yes", "no"} or lowered <= {"true", "false"}:
        return "boolean"
    if all(_is_number(v) for v in present):
        return "numeric"
    return "categorical"


def _convert(values: Sequence[str | None], kind: str) -> list[object]:
    if kind == "numeric":
        return [None if v is None else float(v) for v in values]
    if kind == "boolean":
        return [None if v is None else v.lower() in _BOOL_TRUE for v in values]
    return list(values)


def read_csv(path: Path, *, force_categorical: Iterable[str] = ()) -> Table:
    """Read ``path`` (UTF-8 CSV with a header) into a typed :class:`Table`."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            body = [row for row in reader if row and any(cell.strip() for cell in row)]
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file", "data_missing") from exc
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text: {exc}", "data_unreadable") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not valid CSV: {exc}", "data_unreadable") from exc
    if not header or not any(h.strip() for h in header):
        raise DataError(f"{path}: the file is empty (no header row)", "data_empty")
    if not body:
        raise DataError(f"{path}: the file has a header but no data rows", "data_empty")
    names = tuple(h.strip() for h in header)
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise DataError(f"{path}: duplicate column names: {', '.join(dupes)}", "data_bad_header")
    for i, row in enumerate(body, start=2):
        if len(row) != len(names):
            raise DataError(
                f"{path}: row {i} has {len(row)} cells, the header has {len(names)}", "data_ragged"
            )
    forced = set(force_categorical)
    unknown = forced - set(names)
    if unknown:
        raise DataError(f"{path}: --categorical names unknown columns: {', '.join(sorted(unknown))}", "data_unknown_column")
    raw: dict[str, list[str | None]] = {}
    for j, name in enumerate(names):
        raw[name] = [(cell.strip() or None) for cell in (row[j] for row in body)]
    types = {n: ("categorical" if n in forced else infer_type(raw[n])) for n in names}
    columns = {n: _convert(raw[n], types[n]) for n in names}
    return Table(path=path, names=names, types=types, columns=columns, raw=raw)


def spec_for_column(name: str, kind: str, values: Sequence[object]) -> FeatureSpec:
    """The feature spec of one column; categories ordered by frequency, then by name."""
    if kind != "categorical":
        return FeatureSpec(name, kind)
    counts = Counter(v for v in values if v is not None)
    cats = tuple(sorted(counts, key=lambda c: (-counts[c], str(c))))
    return FeatureSpec(name, kind, tuple(str(c) for c in cats))


def snake_case(name: str) -> str:
    """A column name as a feature name: ``Loan Amount`` -> ``loan_amount``, ``DebtRatio`` -> ``debt_ratio``."""
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name.strip())
    text = re.sub(r"[^0-9a-zA-Z]+", "_", text).strip("_").lower()
    if not text:
        return "feature"
    return text if not text[0].isdigit() else f"f_{text}"
