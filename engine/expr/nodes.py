"""The tree of the expression language: immutable nodes, and the walks every consumer shares.

``engine.expr.syntax.parse`` builds it; the type checker, the code generator, the durable-rules
translator, satisfiability and lint read it (their shared vocabulary of children, printing and
negation is ``engine.expr.vocabulary``). Every node is a frozen dataclass with its 1-based column
``pos``, so one tree can be shared by every flow version that writes the same text
(``engine.policy.sources.ParseTrees``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal

__all__ = [
    "IN_LIST",
    "BinOp",
    "BoolOp",
    "Call",
    "Compare",
    "InList",
    "Literal",
    "Name",
    "Neg",
    "Node",
    "Not",
    "chain",
    "lists_in",
    "names_in",
]

IN_LIST = "in_list"  # the function a custom-list membership test parses to (not callable by name)


@dataclass(frozen=True, slots=True)
class Literal:
    value: float | int | Decimal | str | bool | None  # numbers as written: see engine.expr.numbers
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Neg:
    operand: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Not:
    operand: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class BinOp:
    op: str  # + - * / %
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # == != < <= > >=
    left: Node
    right: Node
    pos: int = 0


@dataclass(frozen=True, slots=True)
class InList:
    operand: Node
    items: tuple[Literal, ...]
    negated: bool = False
    pos: int = 0


@dataclass(frozen=True, slots=True)
class BoolOp:
    op: str  # and / or
    items: tuple[Node, ...]
    pos: int = 0


@dataclass(frozen=True, slots=True)
class Call:
    func: str
    args: tuple[Node, ...]
    pos: int = 0


Node = Literal | Name | Neg | Not | BinOp | Compare | InList | BoolOp | Call


def chain(node: BinOp) -> tuple[Node, list[BinOp]]:
    """A left-deep run of arithmetic as (first operand, [each BinOp from the innermost out]).

    ``a - b + c * d`` is ``((a - b) + (c * d))``: first ``a``, then the nodes ``- b`` and ``+ (c * d)``.
    The parser builds ``x + x + ... + x`` as a left-deep tree as deep as the chain is long (up to
    ~2,000 terms in 4,000 characters); walking it with this loop instead of recursion keeps every
    consumer within Python's recursion limit and the generated code flat.
    """
    spine: list[BinOp] = []
    current: Node = node
    while isinstance(current, BinOp):
        spine.append(current)
        current = current.left
    spine.reverse()
    return current, spine


def _nodes(node: Node) -> Iterator[Node]:
    """Every node of the expression, with a stack (no recursion: chains may be ~2,000 deep)."""
    stack: list[Node] = [node]
    while stack:
        n = stack.pop()
        yield n
        if isinstance(n, (Neg, Not)):
            stack.append(n.operand)
        elif isinstance(n, (BinOp, Compare)):
            stack.extend((n.left, n.right))
        elif isinstance(n, InList):
            stack.append(n.operand)
        elif isinstance(n, BoolOp):
            stack.extend(n.items)
        elif isinstance(n, Call):
            stack.extend(n.args)


def names_in(node: Node) -> set[str]:
    """Every field/feature name the expression reads."""
    return {n.name for n in _nodes(node) if isinstance(n, Name)}


def lists_in(node: Node) -> set[str]:
    """Every custom list the expression reads (``x in list('name')``)."""
    return {
        str(n.args[1].value)
        for n in _nodes(node)
        if isinstance(n, Call) and n.func == IN_LIST and len(n.args) == 2 and isinstance(n.args[1], Literal)
    }
