"""Latency budgets per step of a decision, and the declared fallback when a step misses one or fails.

A flow declares, under ``budgets:``, a budget in milliseconds for any of its steps and what happens
when the step misses it or fails (docs/fallbacks.md):

* ``rules_only``: decide without the step's output. The step's values are **missing** (null), and
  rules reading them follow the missing-value semantics of docs/expressions.md (a test on a missing
  score is false; ``is_null(score)`` holds). Only steps whose output rules can do without
  (``Step.skippable``: the model scores and the state store) allow it.
* ``action``: answer a fixed REVIEW or DECLINE with the declared reason code. Never APPROVE: a
  failure must not let a request through unseen (the schema refuses it outright).
* ``error``: answer an error, DEADLINE_EXCEEDED for a missed budget (``StepTimedOut``) and
  UNAVAILABLE for a failed or saturated step (``StepFailed``); nothing is decided or logged.

How a budget is enforced depends on the step (``Step.preempt``):

* **Preempted** (model scores): the step runs on a bounded pool of worker threads and the request
  waits at most ``min(budget, time left before the caller's deadline)``. A late result is
  discarded; the worker finishes its call in the background (a synchronous onnxruntime ``run``
  cannot be interrupted) and its thread stays busy until then. A request that finds every worker
  busy waits for one within the same budget; none free in time is a miss with reason ``busy``. A
  stuck model thus costs at most ``workers`` threads, never the whole server; the server sizes
  the pool to its request threads (``--threads``), so in normal operation a worker is always free.
* **Checked at the step boundary** (every other step: pure Python that cannot be interrupted): the
  step runs inline and its elapsed time is compared with the budget when it ends; a late result is
  discarded and the fallback applies. Such a step can overrun its budget by its own duration.

The caller's deadline (engine.runtime.service) is respected as before: when it, not the budget, is what
ran out, the call raises ``DeadlineExceeded`` whatever the fallback (the caller is gone).

The state store (step ``state``, engine.state) is preempted in its own way (``StepGuard.transact``):
the budget bounds the wait for a worker, the store's lock and the read of the series. A transaction
that has not read when the budget ends is abandoned: when it does get its series it rolls back
without evaluating or recording anything (``Gate``). One that has read is awaited to its end
(evaluation and record, bounded by the models' own budgets and the store's own timeout), so a
decision the store recorded is always the one answered, and recorded once. A store whose only
wait is its own lock (``StateStore.inline``: the in-process and SQLite stores) runs in the
request's thread instead (``StepGuard.inline``): its lock wait is bounded by the budget and a read
that ends past it rolls back, with the same outcomes, and without the worker hop (about 90 us a
decision on a loaded 2-core machine, benchmarks/README.md).

Steps are a closed set registered in ``STEPS``; a new step plugs in with one line there and one
``guard.run(step, ...)`` call where it runs. A model's step is
``score.<model name>``; a budget under ``score`` applies to every model without its own entry.

The core stays pure: ``CompiledFlow`` receives a ``StepGuard`` built by the service (which owns the
clock and the worker pool) and asks it to run each step; without budgets the flow runs as before,
with no guard and no cost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, TypeVar

from engine.errors import DeadlineExceeded, StateConflict, StateUnavailable, StepFailed, StepTimedOut, VerdictError
from engine.runtime.step_pool import WorkerPool
from engine.state.store import Abandoned
from engine.types import Action, FallbackTaken

__all__ = [
    "STEPS",
    "Budget",
    "Budgets",
    "FallbackTaken",
    "Gate",
    "Step",
    "StepGuard",
    "StepMissed",
    "step_of",
]


_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Step:
    """A step of a decision that can have a budget.

    ``skippable``: the flow can decide without the step's output (``rules_only`` allowed).
    ``preempt``: the request stops waiting at the budget (see the module docstring).
    """

    name: str
    skippable: bool = False
    preempt: bool = False


#: Every step a budget may name. A new step is one line here (docs/fallbacks.md, "adding a step").
STEPS: Mapping[str, Step] = {
    s.name: s
    for s in (
        Step("validate"),
        Step("screening"),
        Step("features"),
        Step("score", skippable=True, preempt=True),
        Step("state", skippable=True, preempt=True),  # the state store's read (engine.state); see ``StepGuard.transact``
        Step("rules"),
        Step("explain"),
    )
}


def step_of(key: str) -> Step | None:
    """The registered step a budget key names (``score.card_fraud`` -> score), else None."""
    return STEPS.get(key.split(".", 1)[0])


@dataclass(frozen=True, slots=True)
class Budget:
    """A compiled budget: seconds, the fallback mode, and for ``action`` the outcome it gives."""

    step: str
    seconds: float
    on_miss: str  # "rules_only", "action" or "error"
    action: Action | None = None
    reason: str = ""  # reason code of an ``action`` fallback
    message: str = ""  # its text, from the flow's reasons
    preempt: bool = False


class Budgets:
    """A flow version's budgets by step key; ``get("score.m")`` falls back to ``score``."""

    __slots__ = ("_by_key",)

    def __init__(self, budgets: Mapping[str, Budget]) -> None:
        self._by_key = dict(budgets)

    def __bool__(self) -> bool:
        return bool(self._by_key)

    def get(self, key: str) -> Budget | None:
        """The budget of step ``key`` (its own, else its step's), or None."""
        found = self._by_key.get(key)
        if found is None and "." in key:
            found = self._by_key.get(key.split(".", 1)[0])
        return found

    def items(self) -> list[tuple[str, Budget]]:
        return sorted(self._by_key.items())


