"""durable-rules as a rule backend: rule conditions translated to its JSON rules, run by its Rete engine.

A rule file marked ``engine: durable`` is evaluated here instead of by the generated Python
function; outcomes must not depend on the backend, so the translation keeps our semantics exactly:

* A condition is translated in negation normal form, the way ``engine.expr.codegen`` compiles it
  (``not`` is pushed to the leaves), so a comparison that touches a missing value is false, and so
  is its negation. A field the request lacks (or holds as null) is left out of the fact, and
  durable-rules never matches a comparison on an absent field; a field used on the right-hand side
  of a comparison is guarded with ``$ex``, because durable-rules *does* match ``a > b`` when ``b``
  is absent.
* ``is_null(x)`` is ``$nex``, ``is_not_null(x)`` is ``$ex``, ``x in [..]`` is an ``$or`` of
  ``$eq``, ``between`` is a pair of comparisons, and a decision table's first-hit guard
  ``if(row, false, true)`` ("the row did not match") is its complement: some cell is false or
  reads a missing value.
* A comparison is a field against a literal, another field, or arithmetic (``+ - *``, and ``/`` by
  a non-zero number) over fields and literals, as durable-rules requires (the field on the left).
  Anything else raises ``NotExpressible`` with the reason.

The translation runs in ``engine.policy.durable_ruleset.DurableRuleset``, which also holds what
works around durable-rules' traps (facts, sessions, its JSON).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from engine.errors import VerdictError
from engine.expr.check import Env, check
from engine.expr.nodes import IN_LIST, BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not, names_in
from engine.expr.numbers import bracket, is_number, is_plain, to_decimal
from engine.expr.vocabulary import MIRRORED, NEGATED

__all__ = ["MARKER", "NotExpressible", "decimal_key", "field_key", "request_rule", "to_durable"]

#: Present (= 1) in every request fact; every rule requires it (the session state never has it).
MARKER = "verdict_request"

_OPS = {"==": "$eq", "!=": "$neq", "<": "$lt", "<=": "$lte", ">": "$gt", ">=": "$gte"}
_HI = "__hi"  # suffix of the key of a decimal field's upper double (see ``decimal_key``)
_ARITHMETIC = (
    "durable-rules computes arithmetic in binary floating point (0.1 + 0.2 is not 0.3 there), not in "
    "decimal as the expression language does; compute it as a derived feature"
)
_TRUE: dict[str, Any] = {"$ex": {MARKER: 1}}  # holds for every request fact
_FALSE: dict[str, Any] = {"$nex": {MARKER: 1}}  # holds for none


class NotExpressible(VerdictError):
    """A rule condition that durable-rules cannot evaluate with our semantics; `reason` says why."""

    code = "not_expressible_in_durable"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def field_key(name: str) -> str:
    """The key of a field in a durable-rules fact (prefixed: `sid` and `id` are durable's own).

    For a field held as a decimal (a derived feature computed by arithmetic, ``Symbol.decimal``)
    this key carries the largest double whose decimal is not above the value, and
    ``decimal_key`` the smallest double whose decimal is not below it (both the same double when
    the value is a double's decimal): see ``engine.expr.numbers.bracket``.
    """
    return f"f_{name}"


def decimal_key(name: str) -> str:
    """The key of a decimal field's upper double (see ``field_key``)."""
    return f"f_{name}{_HI}"


#: Which double of a decimal field d (lo <= d <= hi) answers `d op v` for a double's decimal v.
_DECIMAL_SIDE = {"<": "lo", ">=": "lo", "<=": "hi", ">": "hi"}


# -- translation --------------------------------------------------------------------------------


def to_durable(node: Node, env: Env) -> dict[str, Any]:
    """The durable-rules JSON condition that holds exactly when the checked condition `node` does."""
    return _Translator(env).match(node, True)


class _Translator:
    def __init__(self, env: Env) -> None:
        self.env = env

    def match(self, node: Node, positive: bool) -> dict[str, Any]:
        """Holds exactly when codegen's ``cond(node, positive)`` is true."""
        if isinstance(node, BoolOp):
            op = node.op if positive else ("or" if node.op == "and" else "and")
            return _join(op, [self.match(i, positive) for i in node.items])
        if isinstance(node, Not):
            return self.match(node.operand, not positive)
        if isinstance(node, Literal):
            if node.value is None:
                return _FALSE
            if isinstance(node.value, bool):
                return _TRUE if node.value == positive else _FALSE
            raise NotExpressible(f"the value {node.value!r} is not a condition")
        if isinstance(node, Compare):
            return self.compare(node.op if positive else NEGATED[node.op], node.left, node.right)
        if isinstance(node, InList):
            return self.in_list(node, node.negated != positive)
        if isinstance(node, Name):
            if check(node, self.env).type != "bool":
                raise NotExpressible(f"{node.name!r} is not a true/false field")
            return {"$eq": {field_key(node.name): positive}}
        if isinstance(node, Call):
            return self.call(node, positive)
        raise NotExpressible(f"{type(node).__name__} is not a condition")

    def unmatch(self, node: Node, positive: bool) -> dict[str, Any]:
        """Holds exactly when codegen's ``cond(node, positive)`` is false (the complement)."""
        if isinstance(node, BoolOp):
            op = node.op if positive else ("or" if node.op == "and" else "and")
            return _join("or" if op == "and" else "and", [self.unmatch(i, positive) for i in node.items])
        if isinstance(node, Not):
            return self.unmatch(node.operand, not positive)
        opposite = self.match(node, not positive)
        if isinstance(node, Literal) or (isinstance(node, Call) and node.func in ("is_null", "is_not_null", "if")):
            if isinstance(node, Literal) and node.value is None:
                return _TRUE
            return opposite  # never missing: the complement is the opposite test
        missing = [{"$nex": {field_key(n): 1}} for n in sorted(names_in(node))]
        return _join("or", [opposite, *missing])

    # -- leaves -------------------------------------------------------------------------------

    def key(self, node: Node) -> str:
        if not isinstance(node, Name):
            raise NotExpressible("durable-rules tests fields, not computed values")
        return field_key(node.name)

    def decimal(self, node: Node) -> bool:
        sym = self.env.get(node.name) if isinstance(node, Name) else None
        return sym is not None and sym.decimal

    def compare(self, op: str, left: Node, right: Node) -> dict[str, Any]:
        """`left op right` with the decimal semantics of the expression language, on doubles.

        A double field against a double (a field, or a literal a double holds exactly) compares
        as is: doubles order as their decimals do. A literal no double holds is replaced by the
        double on the right side of it (``bracket``), and a decimal field is compared through the
        double below or above it (``field_key``); two decimal fields cannot be compared so.
        """
        if check(left, self.env).type == "string" and op not in ("==", "!="):
            raise NotExpressible("durable-rules orders text by its escaped JSON form, not by characters")
        if isinstance(left, Name) and not (self.decimal(right) and not self.decimal(left)):
            field, other = left, right
        elif isinstance(right, Name):
            field, other, op = right, left, MIRRORED[op]
        else:
            if isinstance(left, (BinOp, Neg)) or isinstance(right, (BinOp, Neg)):
                raise NotExpressible(_ARITHMETIC)
            raise NotExpressible(
                "neither side of the comparison is a plain field; durable-rules compares a field "
                "with a value or with another field (e.g. 'a > b', not 'abs(a) > 1')"
            )
        guards = [{"$ex": {field_key(n): 1}} for n in sorted(names_in(other) - {field.name})]
        if check(field, self.env).type != "number":
            return _join("and", [*guards, {_OPS[op]: {field_key(field.name): self.value(other)}}])
        if isinstance(other, Name) and self.decimal(other):
            raise NotExpressible("durable-rules cannot compare two derived decimal values exactly; compare them in a derived feature")
        if isinstance(other, Literal) and is_number(other.value) and not is_plain(other.value):
            lo, hi = bracket(to_decimal(other.value))  # type: ignore[arg-type]
            if lo != hi:
                return self._between_doubles(op, field, lo, hi)
            other = Literal(lo)
        value = self.value(other)
        if not self.decimal(field):
            return _join("and", [*guards, {_OPS[op]: {field_key(field.name): value}}])
        lo_key, hi_key = field_key(field.name), decimal_key(field.name)
        if op in _DECIMAL_SIDE:
            test = {_OPS[op]: {lo_key if _DECIMAL_SIDE[op] == "lo" else hi_key: value}}
        elif op == "==":
            test = _join("and", [{"$eq": {lo_key: value}}, {"$eq": {hi_key: value}}])
        else:
            test = _join("or", [{"$neq": {lo_key: value}}, {"$neq": {hi_key: value}}])
        return _join("and", [*guards, test])

    def _between_doubles(self, op: str, field: Name, lo: float, hi: float) -> dict[str, Any]:
        """A double field against a literal strictly between the adjacent doubles lo and hi."""
        if self.decimal(field):
            raise NotExpressible(
                "durable-rules cannot compare a derived decimal value with a number no double holds "
                "(more than 15-17 significant digits); round the number"
            )
        key = field_key(field.name)
        if op == "==":
            return _FALSE
        if op == "!=":
            return {"$ex": {key: 1}}
        bound = {"<": hi, "<=": lo, ">": lo, ">=": hi}[op]
        strict = {"<": "<", "<=": "<=", ">": ">", ">=": ">="}[op]
        return {_OPS[strict]: {key: bound}}

    def value(self, node: Node) -> Any:
        """A right-hand side: a literal or a field reference (arithmetic is refused: see _ARITHMETIC)."""
        if isinstance(node, Literal):
            if node.value is None:
                raise NotExpressible("null is not a value to compare with; use is_null(x)")
            return node.value
        if isinstance(node, Name):
            return {"$m": field_key(node.name)}
        if isinstance(node, (BinOp, Neg)):
            raise NotExpressible(_ARITHMETIC)
        if isinstance(node, Call):
            raise NotExpressible(f"durable-rules has no function {node.func}(); compute it as a derived feature")
        raise NotExpressible("a condition cannot be used as a value in durable-rules")

    def in_list(self, node: InList, member: bool) -> dict[str, Any]:
        key = self.key(node.operand)
        values: list[Any] = []
        for item in node.items:
            v = item.value
            if is_number(v) and not is_plain(v):
                lo, hi = bracket(to_decimal(v))  # type: ignore[arg-type]
                if lo != hi:
                    continue  # no double stands for it: never equal
                v = lo
            values.append(v)
        values = list(dict.fromkeys(values))
        if self.decimal(node.operand):
            hi_key = decimal_key(node.operand.name)  # type: ignore[union-attr]
            equal = [_join("and", [{"$eq": {key: v}}, {"$eq": {hi_key: v}}]) for v in values]
            if member:
                return _join("or", equal)
            return _join("and", [*_present(key, values), *[_join("or", [{"$neq": {key: v}}, {"$neq": {hi_key: v}}]) for v in values]])
        if member:
            return _join("or", [{"$eq": {key: v}} for v in values])
        return _join("and", [*_present(key, values), *[{"$neq": {key: v}} for v in values]])

    def call(self, node: Call, positive: bool) -> dict[str, Any]:
        if node.func == IN_LIST:
            raise NotExpressible(
                "durable-rules cannot read custom lists (x in list('name')): their members change while the "
                "rules run; write the rule in a rule file without 'engine: durable'"
            )
        if node.func in ("is_null", "is_not_null"):
            want_missing = (node.func == "is_null") == positive
            return {"$nex" if want_missing else "$ex": {self.key(node.args[0]): 1}}
        if node.func == "between":
            x, lo, hi = node.args
            self.key(x)
            if positive:
                return _join("and", [self.compare(">=", x, lo), self.compare("<=", x, hi)])
            guards = [{"$ex": {field_key(n): 1}} for n in sorted(names_in(lo) | names_in(hi))]
            return _join("and", [*guards, _join("or", [self.compare("<", x, lo), self.compare(">", x, hi)])])
        if node.func == "if" and len(node.args) == 3:
            cond, then, other = node.args
            if isinstance(then, Literal) and isinstance(other, Literal) and {then.value, other.value} == {True, False}:
                holds = positive == bool(then.value)  # if(c, true, false) is c; if(c, false, true) is "c is not true"
                return self.match(cond, True) if holds else self.unmatch(cond, True)
            raise NotExpressible("durable-rules has no if(); only the decision tables' if(row, false, true) translates")
        raise NotExpressible(f"durable-rules has no function {node.func}(); compute it as a derived feature")


def _present(key: str, values: Sequence[Any]) -> list[dict[str, Any]]:
    """An existence test when no inequality is left to require the field (durable never matches
    a test on an absent field, but an empty 'and' holds for every fact)."""
    return [] if values else [{"$ex": {key: 1}}]


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _join(op: str, items: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """``$and``/``$or`` of `items`, flattened, with the constants folded."""
    unit, zero = (_TRUE, _FALSE) if op == "and" else (_FALSE, _TRUE)
    key = f"${op}"
    out: list[dict[str, Any]] = []
    for item in items:
        if item == zero:
            return zero
        if item == unit:
            continue
        parts = item[key] if len(item) == 1 and key in item else [item]
        out.extend(p for p in parts if p not in out)
    if not out:
        return unit
    return out[0] if len(out) == 1 else {key: out}


def request_rule(node: Node, env: Env) -> dict[str, Any] | None:
    """The pattern of a rule over request facts: ``to_durable(node, env)`` and the ``MARKER`` test.

    None when the condition never holds: as a rule, its ``$nex`` of the marker would match the
    session's own state document, and re-fire forever. Raises ``NotExpressible`` as ``to_durable``.
    """
    condition = to_durable(node, env)
    if condition == _FALSE:
        return None
    return _join("and", [{"$eq": {MARKER: 1}}, condition])
