"""From a CSV and training options to an encoded matrix: target, feature selection, derived features.

The target must have exactly two labels after the reading every column gets (``engine.tabular``:
trimmed; yes/no and true/false read in any case; numbers by value, so ``1`` and ``1.0`` are one
label); ``Bad`` and ``bad`` are two labels and a third refuses the target (``target_not_binary``).
A selected column the reader could not type (mostly numbers, or ambiguous numbers) is refused,
naming every such column; a column that identifies rows (``engine.training.identifiers``) is left
out unless kept.

The matrix is built with the runtime's own encoders (``engine.models.encoding.make_encoder``), so a row
encoded at serving time is exactly the row the model was trained and parity-checked on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.models.encoding import FeatureSpec, make_encoder
from engine.tabular import parse_number
from engine.training.derived import DerivedFeature, add_derived
from engine.training.errors import DataError
from engine.training.identifiers import identifier_reason
from engine.training.table import Table, read_csv, snake_case, spec_for_column

__all__ = ["DataOptions", "Prepared", "card_data_notes", "encode_matrix", "prepare", "reading_messages"]


@dataclass(frozen=True)
class DataOptions:
    """Which data, target and features to train on."""

    data: Path
    target: str  # "" for unsupervised models (no target)
    positive: str
    features: tuple[str, ...] | None = None  # CSV columns to use; None = every column but target/drop
    drop: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()  # CSV columns to treat as categorical whatever they look like
    derived: tuple[DerivedFeature, ...] = ()
    keep: tuple[str, ...] = ()  # CSV columns to train on even when they look like row identifiers
    number_format: str = "auto"  # auto, plain, thousands_comma or decimal_comma (engine.tabular.numbers)
    protected: tuple[str, ...] = ()  # CSV columns kept out of the features, read only to report fairness per group
    age: str | None = None  # CSV column of the applicant's age: a feature, also reported per age band (Reg B)


@dataclass(frozen=True)
class Prepared:
    """The encoded training matrix with everything the card records about it."""

    table: Table
    x: np.ndarray  # (rows, n) float32
    y: np.ndarray  # (rows,) int8 0/1
    specs: tuple[FeatureSpec, ...]
    columns: Mapping[str, str]  # feature name -> CSV column (or "derived: formula")
    dropped_missing_target: int
    labels: Mapping[str, int]
    left_out: Mapping[str, str] = field(default_factory=dict)  # CSV column -> why it looks like an identifier
    attributes: Mapping[str, list[object]] = field(default_factory=dict)  # protected/age column -> value per row

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    @property
    def categorical_indices(self) -> tuple[int, ...]:
        return tuple(i for i, s in enumerate(self.specs) if s.type == "categorical")


def encode_matrix(specs: Sequence[FeatureSpec], records: Sequence[Mapping[str, object]]) -> np.ndarray:
    """Encode records into a (rows, n) float32 matrix with the runtime's encoders."""
    encoders = [(s.name, make_encoder(s)) for s in specs]
    x = np.empty((len(records), len(specs)), dtype=np.float32)
    for j, (name, enc) in enumerate(encoders):
        x[:, j] = [enc(r.get(name)) for r in records]
    return x


def _label_value(text: str, kind: str, number_format: str | None) -> object:
    """A label as the reader types the target column: a number, a boolean or the trimmed text."""
    text = text.strip()
    if kind == "numeric":
        number = parse_number(text, number_format or "plain")
        return number if number is not None else text
    if kind == "boolean" and text.lower() in ("yes", "true", "no", "false"):
        return text.lower() in ("yes", "true")
    return text


def _show_labels(labels: Mapping[str, int]) -> str:
    return ", ".join(f"{k!r} ({n} rows)" for k, n in sorted(labels.items()))


