"""From a CSV and training options to an encoded matrix: target, feature selection, derived features.

The matrix is built with the runtime's own encoders (``engine.models.make_encoder``), so a row
encoded at serving time is exactly the row the model was trained and parity-checked on.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.models import FeatureSpec, make_encoder
from engine.training.derived import DerivedFeature, add_derived
from engine.training.errors import DataError
from engine.training.table import Table, read_csv, snake_case, spec_for_column

__all__ = ["DataOptions", "Prepared", "encode_matrix", "prepare"]


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


def _label_matches(raw: str, positive: str) -> bool:
    if raw == positive:
        return True
    try:
        return float(raw) == float(positive)
    except ValueError:
        return False


def _target(table: Table, opts: DataOptions) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    if not opts.target:  # unsupervised: no target, every row kept
        return np.zeros(table.rows, dtype=np.int8), np.ones(table.rows, dtype=bool), {}
    if opts.target not in table.names:
        raise DataError(
            f"target column {opts.target!r} is not in {table.path} (columns: {', '.join(table.names)})",
            "target_missing",
        )
    raw = table.raw[opts.target]
    keep = np.array([v is not None for v in raw], dtype=bool)
    labels: dict[str, int] = {}
    for v in raw:
        if v is not None:
            labels[v] = labels.get(v, 0) + 1
    if not labels:
        raise DataError(f"target column {opts.target!r} has no values", "target_empty")
    if len(labels) == 1:
        only = next(iter(labels))
        raise DataError(
            f"target column {opts.target!r} has a single class ({only!r} in all {labels[only]} rows); "
            "a classifier needs both classes", "target_single_class",
        )
    if not any(_label_matches(v, opts.positive) for v in labels):
        raise DataError(
            f"positive label {opts.positive!r} does not occur in target column {opts.target!r} "
            f"(labels: {', '.join(sorted(labels))})", "target_unknown_label",
        )
    y = np.array([1 if (v is not None and _label_matches(v, opts.positive)) else 0 for v in raw], dtype=np.int8)
    if y[keep].sum() == keep.sum():
        raise DataError(f"every row of {opts.target!r} is the positive label", "target_single_class")
    return y, keep, labels


def _selected_columns(table: Table, opts: DataOptions) -> list[str]:
    known = set(table.names)
    for flag, names in (("--features", opts.features or ()), ("--drop", opts.drop)):
        unknown = [n for n in names if n not in known]
        if unknown:
            raise DataError(f"{flag} names unknown columns: {', '.join(unknown)}", "data_unknown_column")
    if opts.features is not None:
        cols = [c for c in opts.features if c not in opts.drop]
    else:
        cols = [c for c in table.names if c != opts.target and c not in opts.drop]
    if opts.target in cols:
        raise DataError(f"the target column {opts.target!r} cannot also be a feature", "target_is_feature")
    if not cols:
        raise DataError("no feature columns are left to train on", "no_features")
    return cols


def prepare(opts: DataOptions) -> Prepared:
    """Read the CSV, build the target and the encoded feature matrix."""
    table = read_csv(opts.data, force_categorical=opts.categorical)
    y_all, keep, labels = _target(table, opts)
    cols = _selected_columns(table, opts)
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
    source = dict(names) | {by_snake[i]: i for i in inputs}
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
        dropped_missing_target=int((~keep).sum()), labels=labels,
    )
