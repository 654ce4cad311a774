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

Traps of durable-rules 2.0.28 this module works around (measured, see docs/durable-rules.md):

* Every request is asserted as a *fact* (an event is consumed by the first rule that matches it),
  under a fresh session id, and the session is deleted afterwards: the C engine caps live sessions
  at 1,024 per ruleset.
* Deleting a session in which no action ever started frees uninitialised pointers (a crash, e.g.
  "free(): invalid pointer"): a catch-all rule matches every request, so an action always runs
  before the session is deleted (and ``MessageNotHandledException`` never happens).
* The session's own state document is a fact too, so a rule such as ``$nex`` would match it and
  re-fire after every action, forever. Every rule therefore also requires a marker field that only
  request facts carry.
* Its ``json.dumps`` writes ``1e-05``, which its C parser refuses ("error code 204"), and an
  integer division by zero kills the process with SIGFPE. We write the JSON ourselves (every
  exponent has a mantissa with a point) and never divide by anything but a non-zero literal.
* Integers are 64-bit in the C engine: their arithmetic wraps past 2**63, and they are compared
  with fractions as doubles. Facts therefore carry every number as a double (see ``_scalar``);
  integer literals beyond 2**53 are refused.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import durable_rules_engine
from durable.engine import MessageNotHandledException, Promise
from durable.engine import Ruleset as _DurableRuleset

from engine.errors import DecisionFailed, VerdictError
from engine.expr.check import Env, check
from engine.expr.numbers import EXACT, bracket, is_number, is_plain, to_decimal
from engine.expr.syntax import IN_LIST, BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not, names_in
from engine.expr.vocabulary import MIRRORED, NEGATED

__all__ = ["MARKER", "DurableRuleset", "NotExpressible", "dumps", "field_key", "to_durable"]

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
_MAX_INT = 2**63  # larger integers are sent as floats (the C engine reads integers as 64-bit longs)
_EXACT = EXACT  # 2**53: beyond this, the C engine compares integers with fractional numbers approximately


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


# -- JSON the C engine reads ----------------------------------------------------------------------

_EXPONENT = re.compile(r"^(-?\d+)(e[-+]\d+)$")


def _number(v: float | int) -> str:
    if isinstance(v, int):
        return str(v) if -_MAX_INT < v < _MAX_INT else _number(float(v))
    if math.isinf(v):
        return "1.0e+999" if v > 0 else "-1.0e+999"  # the C parser reads this as infinity
    if math.isnan(v):
        raise ValueError("NaN has no JSON form")
    text = repr(v)
    m = _EXPONENT.match(text)
    return f"{m.group(1)}.0{m.group(2)}" if m else text  # '1e-05' is refused, '1.0e-05' is read


def dumps(obj: Any) -> str:
    """JSON that durable-rules' C parser reads back exactly (numbers in a form it accepts)."""
    if obj is True:
        return "true"
    if obj is False:
        return "false"
    if obj is None:
        return "null"
    if isinstance(obj, (int, float)):
        return _number(obj)
    if isinstance(obj, str):
        return json.dumps(obj, ensure_ascii=False)
    if isinstance(obj, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k), ensure_ascii=False)}:{dumps(v)}" for k, v in obj.items()) + "}"
    if isinstance(obj, (list, tuple)):
        return "[" + ",".join(dumps(v) for v in obj) + "]"
    raise TypeError(f"cannot write {type(obj).__name__} as JSON")


def _scalar(value: Any) -> str | None:
    """A request value as fact JSON; None when the fact should not carry it (missing, NaN).

    Every number is sent as a double, so durable-rules' arithmetic on facts is double arithmetic,
    never 64-bit integer arithmetic (which wraps past 2**63 and meets fractions approximately past
    2**53): the code generator rounds whole-number results beyond 2**53 the same way, and no value
    handed to the rules is a whole number beyond 2**53 (validation refuses them in requests,
    derived features are rounded) or NaN (a derived NaN is missing).
    """
    kind = type(value)
    if kind is bool:
        return "true" if value else "false"
    if kind is float:
        return None if value != value else _number(value)
    if kind is int:
        return f"{value}.0" if -_EXACT <= value <= _EXACT else _number(float(value))
    if kind is str:
        return json.dumps(value, ensure_ascii=False)
    if value is None:
        return None
    item = getattr(value, "item", None)  # numpy scalars
    if callable(item):
        return _scalar(item())
    for base in (bool, int, float, str):  # subclasses of the JSON types
        if isinstance(value, base):
            return _scalar(base(value))
    raise TypeError(f"cannot send a {kind.__name__} to durable-rules")


# -- the ruleset ----------------------------------------------------------------------------------

_ruleset_ids = itertools.count(1)


