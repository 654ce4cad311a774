"""Exact TreeSHAP contributions of a LightGBM model in numpy, without LightGBM.

``TreeExplainer(model_txt)`` reads LightGBM's text model (``model.txt``) and computes, for rows of
shape ``(rows, n)`` float64, the contributions LightGBM's ``Booster.predict(x, pred_contrib=True)``
gives: shape ``(rows, n + 1)``, one column per feature in log-odds and, last, the bias (the sum of
the trees' expected values). Each row sums to the raw score the trees give it, which is the score
the ONNX graph converted from the same trees serves (``sigmoid(raw)`` for a binary model).

The values are path-dependent TreeSHAP (Lundberg, Erion & Lee 2018, "Consistent individualized
feature attribution for tree ensembles", Algorithm 2; what LightGBM's ``Tree::TreeSHAP``
implements). Per leaf ``l`` with value ``v``, for each distinct feature ``k`` on its path, ``z_k``
is the product of the cover ratios ``count(child) / count(parent)`` of the path's splits on ``k``
and ``o_k`` is 1 when the row follows all of them, else 0. Feature ``j`` of the path gets::

    v * (o_j - z_j) * sum over S of U\\{j}: |S|!(d-|S|-1)!/d! * prod_{k in S} o_k * prod_{k not in S} z_k

which, since the Shapley weight is the Beta integral ``∫0^1 t^s (1-t)^(d-1-s) dt``, equals
``v * (o_j - z_j) * ∫0^1 prod_{k != j} (z_k + (o_k - z_k) t) dt`` (the form Linear TreeSHAP, Yu et
al. 2022, builds on). The integrand is a polynomial of degree ``d - 1``, integrated exactly by
Gauss–Legendre quadrature with ``d // 2 + 1`` points.

Cost. A tree's contributions depend on the row only through its split decisions. A tree with at
most ``TABLE_MAX_SPLITS`` splits gets a table at load time: the contributions for every one of the
``2**splits`` decision vectors (Fast TreeSHAP v2's idea, Yang 2021, taken to the whole tree). A row
then costs one comparison per split, one table row per tree and one scatter-add: about the cost of
scoring. Larger trees are evaluated per leaf with the quadrature above, ``O(leaves * depth)``.
One row (the request path) is laid out group by group, ``(groups, 8 or 16)`` slots, so that its
decisions, the missing-value and categorical rules and the packing of each group's decisions into
its table row are a dozen numpy calls whatever the number of trees (``_GroupSplits``).

Split decisions follow LightGBM's ``Tree::NumericalDecision`` / ``CategoricalDecision``
(``include/LightGBM/tree.h``): NaN is read as 0 unless the split's missing type is NaN; a missing
value (zero for missing type Zero, NaN for missing type NaN) goes to the default side; else
``x <= threshold`` goes left. A categorical split sends NaN and negative values right and a
category (the value truncated to an int, as C++'s
``static_cast<int>``) left when its bit is set. Values within ``±1e-35f`` are read as 0 first, as LightGBM's
row reader does.

Errors: ``ValueError`` naming what is wrong for a text that is not a supported LightGBM model
(multi-class, linear trees, random-forest averaging, a feature count other than expected).
"""

from __future__ import annotations

import functools

import numpy as np

from engine.models.trees import MISSING_ZERO, ZERO_THRESHOLD, Leaf, Splits, group_leaves, parse_model, read_tree

__all__ = ["TABLE_MAX_SPLITS", "TreeExplainer"]

# A tree with at most this many splits is tabulated (2**10 rows of at most 10 values: 80 KiB).
TABLE_MAX_SPLITS = 10
# Times a uint64 of 8 bytes each 0 or 1 (byte j = bit j): the product's top byte is the packed bits.
_PACK = np.uint64(0x0102040810204080)
_SHIFT, _BYTE = np.uint64(56), np.uint64(8)
# Rows explained at a time by a batch: its temporaries are ~block * groups * 16 bytes (~3.5 MB for
# 1,024 rows of a 215-tree model), whatever the number of rows.
_BLOCK = 256


@functools.cache
def _quadrature(points: int) -> tuple[np.ndarray, np.ndarray]:
    """Gauss-Legendre nodes and weights on [0, 1]."""
    nodes, weights = np.polynomial.legendre.leggauss(points)
    return (nodes + 1.0) / 2.0, weights / 2.0


