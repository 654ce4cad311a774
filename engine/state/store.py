"""Where the series live, and the one call per decision: read as of the event, decide, record.

``StateStore.transact(slots, step, expand)`` fetches the series of ``slots`` (an absent one as an
empty ``Series``), then those ``expand`` names from what it fetched (a linked feature's reverse
series: one more read in the same transaction), runs ``step`` on them and saves those ``step`` says it changed, atomically: no other
decision or event of the same deployment reads or writes between the fetch and the save, so
counts are exact under concurrency (threads, ``--workers`` processes sharing one file).

``intent`` (engine.state.intent), when given, computes before the read what the step will record:
a remote store may read and record in one round trip with it (engine.state.redis_store); the
in-process stores never call it (it costs a pass over the plan's streams).

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

from engine.state.intent import Intended, Intent
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
    # True: the store's only wait is for its own lock (in process, or a local file), which ``transact``
    # bounds by ``wait``; a ``state`` budget then runs it in the request's thread (StepGuard.inline)
    inline: bool

    def transact(
        self, slots: Sequence[Slot], step: Step[T], expand: Expand | None = None, intent: Intended | None = None,
        wait: float | None = None,
    ) -> T:
        """``step`` on the series, atomically (see the module docstring). ``wait`` (inline stores): the
        most seconds to wait for the lock, past which it raises ``Abandoned`` having read nothing."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """Series in a dict of this process, one lock around each transaction."""

    inline = True

    def __init__(self, salt: bytes = b"") -> None:
        self.salt = salt
        self.retention: dict[str, float] = {}
        self._series: dict[Slot, Series] = {}
        self._lock = threading.Lock()

    def transact(
        self, slots: Sequence[Slot], step: Step[T], expand: Expand | None = None, intent: Intended | None = None,
        wait: float | None = None,
    ) -> T:
        if not self._lock.acquire(timeout=-1 if wait is None else max(wait, 0.0)):
            raise Abandoned(f"the state lock was held past {wait:.3f} s")
        try:
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
        finally:
            self._lock.release()

    def __len__(self) -> int:
        return len(self._series)

    def close(self) -> None:
        pass


def decide_with_state(
    store: StateStore, plan: StatePlan, values: dict[str, Any], at: float, evaluate: Callable[[dict[str, Any]], Outcome],
    enter: Callable[[], bool] | None = None, wait: float | None = None,
) -> tuple[Outcome, dict[str, Any]]:
    """Read ``plan``'s features as of ``at`` (Unix seconds) into ``values``, evaluate, record the
    decision when the flow counts it; returns the outcome and the feature values it used.

    ``enter`` (a budgeted ``state`` step: engine.runtime.fallback.Gate.enter) is asked once the store
    holds the series; False raises ``Abandoned`` there, before anything is read, evaluated or recorded.
    ``wait``: the most seconds an inline store waits for its lock (``StateStore.transact``).
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

    def intent() -> Intent:
        return plan.intent(slots, values, at, store.salt)

    if wait is None:
        return store.transact([s for s in slots if s is not None], step, expand if plan.linked else None, intent)
    return store.transact([s for s in slots if s is not None], step, expand if plan.linked else None, intent, wait)


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

    def intent() -> Intent:
        intents = [plan.intent(slots, values, at, store.salt, event=event, read=False) for plan, slots in work]
        return Intent([a for i in intents for a in i.appends], [s for i in intents for s in i.seen], [], eager=True)

    return store.transact(sorted(seen), step, None, intent)