class _Ruleset(_DurableRuleset):  # type: ignore[misc]
    """durable-rules' own Ruleset (actions, results), created from JSON we write (see ``dumps``)."""

    def __init__(self, name: str, definition: str, actions: Mapping[str, Callable[[Any], None]]) -> None:
        # Not super().__init__: it would json.dumps the definition, which writes numbers the C
        # parser refuses. These are the attributes the base class's methods use.
        self._name = name
        self._host = None
        self._definition = definition
        self._actions = {rule: Promise(fn) for rule, fn in actions.items()}
        self._handle = durable_rules_engine.create_ruleset(name, definition)

    def assert_json(self, fact: str) -> int:
        """Assert a fact written as JSON; returns the state to run actions for."""
        return int(self._handle_result(durable_rules_engine.assert_fact(self._handle, fact), fact))


_CATCH_ALL = "any_request"


def _ignore(c: Any) -> None:
    """The catch-all rule's action: nothing to record."""


def _recorder(collector: list[int], index: int) -> Callable[[Any], None]:
    def record(c: Any) -> None:  # one parameter: durable-rules treats two as asynchronous
        collector.append(index)

    return record


class DurableRuleset:
    """Rule conditions compiled once into one durable-rules ruleset; ``fired(values)`` evaluates them.

    The ruleset is private to this object (not registered with durable's process-wide host, whose
    background threads poll every registered ruleset and which cannot forget one: every policy
    reload would leak a ruleset). It is freed when this object is.
    """

    def __init__(self, rules: Sequence[tuple[int, Node]], env: Env, *, label: str = "rules") -> None:
        indexes = [i for i, _ in rules]
        if len(set(indexes)) != len(indexes):
            raise ValueError("rule indexes must be unique")
        safe = re.sub(r"[^A-Za-z0-9_]", "_", label)[:48]
        self.name = f"verdict_{next(_ruleset_ids)}_{safe}"
        self.indexes = tuple(sorted(indexes))
        self._collector: list[int] = []
        definition: dict[str, Any] = {}
        actions: dict[str, Callable[[Any], None]] = {}
        reads: set[str] = set()
        for index, node in rules:
            condition = to_durable(node, env)
            if condition == _FALSE:  # never holds: as a rule, "$nex marker" would match the session state, forever
                continue
            definition[f"r{index}"] = {"all": [{"m": _join("and", [{"$eq": {MARKER: 1}}, condition])}]}
            actions[f"r{index}"] = _recorder(self._collector, index)
            reads |= names_in(node)
        if rules:
            # Every request fact must start an action before its session is deleted (see fired()).
            definition[_CATCH_ALL] = {"all": [{"m": {"$eq": {MARKER: 1}}}]}
            actions[_CATCH_ALL] = _ignore
        self.definition = dumps(definition)
        self._fields = tuple(
            (name, json.dumps(field_key(name)) + ":", json.dumps(decimal_key(name)) + ":" if env.get(name) is not None and env[name].decimal else None)
            for name in sorted(reads)
        )
        self._lock = threading.Lock()
        self._sids = itertools.count(1)
        self._ruleset: _Ruleset | None = None
        if rules:
            self._ruleset = _Ruleset(self.name, self.definition, actions)
            self._finalizer = weakref.finalize(self, durable_rules_engine.delete_ruleset, self._ruleset._handle)

    def fact(self, values: Mapping[str, Any], sid: str) -> str:
        """The request as a durable-rules fact: the fields the rules read, none of them null."""
        parts = [f'{{"sid":"{sid}","{MARKER}":1']
        for name, key, hi_key in self._fields:
            value = values.get(name)
            if hi_key is not None and type(value) is Decimal:  # the doubles below and above it
                if value.is_nan():
                    continue
                lo, hi = bracket(value)
                parts.append(key + _number(lo))
                parts.append(hi_key + _number(hi))
                continue
            text = _scalar(value)
            if text is not None:
                parts.append(key + text)
                if hi_key is not None:
                    parts.append(hi_key + text)
        return ",".join(parts) + "}"

    def fired(self, values: Mapping[str, Any]) -> list[int]:
        """Indexes of the rules whose condition holds for `values`, in ascending order."""
        rs = self._ruleset
        if rs is None:
            return []
        with self._lock:
            sid = str(next(self._sids))
            fact = self.fact(values, sid)
            collector = self._collector
            collector.clear()
            try:
                state = rs.assert_json(fact)
            except MessageNotHandledException:
                # No rule matched. Not reached while the catch-all rule matches every request; the
                # session is left alone: durable-rules 2.0.28 frees uninitialised pointers when it
                # deletes a session in which no action ever started (a crash, not an exception).
                return []
            except durable_rules_engine.error as exc:
                raise DecisionFailed(f"durable-rules ruleset {self.name}: {exc}") from exc
            failure: list[BaseException | None] = [None]
            try:
                rs.do_actions(state, lambda error, _state: failure.__setitem__(0, error))
            finally:
                rs.delete_state(sid)  # a session per request: never near the 1,024 live sessions cap
            if failure[0] is not None:
                raise DecisionFailed(f"durable-rules ruleset {self.name}: {failure[0]}")
            return sorted(set(collector))  # a rule with an $or fires once per alternative that holds

    def close(self) -> None:
        """Free the C engine's ruleset now (it is freed anyway when this object is collected)."""
        if self._ruleset is not None:
            self._finalizer()
