"""The vocabulary of the expression language: what every consumer of a parsed condition shares.

One table of operator negation and mirroring, the children of a node, the printer and the normal
forms, used by the type checker (``engine.expr.check``), the code generator
(``engine.expr.codegen``), the durable-rules translator (``engine.policy.durable``), the
satisfiability checker (``engine.policy.satisfy``) and lint (``engine.policy.lint``). A new node
kind of ``engine.expr.syntax`` is added here once (``children``, ``show``) and every consumer sees it.

Pure functions over the immutable nodes of ``engine.expr.syntax``; nothing here evaluates.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from types import MappingProxyType

from engine.expr.nodes import IN_LIST, BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not, chain

__all__ = ["MIRRORED", "NEGATED", "children", "dnf", "negate", "nnf", "show"]

#: ``not (a OP b)`` is ``a NEGATED[OP] b`` (for values that are present: the callers handle nulls).
NEGATED: Mapping[str, str] = MappingProxyType({"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"})
#: ``a OP b`` is ``b MIRRORED[OP] a``: the same test with its sides swapped.
MIRRORED: Mapping[str, str] = MappingProxyType({"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="})


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-expressions of ``node``, left to right (a leaf has none)."""
    if isinstance(node, (Neg, Not)):
        return (node.operand,)
    if isinstance(node, (BinOp, Compare)):
        return (node.left, node.right)
    if isinstance(node, InList):
        return (node.operand, *node.items)
    if isinstance(node, BoolOp):
        return node.items
    if isinstance(node, Call):
        return node.args
    return ()


def negate(node: Node) -> Node:
    """The logical negation of a condition, with 'not' pushed down to the leaves."""
    if isinstance(node, Not):
        return node.operand
    if isinstance(node, Compare):
        return Compare(NEGATED[node.op], node.left, node.right, node.pos)
    if isinstance(node, InList):
        return InList(node.operand, node.items, not node.negated, node.pos)
    if isinstance(node, BoolOp):
        return BoolOp("or" if node.op == "and" else "and", tuple(negate(i) for i in node.items), node.pos)
    return Not(node, getattr(node, "pos", 0))


def show(node: Node) -> str:  # noqa: C901 (the printer: one case per expression node kind)
    """The expression as text (canonical spacing), for messages; parsing it gives the same tree."""
    if isinstance(node, Literal):
        if isinstance(node.value, bool):
            return "true" if node.value else "false"
        if node.value is None:
            return "null"
        if isinstance(node.value, str):
            return "'" + node.value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return str(node.value) if isinstance(node.value, Decimal) else repr(node.value)
    if isinstance(node, Name):
        return node.name
    if isinstance(node, Neg):
        return f"-{_wrap(node.operand)}"
    if isinstance(node, Not) and isinstance(node.operand, Call) and node.operand.func == IN_LIST:
        return f"{_wrap(node.operand.args[0])} not in list({show(node.operand.args[1])})"
    if isinstance(node, Not):
        return f"not {_wrap(node.operand)}"
    if isinstance(node, BinOp):  # a left-deep chain with a loop (syntax.chain): no recursion per term
        first, spine = chain(node)
        text = _wrap(first)
        for step in spine:
            text = f"{text} {step.op} {_wrap(step.right)}"
        return text
    if isinstance(node, Compare):
        return f"{_wrap(node.left)} {node.op} {_wrap(node.right)}"
    if isinstance(node, InList):
        items = ", ".join(show(i) for i in node.items)
        return f"{_wrap(node.operand)} {'not in' if node.negated else 'in'} [{items}]"
    if isinstance(node, BoolOp):
        return f" {node.op} ".join(_wrap(i) if isinstance(i, BoolOp) else show(i) for i in node.items)
    if isinstance(node, Call) and node.func == IN_LIST:
        return f"{_wrap(node.args[0])} in list({show(node.args[1])})"
    if isinstance(node, Call):
        return f"{node.func}(" + ", ".join(show(a) for a in node.args) + ")"
    raise TypeError(type(node).__name__)  # pragma: no cover


def _wrap(node: Node) -> str:
    text = show(node)
    return f"({text})" if isinstance(node, (BinOp, Compare, BoolOp, InList, Not)) else text


def nnf(node: Node) -> Node:
    """Negation normal form: every 'not' over a comparison, list test or and/or pushed into it."""
    if isinstance(node, Not):
        inner = node.operand
        if isinstance(inner, (Compare, InList, BoolOp, Not)):
            return nnf(negate(inner))
        return node
    if isinstance(node, BoolOp):
        return BoolOp(node.op, tuple(nnf(i) for i in node.items), node.pos)
    return node


def dnf(node: Node, limit: int) -> list[list[Node]] | None:
    """Disjunctive normal form of an NNF condition: an 'or' of 'and's of atoms.

    None when it would have more than ``limit`` conjunctions (the expansion is exponential in the
    number of nested 'or's, so the caller bounds its cost).
    """
    if isinstance(node, BoolOp) and node.op == "or":
        out: list[list[Node]] = []
        for item in node.items:
            sub = dnf(item, limit)
            if sub is None:
                return None
            out += sub
            if len(out) > limit:
                return None
        return out
    if isinstance(node, BoolOp) and node.op == "and":
        acc: list[list[Node]] = [[]]
        for item in node.items:
            sub = dnf(item, limit)
            if sub is None:
                return None
            acc = [a + b for a in acc for b in sub]
            if len(acc) > limit:
                return None
        return acc
    return [[node]]
