"""Shadow evaluation: versions decided on every request, off the caller's path, never returned.

The caller's thread only puts a small task on a bounded queue (``put_nowait``); worker threads
evaluate the shadow versions, record each outcome through the decision sink with route
``shadow`` (same request id as the decision the caller got), log it and count it, including
whether it agrees with the caller's action. When the queue is full the task is dropped and
counted (``shadow_dropped``): the caller is never blocked and never sees a shadow error.

A shadow version with the same input schema, derived features and models as the version that
decided (equal ``prepare_key``, the usual case of a rules-only challenger) reuses the caller's
validated values and scores and runs only its rules: a few microseconds instead of a whole
decision competing with the callers for the CPU and the interpreter.

The queue is bounded twice: ``queue_size`` tasks and ``max_bytes`` estimated bytes of the queued
requests (input and features, ``engine.limits.mapping_bytes``; default
``engine.limits.SHADOW_QUEUE_BYTES``, 16 MiB). A task over either bound is dropped and counted.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from engine.limits import SHADOW_QUEUE_BYTES, mapping_bytes
from engine.metrics import Metrics
from engine.runtime.flow import CompiledFlow
from engine.runtime.privacy import Masker
from engine.types import Action, Decision

__all__ = ["ShadowPool", "ShadowTask"]

_log = structlog.get_logger("verdict.shadow")

class Record(Protocol):
    """The decision sink's ``record`` (engine.runtime.service.DecisionSink): a shadow outcome with its flow's masker."""

    def __call__(self, decision: Decision, raw_input: Mapping[str, Any], *, masker: Masker) -> None: ...


@dataclass(frozen=True, slots=True)
class ShadowTask:
    """What a worker needs: the versions to evaluate, the request, and the caller's action."""

    flows: tuple[CompiledFlow, ...]
    input: Mapping[str, Any]
    request_id: str
    decision_id: str  # the decision the caller got
    action: Action
    prepare_key: str = ""  # of the version that decided (see CompiledFlow.prepare_key)
    features: Mapping[str, Any] | None = None  # of the caller's outcome: reused by versions with the same key
    size: int = 0  # estimated bytes held while queued
    state: Mapping[str, Any] | None = None  # the stateful features the caller's decision read (engine.state)


class ShadowPool:
    """A bounded queue and a few daemon worker threads, started on first use."""

    def __init__(
        self,
        record: Record | None,
        metrics: Metrics,
        *,
        workers: int = 1,
        queue_size: int = 1024,
        max_bytes: int = SHADOW_QUEUE_BYTES,
        new_id: Callable[[], str],
    ) -> None:
        self._record = record
        self._max_bytes = max_bytes
        self._queued_bytes = 0
        self._bytes_lock = threading.Lock()
        self._metrics = metrics
        self._queue: queue.Queue[ShadowTask | None] = queue.Queue(maxsize=queue_size)
        self._workers = max(1, workers)
        self._threads: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._new_id = new_id

    def submit(
        self, flows: Sequence[CompiledFlow], input: Mapping[str, Any], request_id: str, decision_id: str, action: Action,
        *, prepare_key: str = "", features: Mapping[str, Any] | None = None, state: Mapping[str, Any] | None = None,
    ) -> bool:
        """Queue the shadow evaluations of one request; False (and counted) when the queue is full.

        ``state``: the stateful features the decision read; a shadow version takes them as its own
        (CompiledFlow.with_state), so it is evaluated on the same history, and records none."""
        if not self._threads:
            self._start()
        size = mapping_bytes(input) + (mapping_bytes(features) if features is not None else 0)
        with self._bytes_lock:
            fits = self._queued_bytes + size <= self._max_bytes
            if fits:
                self._queued_bytes += size
        if fits:
            try:
                self._queue.put_nowait(ShadowTask(tuple(flows), input, request_id, decision_id, action, prepare_key, features, size, state))
                return True
            except queue.Full:
                self._release(size)
        self._metrics.inc("shadow_dropped", flow=flows[0].flow)
        return False

    @property
    def queued_bytes(self) -> int:
        """Estimated bytes of the requests waiting in the queue (at most ``max_bytes``)."""
        return self._queued_bytes

    def _release(self, size: int) -> None:
        with self._bytes_lock:
            self._queued_bytes -= size

    def _start(self) -> None:
        with self._start_lock:
            if self._threads:
                return
            for i in range(self._workers):
                thread = threading.Thread(target=self._work, name=f"verdict-shadow-{i}", daemon=True)
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            task = self._queue.get()
            try:
                if task is None:
                    return
                try:
                    for flow in task.flows:
                        self._evaluate(flow, task)
                finally:
                    self._release(task.size)
            finally:
                self._queue.task_done()

    def _evaluate(self, flow: CompiledFlow, task: ShadowTask) -> None:
        labels = {"flow": flow.flow, "version": flow.version}
        start = time.perf_counter_ns()
        try:
            if task.features is not None and task.prepare_key and flow.prepare_key == task.prepare_key:
                outcome = flow.evaluate_prepared(task.features)  # same values and scores: only the rules run
            else:
                outcome = flow.evaluate(flow.with_state(task.input, task.state) if task.state else task.input)
        except Exception as exc:  # noqa: BLE001 - a shadow must never disturb anything; count and log it
            self._metrics.inc("shadow_errors", 1, **labels)
            _log.warning("shadow_failed", **labels, request_id=task.request_id, error=f"{type(exc).__name__}: {exc}")
            return
        decision = Decision(
            decision_id=self._new_id(),
            request_id=task.request_id,
            flow=flow.flow,
            version=flow.version,
            revision=flow.revision,
            outcome=outcome,
            models=flow.model_versions,
            eval_us=(time.perf_counter_ns() - start) / 1000.0,
            route="shadow",
        )
        same = outcome.action == task.action
        self._metrics.inc("shadow_decisions", 1, **labels, action=outcome.action.name)
        self._metrics.inc("shadow_agree" if same else "shadow_disagree", 1, **labels)
        if structlog.is_configured():  # a server logs each outcome at debug; a library user's stdout stays clean
            _log.debug(
                "shadow_decision", **labels, request_id=task.request_id, decision_id=decision.decision_id,
                served_decision_id=task.decision_id, action=outcome.action.name, served_action=task.action.name,
                reasons=[r.code for r in outcome.reasons],
            )
        if self._record is not None:
            try:
                self._record(decision, task.input, masker=flow.masker)
            except Exception as exc:  # noqa: BLE001 - the caller was answered already; count and log
                self._metrics.inc("shadow_record_errors", 1, **labels)
                _log.warning("shadow_record_failed", **labels, request_id=task.request_id, error=f"{type(exc).__name__}: {exc}")

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued task is done (tests, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def close(self) -> None:
        """Finish the queued tasks and stop the workers."""
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
