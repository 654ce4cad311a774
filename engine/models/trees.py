"""LightGBM's text model (``model.txt``) as arrays, and the paths from each tree's root to its leaves.

``parse_model(text)`` splits the text into its header and one block per tree; ``read_tree(block)``
gives a ``Tree`` (LightGBM's own field names: ``split_feature``, ``threshold``, ``left_child``, …; a
child ``< 0`` is leaf ``~child``). ``walk_leaves`` and ``group_leaves`` list each leaf with, per distinct
feature on its path, the product ``z`` of the cover ratios ``count(child) / count(parent)`` and the
splits it goes through: what path-dependent TreeSHAP needs (``engine.models.explain``, which cites the
algorithm). Pure: no LightGBM, no files.

Errors: ``ValueError`` for a linear tree (``linear_tree=true``), which this reading does not support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Leaf", "Tree", "group_leaves", "parse_model", "read_tree", "walk_leaves"]


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

