"""A flow's ``behaviour:`` section checked and compiled into a ``StatePlan`` (engine.state.plan).

``compile_plan`` checks each feature against the flow's input fields and the declared event types
(every problem goes to ``report`` with its place and a did-you-mean hint), groups features into
streams (the same event, key fields, ``where`` condition and fields read), adds the hidden reverse
stream of each ``linked`` feature, compiles the ``where`` conditions with the expression compiler
and adds every feature to the flow's expression environment (count, distinct, sum and linked are
never missing when their key is present; bounded by ``COUNT_BOUND`` for the checker).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from engine.expr import ExprSyntaxError, ExprTypeError, Node, check, parse
from engine.expr.check import Symbol
from engine.expr.codegen import compile_program
from engine.state.plan import Report, StateFeature, StatePlan, Stream
from engine.state.spec import BehaviourSpec, StateFeatureSpec
from engine.suggest import did_you_mean

__all__ = ["COUNT_BOUND", "compile_plan"]

_NUMERIC_AGGREGATES = frozenset({"sum", "avg", "min", "max"})
_NEVER_MISSING = frozenset({"count", "distinct", "sum", "linked"})  # 0 without history (when the key is present)
COUNT_BOUND = 1e12  # what a count/distinct/sum feature is bounded by for the expression checker


_Pending = tuple[str, tuple[Any, ...], str, "str | None", float, float]  # name, (event, key, where, by_item), aggregate, field, window, resolution
_REVERSE = "\x00reverse"  # the aggregate of the hidden entry that asks for a linked feature's reverse stream


def compile_plan(
    spec: BehaviourSpec, flow: str, env: dict[str, Symbol], report: Report, event_fields: Mapping[str, Mapping[str, str]] | None = None,
    skippable: bool = False,
) -> StatePlan:
    """Check ``spec`` against the flow's input ``env`` and add its features to ``env``.

    ``event_fields``: event type -> field -> type ("number", "string" or "bool"), from the event schemas;
    a feature over another event type reads its key and field there. ``skippable``: the flow may
    decide without the store (a ``state`` budget with ``on_miss: rules_only``), so every feature
    can be missing and rules must guard it (is_null).
    Problems go to ``report(message, code, location, hint)`` (location as in the flow file);
    codes: duplicate_name, unknown_field, unknown_event, type_error, expression_syntax and the
    expression checker's own.
    """
    inputs = {name: sym for name, sym in env.items() if sym.kind == "input"}
    kinds = event_fields or {}
    if spec.time_field is not None:
        sym = inputs.get(spec.time_field)
        if sym is None or sym.type != "number":
            report(f"time_field {spec.time_field!r} is not a number input field", "unknown_field", ("behaviour", "time_field"),
                   did_you_mean(spec.time_field, [n for n, s in inputs.items() if s.type == "number"]))
    conditions: dict[str, list[Node]] = {}  # event type -> its where conditions
    where_index: dict[tuple[str, str], int] = {}
    pending: list[_Pending] = []
    for name, f in spec.features.items():
        loc: tuple[str | int, ...] = ("behaviour", "features", name)
        if name in env:
            report(f"feature {name!r} has the name of an input field", "duplicate_name", loc, None)
        event = f.event or flow
        _check_feature(f, event, flow, inputs, kinds, report, loc)
        if f.where is not None:
            env_of = {n: Symbol(t, True, "input") for n, t in (_fields_of(event, flow, inputs, kinds) or {}).items()}
            _where(f.where, event, env_of if event != flow else inputs, conditions.setdefault(event, []), where_index, report, (*loc, "where"))
        nullable = skippable or f.aggregate not in _NEVER_MISSING or any(inputs[k].nullable for k in f.key if k in inputs)
        bounds = (0.0, COUNT_BOUND) if f.aggregate in ("count", "distinct", "linked") else None
        env[name] = Symbol("number", nullable, "state", None, bounds)
        pending.append((name, (event, f.key, f.where or "", False), f.aggregate, f.field, float(f.window), float(f.bucket_seconds)))
        if f.aggregate == "linked" and f.field is not None:  # per shared value, the keys that used it
            reverse = (event, (f.field,), f.where or "", True)
            pending.append((name, reverse, _REVERSE, f.key[0], float(f.window), float(f.bucket_seconds)))
    streams = _streams(pending, flow, inputs, kinds, where_index, float(spec.lateness))
    order = list(streams)
    reverse_of = {name: group for name, group, agg, *_ in pending if agg == _REVERSE}
    features = [
        StateFeature(
            name, order.index(group), agg, streams[group].fields.index(field) if field else -1, window,
            order.index(reverse_of[name]) if name in reverse_of else -1,
            streams[reverse_of[name]].fields.index(group[1][0]) if name in reverse_of else -1,
        )
        for name, group, agg, field, window, _r in pending if agg != _REVERSE
    ]
    programs = {
        event: compile_program(
            inputs if event == flow else {n: Symbol(t, True, "input") for n, t in (kinds.get(event) or {}).items()},
            [], nodes, label=f"{flow} behaviour {event}",
        )
        for event, nodes in conditions.items() if nodes
    }
    return StatePlan(flow, spec.events, float(spec.lateness), spec.time_field, [streams[g] for g in order], features, programs)


def _check_feature(
    f: StateFeatureSpec, event: str, flow: str, inputs: Mapping[str, Symbol], kinds: Mapping[str, Mapping[str, str]],
    report: Report, loc: tuple[str | int, ...],
) -> None:
    """Report a feature's unknown event type, key fields and field, and a number aggregate over text."""
    fields_of = _fields_of(event, flow, inputs, kinds)
    if fields_of is None:
        report(f"event type {event!r} has no schema", "unknown_event", (*loc, "event"),
               did_you_mean(event, sorted(kinds)) or "declare it in events/<type>.yaml")
        fields_of = {}
    for k in f.key:
        if k not in inputs or (event != flow and k not in fields_of):
            where = "the flow's input" if k not in inputs else f"event {event!r}"
            report(f"key field {k!r} is not a field of {where}", "unknown_field", (*loc, "key"),
                   did_you_mean(k, list(inputs if k not in inputs else fields_of)))
    if f.field is not None and f.field not in fields_of:
        report(f"field {f.field!r} is not a field of {'the flow' if event == flow else event}", "unknown_field", (*loc, "field"),
               did_you_mean(f.field, list(fields_of)))
    elif f.field is not None and f.aggregate in _NUMERIC_AGGREGATES and fields_of[f.field] != "number":
        report(f"{f.aggregate} needs a number field; {f.field!r} is {fields_of[f.field]}", "type_error", (*loc, "field"), None)
    if f.aggregate == "linked":  # identifiers: the key and the shared value are matched by their item hash
        for part, name in (("key", f.key[0]), ("field", f.field)):
            if name is not None and fields_of.get(name, "string") != "string":
                report(f"linked needs text identifiers; {name!r} is {fields_of[name]}", "type_error", (*loc, part), None)