class StepMissed(Exception):
    """A step missed its budget or failed; the flow applies ``budget``'s fallback."""

    def __init__(self, budget: Budget, key: str, reason: str, detail: str = "") -> None:
        super().__init__(f"step {key} {reason}: {detail}" if detail else f"step {key} {reason}")
        self.budget = budget
        self.key = key
        self.reason = reason
        self.detail = detail

    @property
    def taken(self) -> FallbackTaken:
        return FallbackTaken(self.key, self.reason, self.budget.on_miss)

    def as_error(self) -> VerdictError:
        """The error an ``error`` fallback answers: DEADLINE_EXCEEDED for a budget, else UNAVAILABLE."""
        text = f"step {self.key} {'missed its budget of %g ms' % (self.budget.seconds * 1000) if self.reason == 'budget' else self.reason}"
        if self.detail:
            text += f" ({self.detail})"
        if self.reason == "budget":
            return StepTimedOut(self.key, text)
        return StepFailed(self.key, self.reason, text)


class Gate:
    """The handshake between a request and the worker running its store transaction (``StepGuard.transact``).

    The worker calls ``enter()`` once the store has handed it the series (lock taken, read done):
    True means the request still waits and will take this transaction's outcome; False means the
    request gave up (``abandon()`` came first) and the transaction must roll back untouched. The
    two calls are serialised by a lock, so exactly one of them wins.
    """

    __slots__ = ("_lock", "_state", "ready")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = "open"
        self.ready = threading.Event()  # set once entered, or once the transaction ended (failed before entering)

    def enter(self) -> bool:
        """Worker side: True when the request still waits (it then waits for the end)."""
        with self._lock:
            if self._state == "open":
                self._state = "entered"
                self.ready.set()
            return self._state == "entered"

    def abandon(self) -> bool:
        """Request side: True when the transaction had not entered (it will now roll back)."""
        with self._lock:
            if self._state == "open":
                self._state = "abandoned"
            return self._state == "abandoned"


class _Open(Gate):
    """The gate of a transaction without a budget: always entered."""

    def enter(self) -> bool:
        return True


_OPEN = _Open()


