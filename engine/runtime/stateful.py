"""A decision of a flow with stateful features: validate, then one state-store transaction; and
the recording of a declared event in the histories that read it (``record_declared_event``).

``Decider`` (engine.runtime.service) calls ``evaluate_with_state`` for a flow version whose
``behaviour:`` section compiled to a ``StatePlan`` (engine.state.plan). The store reads the
features as of the event time (the flow's ``time_field``, else the server's clock), the flow is
evaluated with them (``CompiledFlow.evaluate_clean``) and the decision is recorded, in one
transaction (``engine.state.store.decide_with_state``); a caller cannot send the features.

With a ``state`` budget the transaction runs on a step worker (``StepGuard.transact``): a store
that misses its budget or fails takes the declared fallback (``CompiledFlow.without_state``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.errors import FieldError, InvalidInput
from engine.runtime.fallback import Gate, StepGuard, StepMissed
from engine.runtime.flow import CompiledFlow
from engine.state.plan import StatePlan
from engine.state.store import StateStore, decide_with_state, record_event
from engine.suggest import did_you_mean
from engine.types import Outcome

if TYPE_CHECKING:
    from engine.policy.loader import PolicySet

__all__ = ["evaluate_with_state", "record_declared_event"]


def evaluate_with_state(
    compiled: CompiledFlow, plan: StatePlan, store: StateStore, clock: Callable[[], float], input: Mapping[str, Any],
    expired: Callable[[], bool] | None, mark: Callable[[str], None], guard: StepGuard | None,
) -> tuple[Outcome, dict[str, Any], float]:
    """The outcome, the stateful features it read and the event time (Unix seconds) of one request.

    ``clock``: Unix seconds, read only when the input carries no event time. Raises InvalidInput
    for a bad input, and what an ``error`` fallback answers (StepTimedOut, StepFailed)."""
    values = compiled.validator(input)
    mark("validate")
    given = values.get(plan.time_field) if plan.time_field else None
    at = float(given) if given is not None else clock()
    if guard is None:
        outcome, state = decide_with_state(store, plan, values, at, lambda v: compiled.evaluate_clean(v, expired, mark=mark))
        return outcome, state, at
    checked = guard
    if store.inline:  # its only wait is its lock: in this thread, the lock wait bounded by the budget
        try:
            outcome, state = guard.inline("state", lambda enter, wait: decide_with_state(
                store, plan, values, at, lambda v: compiled.evaluate_guarded(v, expired, mark, checked), enter, wait,
            ))
        except StepMissed as missed:
            outcome, state = compiled.without_state(missed, values, expired, mark, guard)
        return outcome, state, at
    mine = dict(values)  # the worker's own copy: an abandoned one must not touch ``values``

    def transaction(gate: Gate) -> tuple[Outcome, dict[str, Any]]:
        return decide_with_state(
            store, plan, mine, at, lambda v: compiled.evaluate_guarded(v, expired, mark, checked), gate.enter,
        )

    try:
        outcome, state = guard.transact("state", transaction)
    except StepMissed as missed:  # the store missed its budget or failed: the declared fallback
        outcome, state = compiled.without_state(missed, values, expired, mark, guard)
    return outcome, state, at


def record_declared_event(
    policies: PolicySet, store: StateStore, clock: Callable[[], float], kind: str, fields: Mapping[str, Any], event_time: float,
) -> tuple[float, int]:
    """Record one event of a declared type (events/<kind>.yaml) in every stateful feature's history
    of ``policies`` that reads it: (the event time used, how many key histories took it).

    ``event_time``: Unix seconds, 0 for ``clock()``. Raises InvalidInput naming the unknown type, a
    bad event time and every bad field, all at once."""
    schema = policies.events.get(kind)
    errors: list[FieldError] = []
    if schema is None:
        hint = did_you_mean(kind[:64], sorted(policies.events)) or f"declared types: {', '.join(sorted(policies.events)) or 'none'}"
        errors.append(FieldError("type", f"unknown event type {kind[:64]!r} ({hint})", "unknown_event"))
    if not (0.0 <= event_time < 32503680000.0):  # NaN fails too; the year 3000 is the schema's upper bound
        errors.append(FieldError("event_time", "must be Unix seconds between 0 (the server's clock) and the year 3000", "range"))
    if schema is None or errors:
        if schema is not None:  # name the bad fields too, all at once
            try:
                schema.validate(fields)
            except InvalidInput as exc:
                errors.extend(exc.errors)
        raise InvalidInput(errors)
    values = schema.validate(fields)
    at = event_time or clock()
    plans = [c.state for entry in policies.flows.values() for c in entry.versions.values() if c.state is not None]
    return at, record_event(store, plans, kind, values, at)