def _near_twins(labels: Mapping[str, int]) -> list[str]:
    """Groups of labels that differ only in case or spaces."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(" ".join(label.split()).casefold(), []).append(label)
    return [" and ".join(repr(x) for x in sorted(g)) for g in groups.values() if len(g) > 1]


def _target(table: Table, opts: DataOptions) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    if not opts.target:  # unsupervised: no target, every row kept
        return np.zeros(table.rows, dtype=np.int8), np.ones(table.rows, dtype=bool), {}
    if opts.target not in table.names:
        raise DataError(
            f"target column {opts.target!r} is not in {table.path} (columns: {', '.join(table.names)})",
            "target_missing",
        )
    raw = table.raw[opts.target]
    typed = table.typing[opts.target]
    present = [v is not None for v in table.columns[opts.target]]  # NA-like cells of a numeric target are missing
    raw = [v if ok else None for v, ok in zip(raw, present, strict=True)]
    keep = np.array(present, dtype=bool)
    labels: dict[str, int] = {}
    for v in raw:
        if v is not None:
            labels[v] = labels.get(v, 0) + 1
    if not labels:
        raise DataError(f"target column {opts.target!r} has no values", "target_empty")
    values = {v: _label_value(v, typed.kind, typed.number_format) for v in labels}
    classes = set(values.values())
    if len(classes) == 1:
        only = next(iter(labels))
        raise DataError(
            f"target column {opts.target!r} has a single class ({only!r} in all {sum(labels.values())} rows); "
            "a classifier needs both classes", "target_single_class",
        )
    if len(classes) > 2:
        twins = _near_twins(labels)
        raise DataError(
            f"target column {opts.target!r} has {len(classes)} labels where a binary target needs exactly two: "
            f"{_show_labels(labels)}"
            + (f"; {'; '.join(twins)} differ only in case or spaces" if twins else "")
            + "; make the column hold exactly two labels (rows with an empty target are left out)", "target_not_binary",
        )
    positive = _label_value(opts.positive, typed.kind, typed.number_format)
    if positive not in classes:
        near = [v for v in labels if " ".join(v.split()).casefold() == " ".join(opts.positive.split()).casefold()]
        raise DataError(
            f"positive label {opts.positive!r} does not occur in target column {opts.target!r} "
            f"(labels: {', '.join(sorted(labels))})" + (f"; did you mean {near[0]!r}?" if near else ""),
            "target_unknown_label",
        )
    y = np.array([1 if (v is not None and values[v] == positive) else 0 for v in raw], dtype=np.int8)
    return y, keep, labels


def _refuse_problem_columns(table: Table, cols: Sequence[str]) -> None:
    """Refuse, all at once, the columns to train on that the reader could not type."""
    bad = [table.typing[c] for c in cols if table.typing[c].problem]
    if bad:
        raise DataError(
            f"{table.path}: " + "; ".join(str(t.problem) for t in bad)
            + " (--categorical COLUMN reads a column as text; --number-format says how numbers are written)",
            str(bad[0].problem_code),
        )


def _left_out(table: Table, cols: Sequence[str], opts: DataOptions) -> dict[str, str]:
    """The selected columns that look like row identifiers and were not kept, with the reason."""
    out = {}
    for c in cols:
        if c in opts.keep:
            continue
        reason = identifier_reason(table.types[c], table.columns[c])
        if reason is not None:
            out[c] = reason
    return out


def _selected_columns(table: Table, opts: DataOptions) -> list[str]:
    known = set(table.names)
    for flag, names in (("--features", opts.features or ()), ("--drop", opts.drop), ("--keep-column", opts.keep),
                        ("--protected", opts.protected), ("--age", (opts.age,) if opts.age else ())):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DataError(f"{flag} names unknown columns: {', '.join(unknown)}", "data_unknown_column")
    if opts.features is not None:
        cols = [c for c in opts.features if c not in opts.drop and c not in opts.protected]
    else:
        cols = [c for c in table.names if c != opts.target and c not in opts.drop and c not in opts.protected]
    if opts.age and opts.age in opts.protected:
        raise DataError(f"--age {opts.age} is also --protected: a protected column is never a feature", "bad_option")
    if opts.age and opts.age not in cols:
        raise DataError(f"--age {opts.age} is not among the feature columns", "data_unknown_column")
    if opts.target in cols:
        raise DataError(f"the target column {opts.target!r} cannot also be a feature", "target_is_feature")
    if not cols:
        raise DataError("no feature columns are left to train on", "no_features")
    return cols


def prepare(opts: DataOptions) -> Prepared:
    """Read the CSV, build the target and the encoded feature matrix.

    Raises DataError (its ``code`` says why) for an unreadable file, a target that is not binary,
    unknown columns, columns the reader could not type, or no feature left.
    """
    table = read_csv(opts.data, force_categorical=opts.categorical, number_format=opts.number_format)
    y_all, keep, labels = _target(table, opts)
    cols = _selected_columns(table, opts)
    _refuse_problem_columns(table, cols)  # before the identifier rule: a mixed column is refused, not left out
    left_out = _left_out(table, cols, opts)
    cols = [c for c in cols if c not in left_out]
    if not cols:
        raise DataError(
            "no feature columns are left to train on: "
            + "; ".join(f"{c!r} left out as {r}" for c, r in left_out.items())
            + " (--keep-column NAME keeps one)", "no_features",
        )
    names = {c: snake_case(c) for c in cols}
    clash = sorted({n for n in names.values() if list(names.values()).count(n) > 1})
    if clash:
        raise DataError(f"columns map to the same feature name: {', '.join(clash)}", "feature_name_clash")
    idx = np.flatnonzero(keep)
    inputs = {i for d in opts.derived for i in d.inputs}
    by_snake = {snake_case(c): c for c in table.names}
    missing_inputs = sorted(i for i in inputs if i not in by_snake)
    if missing_inputs:
        raise DataError(f"derived features need columns that are absent: {', '.join(missing_inputs)}", "data_unknown_column")
    shielded = sorted(i for i in inputs if by_snake[i] in opts.protected)
    if shielded:
        raise DataError(f"derived features use protected columns: {', '.join(shielded)}", "protected_in_derived")
    source = dict(names) | {by_snake[i]: i for i in inputs}
    _refuse_problem_columns(table, [c for c in source if c not in cols])  # inputs of derived features
    col_values = {c: table.columns[c] for c in source}
    records: list[dict[str, object]] = [{source[c]: col_values[c][i] for c in source} for i in idx]
    add_derived(records, opts.derived)
    specs: list[FeatureSpec] = [spec_for_column(names[c], table.types[c], [r[names[c]] for r in records]) for c in cols]
    empty = [s.name for s in specs if s.type == "categorical" and not s.categories]
    if empty:
        raise DataError(f"columns with no values at all: {', '.join(empty)} (drop them with --drop)", "column_empty")
    for d in opts.derived:
        if d.name in names.values():
            raise DataError(f"derived feature {d.name!r} clashes with a column", "feature_name_clash")
        specs.append(FeatureSpec(d.name, d.type))
    columns = {names[c]: c for c in cols} | {d.name: f"derived: {d.formula}" for d in opts.derived}
    x = encode_matrix(specs, records)
    return Prepared(
        table=table, x=x, y=y_all[idx], specs=tuple(specs), columns=columns,
        dropped_missing_target=int((~keep).sum()), labels=labels, left_out=left_out,
        attributes={c: [table.columns[c][i] for i in idx] for c in (*opts.protected, *((opts.age,) if opts.age else ()))},
    )


def _used_columns(p: Prepared) -> list[str]:
    sources = set(p.columns.values())
    return [c for c in p.table.names if c in sources]


def card_data_notes(p: Prepared) -> dict[str, Any]:
    """Extra keys for the card's ``data`` section on how the CSV was read, each only when it says something.

    ``number_formats`` (column -> convention, for numbers not written plain), ``missing_markers``
    (column -> count of NA-like cells read as missing), ``left_out`` (column -> why it looks like a
    row identifier), ``encoding`` and ``delimiter`` (when not UTF-8 and comma).
    """
    typing = p.table.typing
    used = _used_columns(p)
    notes: dict[str, Any] = {}
    formats = {c: typing[c].number_format for c in used if typing[c].number_format not in (None, "plain")}
    markers = {c: typing[c].missing_markers for c in used if typing[c].missing_markers}
    if formats:
        notes["number_formats"] = formats
    if markers:
        notes["missing_markers"] = markers
    if p.left_out:
        notes["left_out"] = dict(p.left_out)
    if p.table.source.encoding not in ("utf-8", "utf-8-sig"):
        notes["encoding"] = p.table.source.encoding
    if p.table.source.delimiter in (";", "\t", "|"):
        notes["delimiter"] = p.table.source.delimiter
    return notes


def reading_messages(p: Prepared) -> list[str]:
    """One line per thing the user should know about how the CSV was read (left-out columns first)."""
    notes = card_data_notes(p)
    lines = [f"left out column {c!r}: {why} (--keep-column {c} keeps it)" for c, why in notes.get("left_out", {}).items()]
    examples = {"thousands_comma": "1,234.5", "decimal_comma": "1.234,5"}
    lines += [f"read column {c!r} as numbers written like {examples[f]} ({f})" for c, f in notes.get("number_formats", {}).items()]
    lines += [f"read {n} NA-like cells of column {c!r} as missing" for c, n in notes.get("missing_markers", {}).items()]
    return lines
