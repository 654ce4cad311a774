"""durable-rules' Rete engine running translated rule conditions: the ruleset, the facts and the JSON it reads.

``DurableRuleset(rules, env)`` translates each rule's condition (``engine.policy.durable``, which states
the semantics kept) into one private durable-rules ruleset; ``fired(values)`` asserts a request and
returns the indexes of the rules that hold.

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
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from typing import Any

import durable_rules_engine
from durable.engine import MessageNotHandledException, Promise
from durable.engine import Ruleset as _DurableRuleset

from engine.errors import DecisionFailed
from engine.expr.check import Env
from engine.expr.nodes import Node, names_in
from engine.expr.numbers import EXACT, bracket
from engine.policy.durable import MARKER, decimal_key, field_key, request_rule

__all__ = ["DurableRuleset", "dumps"]

_MAX_INT = 2**63  # larger integers are sent as floats (the C engine reads integers as 64-bit longs)
_EXACT = EXACT  # 2**53: beyond this, the C engine compares integers with fractional numbers approximately


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
            pattern = request_rule(node, env)
            if pattern is None:  # never holds
                continue
            definition[f"r{index}"] = {"all": [{"m": pattern}]}
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
