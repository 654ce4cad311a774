"""The bounded pool of worker threads that runs a decision's preempted steps (engine.runtime.fallback).

A step with a latency budget that cannot be checked at its boundary (a model score, the state
store's transaction) is handed to a worker so the request thread can stop waiting when the budget
is spent. ``WorkerPool.try_submit`` hands one call over (``None`` when no worker frees up within
``wait`` seconds); ``StepCall.result(timeout)`` waits for it. The hand-off is two C queues and a
lock per call instead of ``ThreadPoolExecutor`` behind a semaphore: 88 -> 55 µs wall per no-op
call (benchmarks/step_handoff.py, benchmarks/README.md "The gRPC path"). Each call runs in the
caller's ``contextvars`` context, so what a request set (a custom-list tape, a policy test's lists)
holds on the worker too.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

__all__ = ["DEFAULT_WORKERS", "StepCall", "WorkerPool"]

#: Worker threads of the pool that runs preempted steps (per server process): the default number
#: of request threads (engine.settings ``threads``), so that every request in flight can have one.
DEFAULT_WORKERS = 16

_T = TypeVar("_T")


class StepCall:
    """One call handed to a step worker: its result, waited for with a timeout (a minimal future).

    The completion signal is a plain lock held until the call ends (one C-level acquire to wait,
    no Condition), which is what keeps the hand-off cheap. ``cancel`` stops a call that has not
    started; a running call always runs to its end.
    """

    __slots__ = ("_args", "_callbacks", "_done", "_error", "_fn", "_lock", "_result", "_state")

    def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._fn = fn
        self._args = args
        self._done = threading.Lock()
        self._done.acquire()  # released once, when the call has ended
        self._lock = threading.Lock()  # guards _state and _callbacks
        self._state = "pending"  # pending -> running -> done, or pending -> cancelled
        self._result: Any = None
        self._error: BaseException | None = None
        self._callbacks: list[Callable[[StepCall], None]] = []

    def result(self, timeout: float | None = None) -> Any:
        """The call's result (or its exception, raised); ``FutureTimeout`` when not done within ``timeout`` seconds."""
        if not self._done.acquire(timeout=-1 if timeout is None else max(0.0, timeout)):
            raise FutureTimeout
        self._done.release()
        if self._error is not None:
            raise self._error
        return self._result

    def cancel(self) -> bool:
        """Cancel the call if it has not started (its result then raises CancelledError); True when it will not run."""
        with self._lock:
            if self._state != "pending":
                return self._state == "cancelled"
            self._state = "cancelled"
            callbacks, self._callbacks = self._callbacks, []
        self._error = CancelledError()
        self._done.release()
        for callback in callbacks:
            callback(self)
        return True

    def add_done_callback(self, fn: Callable[[StepCall], None]) -> None:
        """Call ``fn(self)`` when the call ends (at once, on this thread, if it already has)."""
        with self._lock:
            if self._state not in ("done", "cancelled"):
                self._callbacks.append(fn)
                return
        fn(self)

    def run(self) -> None:
        """Worker side: run the call (unless cancelled), then signal its end and run the callbacks."""
        with self._lock:
            if self._state == "cancelled":
                return
            self._state = "running"
        try:
            self._result = self._fn(*self._args)
        except BaseException as exc:  # noqa: BLE001 - the waiting request re-raises it (StepGuard judges it)
            self._error = exc
        with self._lock:
            self._state = "done"
            callbacks, self._callbacks = self._callbacks, []
        self._done.release()
        for callback in callbacks:
            callback(self)


class WorkerPool:
    """A bounded pool of threads for preempted steps (created as needed, at most ``workers``).

    At most ``workers`` calls run at once; ``try_submit`` waits at most ``wait`` seconds for a free
    worker and is refused (None) after, so a stuck model ties up at most ``workers`` threads.

    The hand-off is one ``SimpleQueue.get`` for a free worker and one ``put`` into its inbox (both
    in C) and a ``StepCall`` whose end is a released lock, where ``concurrent.futures`` takes a
    ``BoundedSemaphore`` and several Conditions: a no-op step costs ~55 µs of wall time a call
    instead of ~88 (CPU 25 vs 28 µs) at load ~8 on the 2-core benchmark machine
    (benchmarks/step_handoff.py). The two context switches remain: a step that must be preemptible
    has to run on another thread.
    """

    def __init__(self, workers: int = DEFAULT_WORKERS) -> None:
        self._idle: queue.SimpleQueue[queue.SimpleQueue[StepCall | None] | None] = queue.SimpleQueue()
        for _ in range(workers):
            self._idle.put(None)  # a worker not started yet
        self._workers = workers
        self._started = 0
        self._lock = threading.Lock()
        self._closed = False

    def try_submit(self, fn: Callable[..., _T], *args: Any, wait: float = 0.0) -> StepCall | None:
        """A ``StepCall`` running ``fn(*args)``, or None when no worker was free within ``wait`` seconds.

        Raises RuntimeError after ``close``.
        """
        if self._closed:
            raise RuntimeError("the step worker pool is closed")
        try:
            inbox = self._idle.get(timeout=wait) if wait > 0 else self._idle.get_nowait()
        except queue.Empty:
            return None
        if inbox is None:
            inbox = self._start_worker()
        # in the caller's context: what it set for this request (a custom-list tape, a policy test's
        # lists) holds on the worker too
        call = StepCall(contextvars.copy_context().run, (fn, *args))
        inbox.put(call)
        return call

    def _start_worker(self) -> queue.SimpleQueue[StepCall | None]:
        inbox: queue.SimpleQueue[StepCall | None] = queue.SimpleQueue()
        with self._lock:
            name = f"verdict-step_{self._started}"
            self._started += 1
        threading.Thread(target=self._work, args=(inbox,), name=name, daemon=True).start()
        return inbox

    def _work(self, inbox: queue.SimpleQueue[StepCall | None]) -> None:
        while True:
            call = inbox.get()
            if call is None:  # closed
                return
            call.run()
            if self._closed:
                return
            self._idle.put(inbox)  # free again
            if self._closed:  # closed while it ran: ``close`` may have drained the queue before this put
                self.close()  # ends the idle workers, this one included

    def close(self) -> None:
        """Stop accepting work; running calls finish in the background and their threads end."""
        self._closed = True
        while True:
            try:
                inbox = self._idle.get_nowait()
            except queue.Empty:
                return
            if inbox is not None:
                inbox.put(None)
