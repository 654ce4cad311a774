"""engine.expr.vocabulary: the one table of negation and mirroring, children, printer and normal forms."""

from __future__ import annotations

import itertools
import operator

import pytest

from engine.expr import names_in, parse
from engine.expr.nodes import BoolOp, Compare, InList, Name, Node, Not
from engine.expr.vocabulary import MIRRORED, NEGATED, children, dnf, negate, nnf, show

_OPS = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge}
EXPRESSIONS = [
    "amount > price * 0.9 and home in ['rent', 'other']",
    "not (age < 18 or country not in ['DE', 'FR']) and is_null(email)",
    "-(debt - 3) / income >= 0.45 or not flagged",
    "a == 'it\\'s' or (b != 1 and c <= 2.5 and d >= -7)",
]


@pytest.mark.parametrize(("op", "a", "b"), [(op, a, b) for op in _OPS for a, b in itertools.product((1, 2, 3), repeat=2)])
def test_negated_and_mirrored_agree_with_the_operators(op: str, a: int, b: int) -> None:
    """not (a OP b) == a NEGATED[OP] b, and a OP b == b MIRRORED[OP] a, for every operator and order."""
    assert (not _OPS[op](a, b)) == _OPS[NEGATED[op]](a, b)
    assert _OPS[op](a, b) == _OPS[MIRRORED[op]](b, a)


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_show_prints_what_parses_back_to_the_same_tree(text: str) -> None:
    """The printer's text parses to a tree that prints the same (a fixed point after one round)."""
    printed = show(parse(text))
    assert show(parse(printed)) == printed


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_children_reach_every_name(text: str) -> None:
    """Walking `children` from the root finds exactly the names `names_in` reports."""
    node = parse(text)
    found: set[str] = set()
    stack: list[Node] = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, Name):
            found.add(current.name)
        stack.extend(children(current))
    assert found == names_in(node)


def _nots_over_tests(node: Node) -> int:
    own = isinstance(node, Not) and isinstance(node.operand, (Compare, InList, BoolOp, Not))
    return int(own) + sum(_nots_over_tests(c) for c in children(node))


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_nnf_pushes_every_not_into_the_tests(text: str) -> None:
    """No 'not' is left over a comparison, list test or and/or; negating twice gives the same text."""
    node = parse(text)
    assert _nots_over_tests(nnf(node)) == 0
    assert show(nnf(negate(negate(node)))) == show(nnf(node))


def test_dnf_is_bounded() -> None:
    """(a or b) and (c or d) has 4 conjunctions: given with a limit of 4, refused (None) under it."""
    node = parse("(a > 1 or b > 1) and (c > 1 or d > 1)")
    assert [[show(atom) for atom in conj] for conj in dnf(node, 4) or []] == [
        ["a > 1", "c > 1"], ["a > 1", "d > 1"], ["b > 1", "c > 1"], ["b > 1", "d > 1"],
    ]
    assert dnf(node, 3) is None
