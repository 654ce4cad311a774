"""Typing a CSV's columns: boolean, numeric (under one number convention) or categorical.

The rule, per column, over its non-empty cells (``type_columns``):

1. every cell is yes/no, or every cell is true/false (any case): **boolean**;
2. every cell is a number under ONE convention of ``engine.tabular.numbers`` (cells ``NA``,
   ``N/A``, ``NaN``, ``null``, ``None`` or ``-`` in any case count as missing in such a column):
   **numeric**. When more than one convention fits and they disagree (``"1,234"``), the column
   takes the file's convention (the one its unambiguous columns use), else ``plain`` if it fits,
   else it is **ambiguous** (a problem: say ``number_format``);
3. at least ``MOSTLY_NUMERIC`` (90%) of the cells are numbers under one convention but some are
   not: **mixed**, a problem naming the column and its first offending cells, never silently
   categorical (say it is categorical to read it as text);
4. anything else: **categorical** (the trimmed text, case kept).

A problem does not stop the reading: it is recorded on the column, and whoever uses the column
refuses it (training refuses a problem column it would train on, naming every one at once).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.tabular.numbers import NUMBER_FORMATS, fitting_conventions, parse_number
from engine.tabular.reader import RawTable

__all__ = ["MISSING_MARKERS", "MOSTLY_NUMERIC", "ColumnType", "convert", "type_column", "type_columns"]

MISSING_MARKERS = frozenset({"na", "n/a", "nan", "null", "none", "-"})
MOSTLY_NUMERIC = 0.9  # share of number cells from which a column that is not wholly numbers is refused
_BOOL_TRUE = frozenset({"yes", "true"})
_SHOWN = 5  # offending cells quoted in a message


@dataclass(frozen=True)
class ColumnType:
    """How a column is read: ``kind``, the number convention of a numeric column, and any problem."""

    kind: str  # numeric | boolean | categorical
    number_format: str | None = None
    missing_markers: int = 0  # NA-like cells read as missing (numeric columns)
    problem: str | None = None  # why the column cannot be used as it is (then kind is categorical)
    problem_code: str | None = None  # column_mixed | number_ambiguous


def _agree(fits: Mapping[str, list[float]]) -> bool:
    values = list(fits.values())
    return all(v == values[0] for v in values[1:])


def _unique_separator_convention(fits: Mapping[str, list[float]]) -> str | None:
    """The separator convention a column proves (only one fits, plain does not), else None."""
    if "plain" in fits or len(fits) != 1:
        return None
    return next(iter(fits))


def _offenders(raw: RawTable, cells: Sequence[str | None], convention: str) -> list[str]:
    out = []
    for i, cell in enumerate(cells):
        if cell is not None and cell.lower() not in MISSING_MARKERS and parse_number(cell, convention) is None:
            out.append(f"line {raw.lines[i]} {cell!r}")
            if len(out) == _SHOWN:
                break
    return out


def type_column(  # noqa: C901 (one decision list over the column kinds, in the order docs/training.md gives)
    name: str, raw: RawTable, cells: Sequence[str | None], fits: Mapping[str, list[float]],
    file_convention: str | None, allowed: Sequence[str],
) -> ColumnType:
    """The type of one column, given the conventions that fit all its number cells (see the module rule)."""
    distinct = Counter(c for c in cells if c is not None)
    if not distinct:
        return ColumnType("numeric")
    lowered = {c.lower() for c in distinct}
    if lowered <= {"yes", "no"} or lowered <= {"true", "false"}:
        return ColumnType("boolean")
    markers = sum(n for c, n in distinct.items() if c.lower() in MISSING_MARKERS)
    total = sum(distinct.values()) - markers
    if fits and total:
        if len(fits) == 1 or _agree(fits):
            return ColumnType("numeric", next(iter(fits)), markers)
        for choice in (file_convention, "plain"):
            if choice in fits:
                return ColumnType("numeric", choice, markers)
        example = next((c for c in distinct if "," in c), next(iter(distinct)))
        return ColumnType(
            "categorical", problem_code="number_ambiguous",
            problem=(f"column {name!r}: numbers like {example!r} read differently under "
                     f"{' and '.join(fits)} and nothing in the file decides; say which (number_format)"),
        )
    if not total:  # only NA-like cells: text
        return ColumnType("categorical")
    counts = [(c, n) for c, n in distinct.items() if c.lower() not in MISSING_MARKERS]
    allowed_bad = (1 - MOSTLY_NUMERIC) * total
    best: tuple[int, str] | None = None  # fewest cells that are not numbers, and under which convention
    for convention in allowed:
        bad = 0
        for c, n in counts:  # stops as soon as too many cells are not numbers: cheap for text columns
            if parse_number(c, convention) is None:
                bad += n
                if bad > allowed_bad:
                    break
        if bad <= allowed_bad and (best is None or bad < best[0]):
            best = (bad, convention)
    if best is None:
        return ColumnType("categorical")
    bad, convention = best
    return ColumnType(
        "categorical", problem_code="column_mixed",
        problem=(f"column {name!r}: {total - bad} of {total} cells are numbers ({convention}) but "
                 f"{bad} are not: {', '.join(_offenders(raw, cells, convention))}; fix or blank those "
                 "cells, or say the column is categorical"),
    )


def type_columns(
    raw: RawTable, *, categorical: Iterable[str] = (), number_format: str = "auto",
) -> dict[str, ColumnType]:
    """The type of every column of ``raw``; ``categorical`` columns are read as text whatever they hold.

    ``number_format`` is ``auto`` (detected per column, see the module rule) or one of
    ``NUMBER_FORMATS`` (every numeric column follows it). Raises ValueError for another value.
    """
    if number_format != "auto" and number_format not in NUMBER_FORMATS:
        raise ValueError(f"number format must be auto or one of {', '.join(NUMBER_FORMATS)}, not {number_format!r}")
    allowed = NUMBER_FORMATS if number_format == "auto" else (number_format,)
    forced = set(categorical)
    cells = {n: raw.column(n) for n in raw.header}
    fits = {}
    for n in raw.header:
        if n in forced:
            continue
        numbers = [c for c in cells[n] if c is not None and c.lower() not in MISSING_MARKERS]
        fits[n] = fitting_conventions(numbers, allowed) if numbers else {}
    proven = {c for f in fits.values() if (c := _unique_separator_convention(f)) is not None}
    file_convention = next(iter(proven)) if len(proven) == 1 else None
    return {
        n: ColumnType("categorical") if n in forced else type_column(n, raw, cells[n], fits[n], file_convention, allowed)
        for n in raw.header
    }


def convert(cells: Sequence[str | None], ctype: ColumnType) -> list[object]:
    """The column's values as Python values: float, bool, str, or None for missing."""
    if ctype.kind == "numeric":
        fmt = ctype.number_format or "plain"
        if ctype.missing_markers:
            return [None if c is None or c.lower() in MISSING_MARKERS else parse_number(c, fmt) for c in cells]
        if fmt == "plain":  # every cell was checked by type_columns: float() reads plain numbers exactly
            return [None if c is None else float(c) for c in cells]
        return [None if c is None else parse_number(c, fmt) for c in cells]
    if ctype.kind == "boolean":
        return [None if c is None else c.lower() in _BOOL_TRUE for c in cells]
    return list(cells)