def _streams(
    pending: Sequence[_Pending], flow: str, inputs: Mapping[str, Symbol], kinds: Mapping[str, Mapping[str, str]],
    where_index: Mapping[tuple[str, str], int], lateness: float,
) -> dict[tuple[Any, ...], Stream]:
    """One stream per (event, key, where), with every field its features read, the finest resolution
    they declare and the longest window plus the lateness as its retention."""
    out: dict[tuple[Any, ...], Stream] = {}
    groups = list(dict.fromkeys(p[1] for p in pending))
    for group in groups:
        mine = [p for p in pending if p[1] == group]
        event, key, where_text, by_item = group
        fields = tuple(sorted({p[3] for p in mine if p[3] is not None}))
        types = _fields_of(event, flow, inputs, kinds) or {}
        described = [event, list(key), where_text, list(fields)] + (["by_item"] if by_item else [])
        sig = hashlib.sha256(json.dumps(described).encode()).hexdigest()[:24]
        out[group] = Stream(
            sig, event, tuple(key), fields, tuple(types.get(x) == "number" for x in fields),
            where_index.get((event, where_text), -1),
            min(p[5] for p in mine), max(p[4] for p in mine) + lateness, by_item,
        )
    return out


def _fields_of(event: str, flow: str, inputs: Mapping[str, Symbol], event_fields: Mapping[str, Mapping[str, str]]) -> Mapping[str, str] | None:
    if event == flow:
        return {n: s.type if s.type in ("number", "bool") else "string" for n, s in inputs.items()}
    return event_fields.get(event)


def _where(
    text: str, event: str, env: Mapping[str, Symbol], conditions: list[Node], index: dict[tuple[str, str], int],
    report: Report, loc: tuple[str | int, ...],
) -> None:
    """Add ``text`` to the conditions of its event type (once however many features share it);
    ``env``: the fields it may read (the flow's input, or the event type's fields)."""
    if (event, text) in index:
        return
    try:
        node = parse(text)
        typed = check(node, env)
    except (ExprSyntaxError, ExprTypeError) as exc:
        code = "expression_syntax" if isinstance(exc, ExprSyntaxError) else exc.code
        report(f"where: {exc.message}, column {exc.column}", code, loc, getattr(exc, "hint", None))
        return
    if typed.type != "bool":
        report(f"where: the condition is a {typed.type}, not true/false", "type_error", loc, None)
        return
    conditions.append(node)
    index[(event, text)] = len(conditions) - 1
