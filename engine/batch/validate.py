"""A chunk's inputs validated and cleaned column by column, with the online validator's values and errors.

``validate_columns(validator, columns, rows)`` cleans each field's column at once and returns
every good row's clean values (the dict ``Validator.__call__`` returns for it: every declared
field, an absent one as its default or None) and the rows that are not good. Those rows are then
validated by the validator itself, row by row, so that a bad row's ``InvalidInput`` is the
online one, every bad field named in the same words (a test compares them); only the check of
which rows are good is vectorised.

How a column is checked: a number or integer field whose cells are all floats (CSV cells, a
protobuf Struct's numbers, a Parquet double column) with numpy: finite, within the field's bounds
(``engine.runtime.validation.field_bounds``: the declared min/max, and ±(2**53 - 1) for integers)
and whole for an integer field, whose clean value is then the ``int``; any other column cell by
cell through ``Validator.cleaner`` (the very check of validation: trims text, folds case, a
category's allowed spelling), a refused cell marking its row. A required field's missing cell marks
its row; a column that is not a field of this version marks the rows where it has a value (the
validator refuses or ignores it, by the version's ``unknown_fields``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.runtime.validation import Validator, field_bounds

__all__ = ["validate_columns"]

_FLOATS = frozenset({float, type(None)})


def validate_columns(
    validator: Validator, columns: Mapping[str, Sequence[Any]], rows: int,
) -> tuple[list[dict[str, Any] | None], list[int]]:
    """(clean values per row, None for a row that is not good; the indexes of those rows).

    ``columns``: field name -> one value per row (None: missing). A value in a column that is not
    a field of this version leaves its row to the validator (which refuses it or not, by the
    version's ``unknown_fields``).
    """
    bad = np.zeros(rows, dtype=bool)
    names: list[str] = []
    clean: list[Sequence[Any]] = []
    for name, spec in validator.fields.items():
        column = columns.get(name)
        default = validator.cleaner(name)(spec.default) if spec.default is not None else None
        if column is None:
            if spec.required:
                bad[:] = True
            names.append(name)
            clean.append([default] * rows)
            continue
        values, refused = _clean_column(validator, name, spec, column, default)
        bad |= refused
        names.append(name)
        clean.append(values)
    for name, column in columns.items():
        if name not in validator.fields:
            bad |= np.array([v is not None for v in column], dtype=bool)
    out: list[dict[str, Any] | None] = [dict(zip(names, row, strict=True)) for row in zip(*clean, strict=True)]
    if not names:
        out = [{} for _ in range(rows)]
    failed = np.flatnonzero(bad).tolist()
    for i in failed:
        out[i] = None
    return out, failed


def _clean_column(
    validator: Validator, name: str, spec: Any, column: Sequence[Any], default: Any,
) -> tuple[Sequence[Any], np.ndarray]:
    """(clean values, refused mask) of one field's column; a missing cell is its default (refused when required)."""
    missing = np.array([v is None for v in column], dtype=bool)
    if spec.type in ("number", "integer") and set(map(type, column)) <= _FLOATS:
        return _numbers(spec, column, missing, default)
    clean = validator.cleaner(name)
    values = [default if v is None else clean(v) for v in column]
    refused = np.array([c is None for c in values], dtype=bool) & ~missing
    if spec.required:
        refused |= missing
    return values, refused


def _numbers(spec: Any, column: Sequence[Any], missing: np.ndarray, default: Any) -> tuple[list[Any], np.ndarray]:
    """A column of floats (and None) for a number or integer field: the checks of validation, vectorised."""
    a = np.array(column, dtype=np.float64)  # None -> NaN
    lo, hi = field_bounds(spec)
    with np.errstate(invalid="ignore"):
        refused = ~np.isfinite(a)
        if lo is not None:
            refused |= a < lo
        if hi is not None:
            refused |= a > hi
        if spec.type == "integer":
            refused |= np.floor(a) != a
    refused &= ~missing
    if spec.required:
        refused |= missing
    if spec.type == "integer":
        whole = np.where(refused | missing, 0, a).astype(np.int64).tolist()  # exact: |a| <= 2**53 - 1 where used
        values: list[Any] = whole
    else:
        values = list(column)
    if missing.any():
        for i in np.flatnonzero(missing).tolist():
            values[i] = default
    return values, refused