class StepGuard:
    """Runs one request's steps under its flow's budgets and the caller's deadline.

    Built per request by the service: ``clock`` is ``time.monotonic``, ``deadline`` a monotonic
    instant or None. Raises ``StepMissed`` (for the flow to apply the fallback) or
    ``DeadlineExceeded`` (the caller's deadline, not the budget, ran out).
    """

    __slots__ = ("_budgets", "_clock", "_deadline", "_pool")

    def __init__(self, budgets: Budgets, pool: WorkerPool, deadline: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._budgets = budgets
        self._pool = pool
        self._deadline = deadline
        self._clock = clock

    def run(self, key: str, fn: Callable[..., _T], *args: Any) -> _T:
        """``fn(*args)`` under the budget of step ``key`` (directly when it has none).

        Typed engine errors (InvalidInput, ...) pass through: they are the caller's, not a failure.
        """
        budget = self._budgets.get(key)
        if budget is None:
            return fn(*args)
        if budget.preempt:
            return self._preempted(budget, key, fn, args)
        start = self._clock()
        try:
            result = fn(*args)
        except VerdictError:
            raise
        except Exception as exc:
            raise StepMissed(budget, key, "error", f"{type(exc).__name__}: {exc}") from exc
        if self._clock() - start > budget.seconds:
            raise StepMissed(budget, key, "budget")
        return result

    def transact(self, key: str, fn: Callable[[Gate], _T]) -> _T:
        """``fn(gate)`` (a store transaction that calls ``gate.enter()`` once it holds its series) under
        the budget of step ``key``, directly when it has none.

        Waits at most ``min(budget, time left before the caller's deadline)`` for the transaction to
        enter; then abandons it (it rolls back when it gets its series: nothing evaluated or
        recorded) and raises ``StepMissed`` (reason ``budget``, or ``busy`` without a free worker)
        or ``DeadlineExceeded``. A transaction that entered is awaited to its end and its result
        returned. The store's own failures (``StateUnavailable``, ``StateConflict``) raise
        ``StepMissed`` with reason ``error``; other engine errors pass through.
        """
        budget = self._budgets.get(key)
        if budget is None:
            return fn(_OPEN)
        gate = Gate()
        wait, by_deadline, start, future = self._submit(budget, key, fn, (gate,))
        future.add_done_callback(lambda _f: gate.ready.set())  # a store that fails fast is answered fast
        if not gate.ready.wait(max(0.0, wait - (self._clock() - start))) and gate.abandon():
            if by_deadline:
                raise DeadlineExceeded(f"the caller's deadline passed during step {key}")
            raise StepMissed(budget, key, "budget")
        result: _T = self._result(budget, key, future)
        return result

    def inline(self, key: str, fn: Callable[[Callable[[], bool], float | None], _T]) -> _T:
        """``fn(enter, wait)`` in this thread, under the budget of step ``key`` (``fn(always, None)`` when
        it has none): a transaction of a store whose only wait is its own lock (``StateStore.inline``:
        in process, or a local file), so no worker hop is paid.

        ``wait`` is ``min(budget, time left before the caller's deadline)``, the most the store waits
        for its lock before raising ``Abandoned``; ``enter()``, asked once the series are read, is
        False past it and the transaction rolls back. Either is a miss: ``StepMissed`` (reason
        ``budget``) or ``DeadlineExceeded`` when the deadline set the wait. The store's failures
        (``StateUnavailable``, ``StateConflict``) are reason ``error``; other engine errors pass through.
        """
        budget = self._budgets.get(key)
        if budget is None:
            return fn(_OPEN.enter, None)
        wait, by_deadline = self._wait(budget, key)
        start = self._clock()
        try:
            return fn(lambda: self._clock() - start <= wait, wait)
        except Abandoned:
            if by_deadline:
                raise DeadlineExceeded(f"the caller's deadline passed during step {key}") from None
            raise StepMissed(budget, key, "budget") from None
        except (StateUnavailable, StateConflict) as exc:
            raise StepMissed(budget, key, "error", f"{type(exc).__name__}: {exc}") from exc

    @staticmethod
    def _result(budget: Budget, key: str, future: Any) -> Any:
        """The transaction's result; a store failure is the step's failure."""
        try:
            return future.result()
        except (StateUnavailable, StateConflict) as exc:
            raise StepMissed(budget, key, "error", f"{type(exc).__name__}: {exc}") from exc

    def _wait(self, budget: Budget, key: str) -> tuple[float, bool]:
        """Seconds step ``key`` may wait, ``min(budget, time left before the deadline)``, and whether the
        deadline set them; raises DeadlineExceeded when it has passed already."""
        wait, by_deadline = budget.seconds, False
        if self._deadline is not None:
            left = self._deadline - self._clock()
            if left <= 0:
                raise DeadlineExceeded(f"the caller's deadline passed before step {key}")
            if left < wait:
                wait, by_deadline = left, True
        return wait, by_deadline

    def _submit(self, budget: Budget, key: str, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[float, bool, float, Any]:
        """Hand ``fn(*args)`` to a worker: (seconds to wait, whether the deadline set them, start, future)."""
        wait, by_deadline = self._wait(budget, key)
        start = self._clock()
        future = self._pool.try_submit(fn, *args, wait=wait)
        if future is None:
            if by_deadline:
                raise DeadlineExceeded(f"the caller's deadline passed waiting for a worker for step {key}")
            raise StepMissed(budget, key, "busy", "no step worker was free within the budget")
        return wait, by_deadline, start, future

    def _preempted(self, budget: Budget, key: str, fn: Callable[..., _T], args: tuple[Any, ...]) -> _T:
        wait, by_deadline, start, future = self._submit(budget, key, fn, args)
        try:
            result: _T = future.result(timeout=max(0.0, wait - (self._clock() - start)))
        except FutureTimeout:
            future.cancel()
            if by_deadline:
                raise DeadlineExceeded(f"the caller's deadline passed during step {key}") from None
            raise StepMissed(budget, key, "budget") from None
        except VerdictError:
            raise
        except Exception as exc:
            raise StepMissed(budget, key, "error", f"{type(exc).__name__}: {exc}") from exc
        return result
