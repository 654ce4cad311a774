"""Threshold-adjacent probe rows: inputs on each side of every split threshold of a tree model.

Random rows almost never land between a float64 threshold ``t`` and its float32 rounding, which is
where a converted tree model goes down the other branch (onnx/onnx#3897; the case of credit_default
v1 at amount 3562 / price 5948). :func:`probe_rows` builds, for every split node of every tree, rows
that *reach* that node (each ancestor's condition is satisfied) and put the node's feature at ``t``,
``nextafter(t, -inf)``, ``nextafter(t, +inf)``, ``float32(t)`` and the float32 neighbours of
``float32(t)``. A parity check over these rows fails for any converter that rounds a threshold.

Trees come from LightGBM (:func:`lightgbm_splits`, from ``Booster.dump_model``) or scikit-learn
(:func:`sklearn_splits`, from ``tree_``); both become the same small ``Split`` tree.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Split", "lightgbm_splits", "probe_base", "probe_rows", "probe_values", "sklearn_splits"]

INF = float("inf")


@dataclass(frozen=True)
class Split:
    """One split node: numeric ``x <= threshold`` goes left, or categorical ``x in categories`` goes left."""

    feature: int
    threshold: float  # numeric splits; NaN for categorical ones
    categories: frozenset[int] | None  # categorical splits: the category codes that go left
    left: Split | None
    right: Split | None


def lightgbm_splits(booster: Any) -> list[Split | None]:
    """The trees of a LightGBM booster as ``Split`` trees (None for a single-leaf tree)."""

    def walk(node: dict[str, Any]) -> Split | None:
        if "split_feature" not in node:
            return None
        left, right = walk(node["left_child"]), walk(node["right_child"])
        if node["decision_type"] == "==":
            cats = frozenset(int(c) for c in str(node["threshold"]).split("||"))
            return Split(int(node["split_feature"]), float("nan"), cats, left, right)
        return Split(int(node["split_feature"]), float(node["threshold"]), None, left, right)

    return [walk(t["tree_structure"]) for t in booster.dump_model()["tree_info"]]


def sklearn_splits(tree: Any) -> Split | None:
    """A fitted scikit-learn ``tree_`` as a ``Split`` tree (``x <= threshold`` goes left)."""

    def walk(i: int) -> Split | None:
        if tree.children_left[i] == -1:
            return None
        return Split(int(tree.feature[i]), float(tree.threshold[i]), None,
                     walk(int(tree.children_left[i])), walk(int(tree.children_right[i])))

    return walk(0)


def probe_base(x: np.ndarray) -> np.ndarray:
    """A base row for :func:`probe_rows`: each column's median over ``x`` (0 for an all-missing column)."""
    x = np.asarray(x, dtype=np.float64)
    med = np.array([np.median(c[~np.isnan(c)]) if (~np.isnan(c)).any() else 0.0 for c in x.T])
    return med


def probe_values(t: float) -> list[float]:
    """``t``, its float64 neighbours, ``float32(t)`` and that float32's neighbours (as doubles)."""
    with np.errstate(over="ignore"):  # float32 of a threshold beyond 3.4e38 (e.g. 1e300) is inf
        f = np.float32(t)
    return [t, float(np.nextafter(t, -INF)), float(np.nextafter(t, INF)), float(f),
            float(np.nextafter(f, np.float32(-INF))), float(np.nextafter(f, np.float32(INF)))]


def _inside(v: float, lo: float, hi: float) -> bool:
    return not np.isnan(v) and lo < v <= hi


def _satisfy(row: np.ndarray, bounds: dict[int, tuple[float, float]], cats: dict[int, tuple[int | None, frozenset[int]]]) -> None:
    """Move each constrained feature of ``row`` into its interval (lo, hi] or category constraint."""
    for j, (lo, hi) in bounds.items():
        if not _inside(float(row[j]), lo, hi):
            row[j] = hi if hi != INF else (float(np.nextafter(lo, INF)) if lo != -INF else 0.0)
    for j, (must, excluded) in cats.items():
        if must is not None:
            row[j] = must
        elif np.isnan(row[j]) or int(row[j]) in excluded or row[j] < 0:
            row[j] = next(c for c in range(len(excluded) + 1) if c not in excluded)


def _walk(node: Split | None, bounds: dict[int, tuple[float, float]],
          cats: dict[int, tuple[int | None, frozenset[int]]]) -> Iterator[tuple[Split, dict[int, tuple[float, float]], dict[int, tuple[int | None, frozenset[int]]]]]:
    if node is None:
        return
    yield node, bounds, cats
    j = node.feature
    if node.categories is None:
        lo, hi = bounds.get(j, (-INF, INF))
        yield from _walk(node.left, {**bounds, j: (lo, min(hi, node.threshold))}, cats)
        yield from _walk(node.right, {**bounds, j: (max(lo, node.threshold), hi)}, cats)
    else:
        must, excluded = cats.get(j, (None, frozenset()))
        left_pick = must if must is not None else min(node.categories - excluded, default=min(node.categories))
        yield from _walk(node.left, bounds, {**cats, j: (left_pick, excluded)})
        yield from _walk(node.right, bounds, {**cats, j: (must, excluded | node.categories)})


def probe_rows(trees: Sequence[Split | None], base: np.ndarray) -> np.ndarray:
    """(k, n) float64 rows: for every numeric split, rows reaching it with its feature at each probe value.

    ``base`` (n,) gives the features no ancestor constrains. Categorical splits are reached but not
    probed (their values are small whole numbers, exact in float32).
    """
    base = np.asarray(base, dtype=np.float64)
    rows: list[np.ndarray] = []
    for tree in trees:
        for node, bounds, cats in _walk(tree, {}, {}):
            if node.categories is not None:
                continue
            row = base.copy()
            _satisfy(row, bounds, cats)
            for v in probe_values(node.threshold):
                probe = row.copy()
                probe[node.feature] = v
                rows.append(probe)
    return np.array(rows, dtype=np.float64).reshape(-1, len(base))