class _Leaves:
    """Per-leaf quadrature: ``contributions(go)`` -> (rows, n + 1), bias column 0.

    Flat layout: the leaves' feature slots one after another (``slot_start`` per leaf), each slot's
    path splits one after another (``edge_start`` per slot). The product over a leaf's other slots
    is the product over all of them divided by the slot's own factor, which is never 0: a factor is
    ``z + (o - z) t`` with ``t`` strictly inside (0, 1) and ``z >= 1e-150`` (LightGBM leaves hold at
    least one row, so ``z > 0``; the floor keeps a hand-made model with an empty leaf finite).
    """

    def __init__(self, leaves: list[Leaf], width: int, true_col: int) -> None:
        self.width = width
        self.n_leaves = len(leaves)
        slots = [slot for lf in leaves for slot in lf.slots]
        self.slot_start = np.cumsum([0] + [len(lf.slots) for lf in leaves])[:-1]
        self.edge_start = np.cumsum([0] + [len(e) for _, _, e in slots])[:-1]
        self.edge_split = np.array([sp for _, _, e in slots for sp, _ in e], dtype=np.int64)
        self.edge_left = np.array([g for _, _, e in slots for _, g in e], dtype=bool)
        self.z = np.maximum(np.array([z for _, z, _ in slots], dtype=np.float64), 1e-150)
        self.feature = np.array([f for f, _, _ in slots], dtype=np.int64)
        self.slot_leaf = np.repeat(np.arange(len(leaves)), [len(lf.slots) for lf in leaves])
        self.slot_value = np.array([lf.value for lf in leaves])[self.slot_leaf] if leaves else np.zeros(0)
        depth = max((len(lf.slots) for lf in leaves), default=1)
        self.t, self.w = _quadrature(depth // 2 + 1)  # exact up to degree 2q - 1 >= depth - 1

    def contributions(self, go: np.ndarray) -> np.ndarray:
        rows = go.shape[0]
        if self.n_leaves == 0:
            return np.zeros((rows, self.width + 1))
        sat = go[:, self.edge_split] == self.edge_left  # (rows, edges)
        o = np.logical_and.reduceat(sat, self.edge_start, axis=1).astype(np.float64)  # (rows, slots)
        g = self.z[:, None] + (o - self.z)[..., None] * self.t  # (rows, slots, q)
        whole = np.multiply.reduceat(g, self.slot_start, axis=1)  # (rows, leaves, q)
        integral = (whole[:, self.slot_leaf] / g) @ self.w  # (rows, slots)
        phi = self.slot_value * (o - self.z) * integral
        cols = (np.arange(rows)[:, None] * (self.width + 1) + self.feature).ravel()
        return np.bincount(cols, weights=phi.ravel(), minlength=rows * (self.width + 1)).reshape(rows, -1)


class _GroupSplits:
    """Each table group's decision code, in a few numpy calls per row (``rows``) or per batch (``rows_batch``).

    The groups' splits are laid out as a (groups, 8 or 16) matrix of slots (padded with slots that
    never go left); the row is compared with every slot at once, LightGBM's missing-value and
    categorical rules applied (as ``Splits.decide``) and each group's decisions packed into its
    code, bit ``j`` for the group's ``j``-th split.
    """

    def __init__(self, slots: np.ndarray, s: Splits, width: int) -> None:
        n_splits = len(s.feature)
        pad = slots >= n_splits
        k = slots.shape[1]
        self.width_bits = 8 if k <= 8 else 16
        if k > 16:
            raise ValueError(f"a table group of {k} splits (at most 16)")
        self.slots = np.zeros((slots.shape[0], self.width_bits), dtype=np.int64)  # padding: feature 0, NaN threshold
        self.slots[:, :k] = np.where(pad, 0, slots)
        real = np.zeros(self.slots.shape, dtype=bool)
        real[:, :k] = ~pad
        idx = np.where(real, self.slots, 0)
        cat = real & s.categorical[idx]
        numeric = real & ~cat
        # A categorical split reads an extra column of the row (after its n features): 0.0 when the
        # row's category is in the split's set, else 1.0, compared with 0.5 like a numeric split.
        # ``cats``: per categorical feature, the (categories + 1, its splits) table of those values
        # (the last row: NaN, negative or unknown categories, which go right).
        column: dict[int, int] = {}
        self.cats: list[tuple[int, np.ndarray]] = []
        for f, splits, table in s.cat_tables:
            for sp in splits:
                column[int(sp)] = width + len(column)
            self.cats.append((f, (~table).astype(np.float64)))
        extra = np.array([column.get(int(sp), 0) for sp in self.slots.ravel()], dtype=np.int64).reshape(self.slots.shape)
        self.feature = np.where(cat, extra, np.where(real, s.feature[idx], 0))
        # x <= NaN is False: a padding slot never goes left. LightGBM reads values within ±1e-35 as 0,
        # which changes ``x <= t`` only for t in [-1e-35, 1e-35): there ``0 <= t`` is ``x < -1e-35``
        # when t < 0 and ``x <= 1e-35`` when t >= 0, so those thresholds move and x is used as is.
        t = np.where(numeric, s.threshold[idx], np.where(cat, 0.5, np.nan))
        near = numeric & (t >= -ZERO_THRESHOLD) & (t < ZERO_THRESHOLD)
        self.threshold = np.where(near, np.where(t < 0.0, np.nextafter(-ZERO_THRESHOLD, -np.inf), ZERO_THRESHOLD), t)
        self.if_nan = numeric & s.if_nan[idx]
        zero = numeric & (s.missing[idx] == MISSING_ZERO)
        self.zero = zero if zero.any() else None  # zero_as_missing models: a 0 goes to the default side
        self.zero_left = s.default_left[idx]

    def rows(self, x: np.ndarray, base: np.ndarray) -> np.ndarray:
        """(groups, 1) uint64 table rows of one row ``x`` (n,) float64: each group's code plus its
        ``base`` ((groups, 1) uint64)."""
        nan = self.any_nan(x)
        if self.cats:
            xs = x.tolist()
            parts = [x]
            for f, table in self.cats:
                c = xs[f]
                parts.append(table[int(c) if c == c and -1.0 < c < len(table) - 1 else len(table) - 1])
            x = np.concatenate(parts)
        v = x[self.feature]
        go = v <= self.threshold
        if nan:  # LightGBM reads a NaN as 0 or as missing
            go = np.where(v == v, go, self.if_nan)
        if self.zero is not None:
            go = np.where(self.zero & (np.abs(v) <= ZERO_THRESHOLD), self.zero_left, go)
        return _pack(go, base)

    def rows_batch(self, x: np.ndarray, base: np.ndarray) -> np.ndarray:
        """(rows, groups) uint64 table rows of ``x`` (rows, n) float64 (``rows`` for many rows at once)."""
        nan = self.any_nan(x)
        if self.cats:
            parts = [x]
            for f, table in self.cats:
                c = x[:, f]
                size = len(table) - 1
                parts.append(table[np.where((c > -1.0) & (c < size), c, size).astype(np.int64)])  # truncates like int()
            x = np.concatenate(parts, axis=1)
        v = x.take(self.feature, axis=1)  # (rows, groups, slots), C-contiguous (x[:, idx] need not be)
        go = v <= self.threshold
        if nan:
            go = np.where(v == v, go, self.if_nan)
        if self.zero is not None:
            go = np.where(self.zero & (np.abs(v) <= ZERO_THRESHOLD), self.zero_left, go)
        return _pack(go, base)[..., 0]

    @staticmethod
    def any_nan(x: np.ndarray) -> bool:
        """Whether ``x`` holds a NaN (a min-reduction: NaN propagates)."""
        least = np.minimum.reduce(x, axis=None)
        return bool(least != least)


def _pack(go: np.ndarray, base: np.ndarray) -> np.ndarray:
    """Each group's code plus its ``base``, from ``go`` (..., groups, 8 or 16) bool, as (..., groups, 1) uint64.

    A group's 8 (or 16) decisions are 8 (16) bytes of 0/1: one multiply gathers a word's bytes into
    its top byte, bit j = byte j (the "magic multiply" bit-packing trick).
    """
    packed: np.ndarray = (go.view(np.uint64) * _PACK) >> _SHIFT
    if packed.shape[-1] == 2:
        packed = packed[..., :1] | (packed[..., 1:] << _BYTE)
    rows: np.ndarray = packed + base
    return rows


class _Tables:
    """Groups of leaves whose paths read at most ``TABLE_MAX_SPLITS`` splits: contributions looked up
    by the group's decision vector (a whole small tree is one group)."""

    def __init__(self, groups: list[tuple[list[int], list[Leaf]]], width: int, decisions: Splits) -> None:
        n_splits = len(decisions.feature)
        self.width = width
        most = max((len(k) for k, _ in groups), default=1)
        used = [sorted({f for lf in leaves for f, _, _ in lf.slots}) for _, leaves in groups]
        wide = max((len(u) for u in used), default=1)
        n = len(groups)
        self.splits = np.full((n, most), n_splits + 1, dtype=np.int64)  # padding reads the False column
        self.base = np.zeros(n, dtype=np.int64)
        self.feature = np.full((n, wide), width, dtype=np.int64)
        tables: list[np.ndarray] = []
        base = 0
        for i, ((splits, leaves), u) in enumerate(zip(groups, used, strict=True)):
            k = len(splits)
            self.splits[i, :k] = splits
            self.feature[i, : len(u)] = u
            # Every decision vector of the group's splits, as the (2**k, k + 2) go matrix its leaves read.
            local = {s: j for j, s in enumerate(splits)}
            mapped = [Leaf(lf.value, tuple((f, z, tuple((local[s], g) for s, g in e)) for f, z, e in lf.slots))
                      for lf in leaves]
            codes = np.arange(1 << k, dtype=np.int64)
            go = np.empty((1 << k, k + 2), dtype=bool)
            go[:, :k] = (codes[:, None] >> np.arange(k)) & 1 == 1
            go[:, k], go[:, k + 1] = True, False
            phi = _Leaves(mapped, width, k).contributions(go)
            table = np.zeros((1 << k, wide))
            table[:, : len(u)] = phi[:, u]
            tables.append(table)
            self.base[i] = base
            base += 1 << k
        self.table = np.concatenate(tables) if tables else np.zeros((1, 1))
        self.flat_feature = self.feature.ravel()
        self.n_groups = n
        self._row = _GroupSplits(self.splits, decisions, width) if n else None
        self._row_base = self.base.astype(np.uint64)[:, None]

    def contributions_row(self, x: np.ndarray) -> np.ndarray:
        """(n + 1,) contributions (bias column 0) of one row ``x`` (n,), already read as LightGBM reads it."""
        if self._row is None:
            return np.zeros(self.width + 1)
        vals = self.table.take(self._row.rows(x, self._row_base), axis=0)  # (groups, 1, features used)
        return np.bincount(self.flat_feature, weights=vals.ravel(), minlength=self.width + 1)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(rows, n + 1) contributions (bias column 0) of rows ``x`` (rows, n), read as LightGBM reads them."""
        rows = x.shape[0]
        if self._row is None:
            return np.zeros((rows, self.width + 1))
        vals = self.table.take(self._row.rows_batch(x, self._row_base), axis=0)  # (rows, groups, features used)
        cols = (np.arange(rows)[:, None] * (self.width + 1) + self.flat_feature).ravel()
        return np.bincount(cols, weights=vals.ravel(), minlength=rows * (self.width + 1)).reshape(rows, -1)


class TreeExplainer:
    """Exact path-dependent TreeSHAP of a binary LightGBM text model (see the module doc).

    ``contributions(x)``: x of shape (rows, n) float64, in the model's feature order; returns
    (rows, n + 1) float64, the last column the bias. Thread-safe: it holds no mutable state.
    """

    def __init__(self, model_txt: str, width: int) -> None:
        header, blocks = parse_model(model_txt)
        if not blocks:
            raise ValueError("the text holds no trees (not a LightGBM text model)")
        if int(header.get("num_tree_per_iteration", "1")) != 1:
            raise ValueError("only single-output models are supported (num_tree_per_iteration must be 1)")
        if "average_output" in header:
            raise ValueError("random-forest models (average_output) are not supported")
        n = int(header.get("max_feature_idx", "-1")) + 1
        if n != width:
            raise ValueError(f"the model has {n} features, the card {width}")
        trees = [read_tree(b) for b in blocks]
        self.width = width
        self.bias = float(sum(t.expected_value() for t in trees))
        self._splits = Splits(trees)
        groups: list[tuple[list[int], list[Leaf]]] = []
        deep: list[Leaf] = []
        for t, off in zip(trees, self._splits.offsets[:-1], strict=True):
            if t.splits:
                group_leaves(t, int(off), 0, [], TABLE_MAX_SPLITS, groups, deep)
        n_splits = len(self._splits.feature)
        self._tables = _Tables(groups, width, self._splits)
        self._leaves = _Leaves(deep, width, n_splits) if deep else None

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(rows, n + 1) contributions of ``x`` (rows, n); column n is the bias; rows sum to the raw score."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.width)
        if x.shape[0] == 1 and self._leaves is None:  # the request path (reads ±1e-35 as 0 itself)
            out = self._tables.contributions_row(x[0])
            out[self.width] = self.bias
            return out[None, :]
        x = np.where(np.abs(x) <= ZERO_THRESHOLD, 0.0, x)  # NaN compares false and stays NaN
        if x.shape[0] == 1 and self._leaves is not None:
            deep = self._leaves.contributions(self._splits.decide_row(x[0])[None, :])[0]
            out = self._tables.contributions_row(x[0]) + deep
            out[self.width] = self.bias
            row: np.ndarray = out[None, :]
            return row
        out = np.empty((x.shape[0], self.width + 1))
        for start in range(0, x.shape[0], _BLOCK):  # bounded temporaries: (block, groups, slots)
            block = x[start : start + _BLOCK]
            part = self._tables.contributions(block)
            if self._leaves is not None:
                part += self._leaves.contributions(self._splits.decide(block))
            out[start : start + _BLOCK] = part
        out[:, self.width] = self.bias
        return out
