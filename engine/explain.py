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

from dataclasses import dataclass

import numpy as np

__all__ = ["TABLE_MAX_SPLITS", "TreeExplainer"]

# A tree with at most this many splits is tabulated (2**10 rows of at most 10 values: 80 KiB).
TABLE_MAX_SPLITS = 10
# LightGBM's kZeroThreshold, the float literal 1e-35f (include/LightGBM/meta.h).
_ZERO = 1.0000000180025095e-35
_MISSING_ZERO, _MISSING_NAN = 1, 2


@dataclass(frozen=True)
class _Tree:
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


def _parse(text: str) -> tuple[dict[str, str], list[dict[str, str]]]:
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


def _tree(block: dict[str, str]) -> _Tree:
    if block.get("is_linear", "0") != "0":
        raise ValueError("linear trees (linear_tree=true) are not supported")
    return _Tree(
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


class _Splits:
    """Every split of the model in one flat array, decided for a batch of rows at once."""

    def __init__(self, trees: list[_Tree]) -> None:
        self.offsets = np.cumsum([0] + [t.splits for t in trees])
        cat = lambda t: (t.decision_type & 1).astype(bool)  # noqa: E731
        self.feature = np.concatenate([t.split_feature for t in trees] or [np.zeros(0, np.int64)])
        self.threshold = np.concatenate([t.threshold for t in trees] or [np.zeros(0)])
        dt = np.concatenate([t.decision_type for t in trees] or [np.zeros(0, np.int64)])
        self.default_left = (dt & 2).astype(bool)
        self.missing = (dt >> 2) & 3
        self.categorical = np.concatenate([cat(t) for t in trees] or [np.zeros(0, bool)])
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
        self.num_nan_to_zero = self.num_missing != _MISSING_NAN
        self.num_zero_missing = self.num_missing == _MISSING_ZERO
        self.num_nan_missing = self.num_missing == _MISSING_NAN
        self.cat_feature = self.feature[self.cat_idx]
        # One-row path: every split compared as numeric, then the rows' special values patched.
        zero_left = np.where(self.missing == _MISSING_ZERO, self.default_left, 0.0 <= self.threshold)
        self.if_zero = zero_left  # the value is 0 (or within ±1e-35)
        self.if_nan = np.where(self.missing == _MISSING_NAN, self.default_left, zero_left)  # NaN: 0 unless type NaN
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
            missing = (self.num_zero_missing & (np.abs(v) <= _ZERO)) | (self.num_nan_missing & nan)
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


class _Leaves:
    """Per-leaf quadrature for a set of trees: ``contributions(go)`` -> (rows, n + 1) without bias."""

    def __init__(self, trees: list[_Tree], offsets: np.ndarray, width: int, true_col: int) -> None:
        self.width = width
        leaves: list[tuple[float, list[tuple[int, float, list[tuple[int, bool]]]]]] = []
        for t, off in zip(trees, offsets, strict=True):
            if t.splits == 0:
                continue

            def walk(node: int, path: list[tuple[int, int, bool, float]], t: _Tree = t, off: int = int(off)) -> None:
                count = t.internal_count[node]
                for child, left in ((t.left_child[node], True), (t.right_child[node], False)):
                    c = t.leaf_count[~child] if child < 0 else t.internal_count[child]
                    step = path + [(int(t.split_feature[node]), off + node, left, c / count)]
                    if child < 0:
                        slots: dict[int, tuple[float, list[tuple[int, bool]]]] = {}
                        for feat, split, goes_left, ratio in step:
                            z, edges = slots.get(feat, (1.0, []))
                            slots[feat] = (z * ratio, edges + [(split, goes_left)])
                        leaves.append((float(t.leaf_value[~child]), [(f, z, e) for f, (z, e) in slots.items()]))
                    else:
                        walk(int(child), step)

            walk(0, [])
        depth = max((len(s) for _, s in leaves), default=1)
        reps = max((len(e) for _, s in leaves for _, _, e in s), default=1)
        n = len(leaves)
        self.value = np.array([v for v, _ in leaves], dtype=np.float64)
        self.z = np.ones((n, depth))
        self.feature = np.full((n, depth), width, dtype=np.int64)  # padding lands in the bias column
        self.split = np.full((n, depth, reps), true_col, dtype=np.int64)  # padding reads the True column
        self.left = np.ones((n, depth, reps), dtype=bool)
        for i, (_, slots) in enumerate(leaves):
            for j, (feat, z, edges) in enumerate(slots):
                self.z[i, j], self.feature[i, j] = z, feat
                for r, (split, goes_left) in enumerate(edges):
                    self.split[i, j, r], self.left[i, j, r] = split, goes_left
        nodes, weights = np.polynomial.legendre.leggauss(depth // 2 + 1)
        self.t = (nodes + 1.0) / 2.0  # Gauss-Legendre on [0, 1]
        self.w = weights / 2.0
        self.n_leaves = n

    def contributions(self, go: np.ndarray) -> np.ndarray:
        rows = go.shape[0]
        out = np.zeros((rows, self.width + 1))
        if self.n_leaves == 0:
            return out
        o = (go[:, self.split] == self.left).all(axis=-1).astype(np.float64)  # (rows, leaves, depth)
        g = self.z[..., None] + (o - self.z)[..., None] * self.t  # (rows, leaves, depth, q)
        ones = np.ones(g.shape[:2] + (1,) + g.shape[3:])
        before = np.cumprod(np.concatenate([ones, g[:, :, :-1]], axis=2), axis=2)
        after = np.cumprod(np.concatenate([ones, g[:, :, :0:-1]], axis=2), axis=2)[:, :, ::-1]
        phi = self.value[:, None] * (o - self.z) * ((before * after) @ self.w)  # (rows, leaves, depth)
        cols = (np.arange(rows)[:, None, None] * (self.width + 1) + self.feature).ravel()
        out += np.bincount(cols, weights=phi.ravel(), minlength=rows * (self.width + 1)).reshape(rows, -1)
        return out


class _Tables:
    """Trees with at most ``TABLE_MAX_SPLITS`` splits: contributions looked up by decision vector."""

    def __init__(self, trees: list[_Tree], offsets: np.ndarray, width: int, n_splits: int) -> None:
        self.width = width
        true_col, false_col = n_splits, n_splits + 1
        most = max((t.splits for t in trees), default=0)
        used = [np.unique(t.split_feature) for t in trees]
        wide = max((len(u) for u in used), default=0)
        self.splits = np.full((len(trees), max(most, 1)), false_col, dtype=np.int64)
        self.pow2 = (1 << np.arange(max(most, 1))).astype(np.int64)
        self.base = np.zeros(len(trees), dtype=np.int64)
        self.feature = np.full((len(trees), max(wide, 1)), width, dtype=np.int64)
        tables: list[np.ndarray] = []
        base = 0
        for i, (t, off, u) in enumerate(zip(trees, offsets, used, strict=True)):
            k = t.splits
            self.splits[i, :k] = off + np.arange(k)
            self.feature[i, : len(u)] = u
            # Every decision vector of this tree, as the (2**k, k + 2) go matrix its leaves read.
            codes = np.arange(1 << k, dtype=np.int64)
            go = np.empty((1 << k, k + 2), dtype=bool)
            go[:, :k] = (codes[:, None] >> np.arange(k)) & 1 == 1
            go[:, k], go[:, k + 1] = True, False
            local = _Tree(t.split_feature, t.threshold, t.decision_type, t.left_child, t.right_child,
                          t.leaf_value, t.leaf_count, t.internal_count, t.cat_boundaries, t.cat_threshold)
            phi = _Leaves([local], np.zeros(1, dtype=np.int64), width, k).contributions(go)
            table = np.zeros((1 << k, self.feature.shape[1]))
            table[:, : len(u)] = phi[:, u]
            tables.append(table)
            self.base[i] = base
            base += 1 << k
        self.table = np.concatenate(tables) if tables else np.zeros((1, 1))
        self.flat_feature = self.feature.ravel()
        self.n_trees = len(trees)
        # One row: each split's bit weight, summed per tree by one bincount (splits of other trees: bucket -1).
        self.row_tree = np.full(n_splits + 2, len(trees), dtype=np.int64)
        self.row_weight = np.zeros(n_splits + 2)
        for i, (t, off) in enumerate(zip(trees, offsets, strict=True)):
            self.row_tree[off : off + t.splits] = i
            self.row_weight[off : off + t.splits] = 1 << np.arange(t.splits)

    def contributions_row(self, go: np.ndarray) -> np.ndarray:
        """(n + 1,) contributions (bias column 0) of one row's split decisions (splits + 2,)."""
        if self.n_trees == 0:
            return np.zeros(self.width + 1)
        code = np.bincount(self.row_tree, weights=go * self.row_weight, minlength=self.n_trees + 1)[:-1]
        vals = self.table[code.astype(np.int64) + self.base]
        return np.bincount(self.flat_feature, weights=vals.ravel(), minlength=self.width + 1)

    def contributions(self, go: np.ndarray) -> np.ndarray:
        rows = go.shape[0]
        if self.n_trees == 0:
            return np.zeros((rows, self.width + 1))
        code = go[:, self.splits].astype(np.int64) @ self.pow2 + self.base  # (rows, trees)
        vals = self.table[code]  # (rows, trees, features used)
        if rows == 1:
            return np.bincount(self.flat_feature, weights=vals.ravel(), minlength=self.width + 1)[None, :]
        cols = (np.arange(rows)[:, None] * (self.width + 1) + self.flat_feature).ravel()
        return np.bincount(cols, weights=vals.ravel(), minlength=rows * (self.width + 1)).reshape(rows, -1)


class TreeExplainer:
    """Exact path-dependent TreeSHAP of a binary LightGBM text model (see the module doc).

    ``contributions(x)``: x of shape (rows, n) float64, in the model's feature order; returns
    (rows, n + 1) float64, the last column the bias. Thread-safe: it holds no mutable state.
    """

    def __init__(self, model_txt: str, width: int) -> None:
        header, blocks = _parse(model_txt)
        if not blocks:
            raise ValueError("the text holds no trees (not a LightGBM text model)")
        if int(header.get("num_tree_per_iteration", "1")) != 1:
            raise ValueError("only single-output models are supported (num_tree_per_iteration must be 1)")
        if "average_output" in header:
            raise ValueError("random-forest models (average_output) are not supported")
        n = int(header.get("max_feature_idx", "-1")) + 1
        if n != width:
            raise ValueError(f"the model has {n} features, the card {width}")
        trees = [_tree(b) for b in blocks]
        self.width = width
        self.bias = float(sum(t.expected_value() for t in trees))
        self._splits = _Splits(trees)
        offsets = self._splits.offsets[:-1]
        small = [i for i, t in enumerate(trees) if t.splits <= TABLE_MAX_SPLITS]
        large = [i for i, t in enumerate(trees) if t.splits > TABLE_MAX_SPLITS]
        n_splits = len(self._splits.feature)
        self._tables = _Tables([trees[i] for i in small], offsets[small], width, n_splits)
        self._leaves = _Leaves([trees[i] for i in large], offsets[large], width, n_splits) if large else None

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(rows, n + 1) contributions of ``x`` (rows, n); column n is the bias; rows sum to the raw score."""
        x = np.asarray(x, dtype=np.float64).reshape(-1, self.width)
        x = np.where(np.abs(x) <= _ZERO, 0.0, x)  # NaN compares false and stays NaN
        if x.shape[0] == 1 and self._leaves is None:  # the request path: one row, every tree tabulated
            out = self._tables.contributions_row(self._splits.decide_row(x[0]))
            out[self.width] = self.bias
            return out[None, :]
        go = self._splits.decide(x)
        out = self._tables.contributions(go)
        if self._leaves is not None:
            out = out + self._leaves.contributions(go)
        out[:, self.width] = self.bias
        return out
