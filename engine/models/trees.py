"""LightGBM's text model (``model.txt``) as arrays, and the paths from each tree's root to its leaves.

``parse_model(text)`` splits the text into its header and one block per tree; ``read_tree(block)``
gives a ``Tree`` (LightGBM's own field names: ``split_feature``, ``threshold``, ``left_child``, …; a
child ``< 0`` is leaf ``~child``). ``Splits`` decides every split of the model for a batch of rows at once, as LightGBM's
``Tree::NumericalDecision`` / ``CategoricalDecision`` do (``engine.models.explain`` states the rules).
``walk_leaves`` and ``group_leaves`` list each leaf with, per distinct
feature on its path, the product ``z`` of the cover ratios ``count(child) / count(parent)`` and the
splits it goes through: what path-dependent TreeSHAP needs (``engine.models.explain``, which cites the
algorithm). Pure: no LightGBM, no files.

Errors: ``ValueError`` for a linear tree (``linear_tree=true``), which this reading does not support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = [
    "MISSING_NAN", "MISSING_ZERO", "ZERO_THRESHOLD", "Leaf", "Splits", "Tree", "group_leaves", "parse_model", "read_tree",
    "walk_leaves",
]

# LightGBM's kZeroThreshold, the float literal 1e-35f (include/LightGBM/meta.h).
ZERO_THRESHOLD = 1.0000000180025095e-35
# A numerical split's missing type (bits 2-3 of ``decision_type``): 0 none, 1 zero, 2 NaN.
MISSING_ZERO, MISSING_NAN = 1, 2


@dataclass(frozen=True)
class Tree:
    """One tree of the text model, as arrays (LightGBM's own field names)."""

    split_feature: np.ndarray
    threshold: np.ndarray
    decision_type: np.ndarray
    left_child: np.ndarray
    right_child: np.ndarray
    leaf_value: np.ndarray
    leaf_count: np.ndarray
    internal_count: np.ndarray
    cat_boundaries: np.ndarray
    cat_threshold: np.ndarray

    @property
    def splits(self) -> int:
        return len(self.split_feature)

    def expected_value(self) -> float:
        """LightGBM's ``Tree::ExpectedValue``: leaf values weighted by leaf count / root count."""
        if self.splits == 0:
            return float(self.leaf_value[0])
        return float(np.sum(self.leaf_count / self.internal_count[0] * self.leaf_value))


def parse_model(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    current = header
    for line in text.splitlines():
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line.startswith("end of trees"):
            break
        elif "=" in line:
            key, _, value = line.partition("=")
            current[key] = value
    return header, trees


def _array(block: dict[str, str], key: str, dtype: type, default: str = "") -> np.ndarray:
    text = block.get(key, default).strip()
    return np.array(text.split(), dtype=dtype) if text else np.zeros(0, dtype=dtype)


def read_tree(block: dict[str, str]) -> Tree:
    if block.get("is_linear", "0") != "0":
        raise ValueError("linear trees (linear_tree=true) are not supported")
    return Tree(
        split_feature=_array(block, "split_feature", np.int64),
        threshold=_array(block, "threshold", np.float64),
        decision_type=_array(block, "decision_type", np.int64),
        left_child=_array(block, "left_child", np.int64),
        right_child=_array(block, "right_child", np.int64),
        leaf_value=_array(block, "leaf_value", np.float64),
        leaf_count=_array(block, "leaf_count", np.float64),
        internal_count=_array(block, "internal_count", np.float64),
        cat_boundaries=_array(block, "cat_boundaries", np.int64),
        cat_threshold=_array(block, "cat_threshold", np.uint32),
    )




@dataclass(frozen=True)
class Leaf:
    """One leaf: its value, and per distinct feature of its path ``(feature, z, [(split, goes_left)])``."""

    value: float
    slots: tuple[tuple[int, float, tuple[tuple[int, bool], ...]], ...]


def walk_leaves(t: Tree, off: int, node: int, path: list[tuple[int, int, bool, float]], out: list[Leaf]) -> None:
    """Append the leaves under ``node`` (``path``: (feature, split, goes_left, cover ratio) from the root)."""
    count = t.internal_count[node]
    for child, left in ((t.left_child[node], True), (t.right_child[node], False)):
        c = t.leaf_count[~child] if child < 0 else t.internal_count[child]
        step = [*path, (int(t.split_feature[node]), off + node, left, c / count)]
        if child >= 0:
            walk_leaves(t, off, int(child), step, out)
            continue
        slots: dict[int, tuple[float, tuple[tuple[int, bool], ...]]] = {}
        for feat, split, goes_left, ratio in step:
            z, edges = slots.get(feat, (1.0, ()))
            slots[feat] = (z * ratio, (*edges, (split, goes_left)))
        out.append(Leaf(float(t.leaf_value[~child]), tuple((f, z, e) for f, (z, e) in slots.items())))


def group_leaves(t: Tree, off: int, node: int, ancestors: list[int], limit: int,
           groups: list[tuple[list[int], list[Leaf]]], deep: list[Leaf]) -> None:
    """Split the subtree at ``node`` (reached through the splits ``ancestors``) into groups of leaves
    whose paths together read at most ``limit`` splits; a leaf deeper than ``limit`` goes to ``deep``."""
    inside = [off + n for n in _internal(t, node)]
    if len(ancestors) + len(inside) <= limit:
        leaves: list[Leaf] = []
        walk_leaves(t, off, node, _path_to(t, off, node), leaves)
        groups.append((ancestors + inside, leaves))
        return
    here = [*ancestors, off + node]
    for child, left in ((t.left_child[node], True), (t.right_child[node], False)):
        if child >= 0:
            group_leaves(t, off, int(child), here, limit, groups, deep)
        elif len(here) <= limit:
            groups.append((here, [_leaf_under(t, off, node, left)]))
        else:
            deep.append(_leaf_under(t, off, node, left))


def _internal(t: Tree, node: int) -> list[int]:
    """The split nodes of the subtree at ``node`` (itself included)."""
    out, stack = [], [node]
    while stack:
        n = stack.pop()
        out.append(n)
        stack += [int(c) for c in (t.left_child[n], t.right_child[n]) if c >= 0]
    return out


def _path_to(t: Tree, off: int, target: int) -> list[tuple[int, int, bool, float]]:
    """The (feature, split, goes_left, ratio) steps from the root down to split node ``target``."""
    parent = {}
    for n in range(t.splits):
        for c, left in ((t.left_child[n], True), (t.right_child[n], False)):
            if c >= 0:
                parent[int(c)] = (n, left)
    steps = []
    node = target
    while node in parent:
        p, left = parent[node]
        steps.append((int(t.split_feature[p]), off + p, left, t.internal_count[node] / t.internal_count[p]))
        node = p
    return steps[::-1]


def _leaf_under(t: Tree, off: int, node: int, left: bool) -> Leaf:
    """The leaf that is the direct ``left`` (or right) child of split ``node``."""
    leaves: list[Leaf] = []
    walk_leaves(t, off, node, _path_to(t, off, node), leaves)
    return leaves[0] if left else leaves[-1]  # walk_leaves lists the left side's leaves first


class Splits:
    """Every split of the model in one flat array, decided for a batch of rows at once."""

    def __init__(self, trees: list[Tree]) -> None:
        self.offsets = np.cumsum([0] + [t.splits for t in trees])
        self.feature = np.concatenate([t.split_feature for t in trees] or [np.zeros(0, np.int64)])
        self.threshold = np.concatenate([t.threshold for t in trees] or [np.zeros(0)])
        dt = np.concatenate([t.decision_type for t in trees] or [np.zeros(0, np.int64)])
        self.default_left = (dt & 2).astype(bool)
        self.missing = (dt >> 2) & 3
        self.categorical = np.concatenate([(t.decision_type & 1).astype(bool) for t in trees] or [np.zeros(0, bool)])
        self.numeric_idx = np.flatnonzero(~self.categorical)
        self.cat_idx = np.flatnonzero(self.categorical)
        # Categorical splits: their bitsets, flattened with an offset and a word count per split.
        words: list[np.ndarray] = []
        start, count = [], []
        base = 0
        for t in trees:
            for node in np.flatnonzero(t.decision_type & 1):
                ci = int(t.threshold[node])
                lo, hi = int(t.cat_boundaries[ci]), int(t.cat_boundaries[ci + 1])
                words.append(t.cat_threshold[lo:hi])
                start.append(base)
                count.append(hi - lo)
                base += hi - lo
        self.cat_words = np.concatenate(words) if words else np.zeros(1, np.uint32)
        self.cat_start = np.array(start, dtype=np.int64)
        self.cat_count = np.array(count, dtype=np.int64)
        self.num_feature = self.feature[self.numeric_idx]
        self.num_threshold = self.threshold[self.numeric_idx]
        self.num_missing = self.missing[self.numeric_idx]
        self.num_default_left = self.default_left[self.numeric_idx]
        self.num_nan_to_zero = self.num_missing != MISSING_NAN
        self.num_zero_missing = self.num_missing == MISSING_ZERO
        self.num_nan_missing = self.num_missing == MISSING_NAN
        self.cat_feature = self.feature[self.cat_idx]
        # One-row path: every split compared as numeric, then the rows' special values patched.
        zero_left = np.where(self.missing == MISSING_ZERO, self.default_left, self.threshold >= 0.0)
        self.if_zero = zero_left  # the value is 0 (or within ±1e-35)
        self.if_nan = np.where(self.missing == MISSING_NAN, self.default_left, zero_left)  # NaN: 0 unless type NaN
        # Categorical splits by feature: a (categories + 1, splits) table; the last row is "not a category".
        self.cat_tables: list[tuple[int, np.ndarray, np.ndarray]] = []
        for f in np.unique(self.cat_feature):
            which = np.flatnonzero(self.cat_feature == f)
            size = int(self.cat_count[which].max()) * 32
            table = np.zeros((size + 1, len(which)), dtype=bool)
            for j, c in enumerate(which):
                w = self.cat_words[self.cat_start[c] : self.cat_start[c] + self.cat_count[c]]
                bits = ((w[:, None] >> np.arange(32, dtype=np.uint32)) & 1).astype(bool).ravel()
                table[: len(bits), j] = bits
            self.cat_tables.append((int(f), self.cat_idx[which], table))

    def decide_row(self, x: np.ndarray) -> np.ndarray:
        """(splits + 2,) bool for one row (n,) already read as LightGBM reads it (see ``decide``)."""
        go = np.empty(len(self.feature) + 2, dtype=bool)
        go[-2], go[-1] = True, False
        v = x[self.feature]
        np.less_equal(v, self.threshold, out=go[:-2])
        nan = np.isnan(x)
        if nan.any() or not x.all():  # a missing or zero value: LightGBM's missing-value rules
            go[:-2] = np.where(nan[self.feature], self.if_nan, np.where(v == 0.0, self.if_zero, go[:-2]))
        for f, splits, table in self.cat_tables:
            c = x[f]
            i = int(c) if c == c and -1.0 < c < len(table) - 1 else len(table) - 1  # NaN/negative/unknown: right
            go[splits] = table[i]
        return go

    def decide(self, x: np.ndarray) -> np.ndarray:
        """(rows, splits + 2) bool: True where the row goes left; then a True and a False column."""
        rows = x.shape[0]
        go = np.empty((rows, len(self.feature) + 2), dtype=bool)
        go[:, -2] = True
        go[:, -1] = False
        if len(self.numeric_idx):
            v = x[:, self.num_feature]
            nan = np.isnan(v)
            v = np.where(nan & self.num_nan_to_zero, 0.0, v)
            missing = (self.num_zero_missing & (np.abs(v) <= ZERO_THRESHOLD)) | (self.num_nan_missing & nan)
            go[:, self.numeric_idx] = np.where(missing, self.num_default_left, v <= self.num_threshold)
        if len(self.cat_idx):
            v = x[:, self.cat_feature]
            ok = ~np.isnan(v) & (v > -1.0) & (v < 2.0**31)  # static_cast<int> truncates toward 0
            iv = np.where(ok, v, 0).astype(np.int64)
            word = iv >> 5
            ok &= word < self.cat_count
            bits = self.cat_words[np.where(ok, self.cat_start + word, 0)]
            go[:, self.cat_idx] = ok & (((bits >> (iv & 31).astype(np.uint32)) & 1) == 1)
        return go
