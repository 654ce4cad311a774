"""Type checking of expressions against the names a flow defines.

Types are ``number``, ``string`` and ``bool``; every value may also be *missing* (null). The
checker computes each node's type and whether it can be missing, which the code generator uses to
emit null guards only where they are needed, and reports the first type error with its column.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from engine.expr.functions import FUNCTIONS
from engine.expr.nodes import IN_LIST, BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not, chain
from engine.expr.numbers import is_number

__all__ = ["LIST_PREFIX", "Env", "ExprTypeError", "Symbol", "Typed", "check", "list_symbol"]

#: Env key prefix of a declared custom list (``list:blocked_devices``): no field name contains ':'.
LIST_PREFIX = "list:"
#: What a field may identify (``identifies:``) -> the kinds of custom list it may be looked up in.
_LIST_KINDS_OF = {"card": {"card"}, "customer": {"customer"}, "device": {"device"}, "ip": {"ip"},
                  "email": {"email_domain"}, "email_domain": {"email_domain"}}


class ExprTypeError(ValueError):
    """The expression is well-formed but does not type-check; `column` is 1-based."""

    def __init__(self, message: str, column: int, hint: str | None = None, code: str = "type_error") -> None:
        super().__init__(f"{message} (at column {column})")
        self.message = message
        self.column = column
        self.hint = hint
        self.code = code


@dataclass(frozen=True, slots=True)
class Typed:
    """The type of a value and whether it can be missing."""

    type: str  # "number", "string", "bool" or "null"
    nullable: bool


@dataclass(frozen=True, slots=True)
class Symbol:
    """A name an expression may read: an input field, a derived feature or a model score."""

    type: str
    nullable: bool
    kind: str = "input"  # "input", "derived" or "score"
    categories: frozenset[str] | None = None
    bounds: tuple[float, float] | None = None  # numbers: lo <= every present value <= hi
    decimal: bool = False  # numbers: held as a decimal.Decimal at run time (derived arithmetic), not a double
    magnitude: int | None = None  # derived numbers: at most this many digits before the point (None: unknown)
    identifies: str | None = None  # input fields: what the value identifies (card, device, ...); lists: their kind


def list_symbol(kind: str) -> Symbol:
    """The env entry (under ``LIST_PREFIX + name``) of a declared custom list of ``kind``."""
    return Symbol("list", False, "list", identifies=kind)


Env = Mapping[str, Symbol]


def _literal_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if is_number(value):
        return "number"
    return "string"


def check(node: Node, env: Env) -> Typed:
    """Type-check `node`; raises ExprTypeError naming the problem and its column."""
    return _Checker(env).visit(node)


class _Checker:
    def __init__(self, env: Env) -> None:
        self.env = env

    # Long (84 lines): the type rules, one short case per expression node kind, read top to bottom.
    def visit(self, node: Node) -> Typed:  # noqa: C901 (the type rules: one case per expression node kind)
        if isinstance(node, Literal):
            lit = _literal_type(node.value)
            return Typed(lit, lit == "null")
        if isinstance(node, Name):
            sym = self.env.get(node.name)
            if sym is None:
                hint = _suggest(node.name, [k for k in self.env if not k.startswith(LIST_PREFIX)])
                raise ExprTypeError(
                    f"unknown field {node.name!r}", node.pos, hint=hint, code="unknown_field"
                )
            return Typed(sym.type, sym.nullable)
        if isinstance(node, Neg):
            t = self.visit(node.operand)
            self._want(t, "number", node.operand, "'-' needs a number")
            return Typed("number", t.nullable)
        if isinstance(node, Not):
            t = self.visit(node.operand)
            self._want(t, "bool", node.operand, "'not' needs a condition")
            return Typed("bool", t.nullable)
        if isinstance(node, BinOp):  # a left-deep chain is walked with a loop (see syntax.chain)
            first, spine = chain(node)
            ft = self.visit(first)
            self._want(ft, "number", first, f"'{spine[0].op}' needs numbers on both sides")
            nullable = ft.nullable
            for step in spine:
                rt = self.visit(step.right)
                self._want(rt, "number", step.right, f"'{step.op}' needs numbers on both sides")
                nullable = nullable or rt.nullable
                if step.op in ("/", "%") and not (isinstance(step.right, Literal) and step.right.value != 0):
                    nullable = True  # division by zero is missing
            return Typed("number", nullable)
        if isinstance(node, Compare):
            lt, rt = self.visit(node.left), self.visit(node.right)
            if "null" in (lt.type, rt.type):
                side = node.left if lt.type != "null" else node.right
                raise ExprTypeError(
                    "comparing with null is never true",
                    node.pos,
                    hint="use is_null(x) or is_not_null(x)" if not isinstance(side, Literal) else None,
                    code="null_comparison",
                )
            if lt.type != rt.type:
                raise ExprTypeError(
                    f"cannot compare {lt.type} with {rt.type}", node.pos, code="type_mismatch"
                )
            if lt.type == "bool" and node.op not in ("==", "!="):
                raise ExprTypeError(f"'{node.op}' does not apply to true/false values", node.pos)
            self._check_category(node.left, node.right)
            self._check_category(node.right, node.left)
            return Typed("bool", lt.nullable or rt.nullable)
        if isinstance(node, InList):
            t = self.visit(node.operand)
            kinds = {_literal_type(i.value) for i in node.items}
            if len(kinds) != 1:
                raise ExprTypeError("list items must all be of one type", node.pos, code="type_mismatch")
            (kind,) = kinds
            if kind != t.type:
                raise ExprTypeError(f"cannot look for a {t.type} in a list of {kind}s", node.pos, code="type_mismatch")
            for item in node.items:
                self._check_category(node.operand, item)
            return Typed("bool", t.nullable)
        if isinstance(node, BoolOp):
            nullable = False
            for part in node.items:
                t = self.visit(part)
                self._want(t, "bool", part, f"'{node.op}' joins conditions")
                nullable = nullable or t.nullable
            return Typed("bool", nullable)
        if isinstance(node, Call) and node.func == IN_LIST:
            return self._in_list(node)
        if isinstance(node, Call):
            fn = FUNCTIONS.get(node.func)
            if fn is None:
                raise ExprTypeError(
                    f"unknown function {node.func!r}",
                    node.pos,
                    hint=_suggest(node.func, list(FUNCTIONS)) or "see the list of functions in docs/expressions.md",
                    code="unknown_function",
                )
            args = [self.visit(a) for a in node.args]
            try:
                return fn.result(args)
            except ValueError as exc:
                raise ExprTypeError(f"{node.func}(): {exc}", node.pos, code="bad_arguments") from None
        raise ExprTypeError(f"unsupported expression {type(node).__name__}", 1)  # pragma: no cover

    def _in_list(self, node: Call) -> Typed:
        """``x in list('name')``: a declared list, and a field that identifies what the list holds."""
        operand, name_node = node.args
        name = str(name_node.value) if isinstance(name_node, Literal) else ""
        sym = self.env.get(LIST_PREFIX + name)
        if sym is None:
            declared = sorted(k[len(LIST_PREFIX):] for k in self.env if k.startswith(LIST_PREFIX))
            raise ExprTypeError(
                f"unknown list {name!r}", getattr(name_node, "pos", node.pos),
                hint=_suggest(name, declared) or f"declared in policies/custom_lists.yaml: {', '.join(declared) or 'none'}",
                code="unknown_list",
            )
        t = self.visit(operand)
        kind = sym.identifies or ""
        if not isinstance(operand, Name) or t.type not in ("string", "number"):
            raise ExprTypeError(f"only a text or number field can be looked up in list {name!r}", node.pos, code="type_mismatch")
        ident = self.env[operand.name].identifies if operand.name in self.env else None
        if ident is None:
            raise ExprTypeError(
                f"field {operand.name!r} does not say what it identifies, so it cannot be looked up in {kind} list {name!r}",
                node.pos, hint=f"declare it with identifies: {'email' if kind == 'email_domain' else kind}", code="list_kind_mismatch",
            )
        if kind not in _LIST_KINDS_OF.get(ident, set()):
            raise ExprTypeError(
                f"{kind} list {name!r} cannot hold {operand.name!r}, which identifies: {ident}", node.pos,
                hint="use a list of the field's kind", code="list_kind_mismatch",
            )
        return Typed("bool", t.nullable)

    def _want(self, t: Typed, kind: str, node: Node, message: str) -> None:
        if t.type != kind:
            raise ExprTypeError(f"{message}, got {t.type}", getattr(node, "pos", 1), code="type_mismatch")

    def _check_category(self, side: Node, other: Node) -> None:
        if isinstance(side, Name) and isinstance(other, Literal) and isinstance(other.value, str):
            sym = self.env.get(side.name)
            if sym is not None and sym.categories is not None and other.value not in sym.categories:
                raise ExprTypeError(
                    f"{other.value!r} is not an allowed value of {side.name!r}",
                    other.pos,
                    hint="allowed: " + ", ".join(sorted(sym.categories)),
                    code="unknown_category",
                )


def _suggest(name: str, known: list[str]) -> str | None:
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.7)
    return f"did you mean {close[0]!r}?" if close else None


