"""Where the series live, and the one call per decision: read as of the event, decide, record.

``StateStore.transact(slots, step, expand)`` fetches the series of ``slots`` (an absent one as an
empty ``Series``), then those ``expand`` names from what it fetched (a linked feature's reverse
series: one more read in the same transaction), runs ``step`` on them and saves those ``step`` says it changed, atomically: no other
decision or event of the same deployment reads or writes between the fetch and the save, so
counts are exact under concurrency (threads, ``--workers`` processes sharing one file).

``intent`` (engine.state.intent), when given, says before the read what the step will record: a
remote store may read and record in one round trip with it (engine.state.redis_store); the
in-process stores ignore it.

``decide_with_state`` is that call for a decision: features as of just before it (every event
recorded so far at or before its time), then the evaluation, then the decision itself recorded as
an event when the flow counts it (``behaviour.events``). An evaluation that raises records
nothing.

Stores: ``MemoryStore`` (one process; tests, replay, backtests and training feature builds) and
``SqliteStore`` (engine.state.sqlite: the embedded default of ``verdict serve``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from engine.state.intent import Intent
from engine.state.plan import Slot, StatePlan
from engine.state.series import Series
from engine.types import Action, Outcome

__all__ = ["Abandoned", "Expand", "MemoryStore", "StateStore", "decide_with_state", "record_event"]

T = TypeVar("T")
Step = Callable[[dict[Slot, Series]], tuple[T, Sequence[Slot]]]
Expand = Callable[[dict[Slot, Series]], Sequence[Slot]]  # the further slots to fetch, given those fetched


class Abandoned(Exception):
    """Raised inside a transaction whose request stopped waiting before it read (engine.runtime.fallback.Gate):
    the store rolls back, so nothing was read for, evaluated or recorded."""


class StateStore(Protocol):
    """Keeps the series of every (stream, key); see the module docstring."""

    @property
    def salt(self) -> bytes:
        """The key of the keyed hashes of keys and items (engine.state.plan); StateUnavailable when unknown yet."""
        ...

    retention: dict[str, float]  # stream signature -> seconds of history kept (for sweeping idle keys)

    def transact(self, slots: Sequence[Slot], step: Step[T], expand: Expand | None = None, intent: Intent | None = None) -> T: ...

    def close(self) -> None: ...


class MemoryStore:
    """Series in a dict of this process, one lock around each transaction."""

    def __init__(self, salt: bytes = b"") -> None:
        self.salt = salt
        self.retention: dict[str, float] = {}
        self._series: dict[Slot, Series] = {}
        self._lock = threading.Lock()

    def transact(self, slots: Sequence[Slot], step: Step[T], expand: Expand | None = None, intent: Intent | None = None) -> T:
        with self._lock:
            found = {s: self._series.get(s) or Series() for s in slots}
            if expand is not None:
                found.update((s, self._series.get(s) or Series()) for s in expand(found))
            result, changed = step(found)
            for s in changed:
                series = found[s]
                if series.empty:
                    self._series.pop(s, None)
                else:
                    self._series[s] = series
            return result

    def __len__(self) -> int:
        return len(self._series)

    def close(self) -> None:
        pass


def decide_with_state(
    store: StateStore, plan: StatePlan, values: dict[str, Any], at: float, evaluate: Callable[[dict[str, Any]], Outcome],
    enter: Callable[[], bool] | None = None,
) -> tuple[Outcome, dict[str, Any]]:
    """Read ``plan``'s features as of ``at`` (Unix seconds) into ``values``, evaluate, record the
    decision when the flow counts it; returns the outcome and the feature values it used.

    ``enter`` (a budgeted ``state`` step: engine.runtime.fallback.Gate.enter) is asked once the store
    holds the series; False raises ``Abandoned`` there, before anything is read, evaluated or recorded.
    """
    slots = plan.slots(values, store.salt)

    def step(series: dict[Slot, Series]) -> tuple[tuple[Outcome, dict[str, Any]], Sequence[Slot]]:
        if enter is not None and not enter():
            raise Abandoned("the request stopped waiting for the state store")
        features = plan.read(series, slots, at, values, store.salt)
        values.update(features)
        outcome = evaluate(values)
        counts = plan.events == "attempts" or (plan.events == "approved" and outcome.action == Action.APPROVE)
        changed = plan.record(series, slots, values, at, store.salt) if counts else []
        return (outcome, features), changed

    def expand(series: dict[Slot, Series]) -> Sequence[Slot]:
        return plan.expand(series, slots, values, at, store.salt)

    intent = plan.intent(slots, values, at, store.salt)
    return store.transact([s for s in slots if s is not None], step, expand if plan.linked else None, intent)


def record_event(store: StateStore, plans: Sequence[StatePlan], event: str, values: Mapping[str, Any], at: float) -> int:
    """Record one event of type ``event`` in every stream of ``plans`` that reads it (a stream shared
    by several flow versions is recorded once); returns how many series took it (0: none reads it
    or it came later than the lateness allows)."""
    seen: set[Slot] = set()
    work: list[tuple[StatePlan, list[Slot | None]]] = []
    for plan in plans:
        slots = plan.slots(values, store.salt)
        mine: list[Slot | None] = []
        for i, slot in enumerate(slots):
            keep = slot is not None and plan.streams[i].event == event and slot not in seen
            mine.append(slot if keep else None)
            if keep and slot is not None:
                seen.add(slot)
        work.append((plan, mine))

    def step(series: dict[Slot, Series]) -> tuple[int, Sequence[Slot]]:
        changed: list[Slot] = []
        for plan, slots in work:
            changed += plan.record(series, slots, values, at, store.salt, event=event)
        return len(changed), changed

    intents = [plan.intent(slots, values, at, store.salt, event=event, read=False) for plan, slots in work]
    intent = Intent([a for i in intents for a in i.appends], [s for i in intents for s in i.seen], [], eager=True)
    return store.transact(sorted(seen), step, None, intent)
