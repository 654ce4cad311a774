"""A training CSV as typed columns, read by the one reader (``engine.tabular``).

Empty cells are missing (None). Columns are typed by ``engine.tabular.columns``: boolean (every
cell yes/no or true/false, any case), numeric (every cell a number under one convention: plain,
``1,234.5`` or ``1.234,5``; NA-like cells missing), otherwise categorical (strings). A column that
is mostly numbers but not wholly, or whose numbers are ambiguous, carries a ``problem`` and is
refused by training if used. Values keep their Python type (float, bool, str or None) so that
derived features and the model encoders see what a flow sees at run time.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.models.encoding import FeatureSpec
from engine.tabular import NUMBER_FORMATS, ColumnType, RawTable, TableError, convert, read_rows, type_columns
from engine.tabular.numbers import fitting_conventions
from engine.training.errors import DataError

__all__ = ["Table", "infer_type", "read_csv", "snake_case", "spec_for_column"]


@dataclass(frozen=True)
class Table:
    """Typed columns of a CSV: ``columns[name][row]`` is float, bool, str or None."""

    path: Path
    names: tuple[str, ...]
    types: Mapping[str, str]
    columns: Mapping[str, list[object]]
    raw: Mapping[str, list[str | None]]
    typing: Mapping[str, ColumnType]
    source: RawTable

    @property
    def rows(self) -> int:
        return len(next(iter(self.columns.values()))) if self.columns else 0

    def records(self, names: Iterable[str] | None = None) -> list[dict[str, object]]:
        """One dict per row (selected columns), as a flow would receive them."""
        keys = list(names) if names is not None else list(self.names)
        cols = [self.columns[k] for k in keys]
        return [dict(zip(keys, vals, strict=True)) for vals in zip(*cols, strict=True)]


def infer_type(values: Sequence[str | None]) -> str:
    """numeric, boolean or categorical for one column of raw cells (None = empty), on its own.

    The column rule of ``engine.tabular.columns`` without a file around it: a mixed or ambiguous
    column reads here as categorical.
    """
    present = [v for v in values if v is not None]
    if not present:
        return "numeric"
    lowered = {v.lower() for v in present}
    if lowered <= {"yes", "no"} or lowered <= {"true", "false"}:
        return "boolean"
    fits = fitting_conventions(present, NUMBER_FORMATS)
    values_agree = len({tuple(v) for v in fits.values()}) == 1
    return "numeric" if fits and ("plain" in fits or len(fits) == 1 or values_agree) else "categorical"


def read_csv(path: Path, *, force_categorical: Iterable[str] = (), number_format: str = "auto") -> Table:
    """Read ``path`` into a typed :class:`Table`; raises DataError (with the reader's code) when unreadable."""
    try:
        source = read_rows(Path(path))
    except TableError as exc:
        raise DataError(str(exc), exc.code) from None
    names = source.header
    forced = set(force_categorical)
    unknown = forced - set(names)
    if unknown:
        raise DataError(f"{path}: --categorical names unknown columns: {', '.join(sorted(unknown))}",
                        "data_unknown_column")
    typing = type_columns(source, categorical=forced, number_format=number_format)
    raw = {n: source.column(n) for n in names}
    columns = {n: convert(raw[n], typing[n]) for n in names}
    types = {n: typing[n].kind for n in names}
    return Table(path=Path(path), names=names, types=types, columns=columns, raw=raw, typing=typing, source=source)


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
