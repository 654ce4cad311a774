"""The transport-agnostic decision service: routes a request to a flow version and decides.

This is the one object the gRPC servicer and the CLI call. It owns the current ``PolicySet`` and
swaps it atomically on reload; each call reads the reference once, so a request never sees a
half-loaded state. It adds identity and timing to the pure outcome.

Deadlines: a caller may pass ``deadline`` (a ``time.monotonic()`` instant; the gRPC servicer
derives it from the call's remaining time). If it has passed before evaluation or before a model,
the call raises ``DeadlineExceeded`` and nothing is decided or logged. A decision finished after
the deadline is logged with ``delivery="unknown"``: the caller has probably given up on it.

Budgets: a flow version with ``budgets:`` is evaluated under a ``StepGuard`` (engine.runtime.fallback) that
runs its model scores, and the state store's transaction of a flow with a ``state`` budget, on this
Decider's bounded worker pool; every fallback taken, and every step
answered as an error by its fallback, counts in ``verdict_fallbacks_total{flow,version,step,reason}``.

Traces: with ``tracing`` (engine.tracing) each decision, or error, is recorded as spans when it ends;
``trace`` carries the caller's W3C trace context. Without it (the default) nothing is recorded.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import (
    DeadlineExceeded,
    DecisionFailed,
    FieldError,
    InvalidInput,
    NotReady,
    PolicyError,
    Problem,
    StepFailed,
    StepTimedOut,
    VerdictError,
)
from engine.metrics import Metrics
from engine.monitor.live import DriftMonitor
from engine.policy.loader import PolicySet
from engine.runtime import routing
from engine.runtime.fallback import StepGuard
from engine.runtime.flow import CompiledFlow
from engine.runtime.ports import DecisionSink, Idempotency, Request
from engine.runtime.shadow import ShadowPool
from engine.runtime.stateful import evaluate_with_state, record_declared_event
from engine.runtime.step_pool import DEFAULT_WORKERS, WorkerPool
from engine.runtime.validation import check_call
from engine.state.store import MemoryStore, StateStore
from engine.types import Decision, Outcome

if TYPE_CHECKING:
    from engine.tracing import Tracing

__all__ = ["Decider", "DecisionSink", "Idempotency", "Request", "load_decider", "new_decision_id"]


# UUID4's fixed bits (RFC 4122 section 4.4), as uuid.UUID(bytes=..., version=4) sets them
_UUID4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_decision_id() -> str:
    """A random, unique decision id: a UUID4 (122 random bits from ``os.urandom``) as 32 hex digits,
    equal in form to ``uuid.uuid4().hex`` without building a ``UUID`` object (a third of its time, benchmarks/README.md)."""
    return "%032x" % (int.from_bytes(os.urandom(16), "big") & _UUID4_CLEAR | _UUID4_SET)


class Decider:
    """Decides requests against the current policy set."""

    def __init__(
        self,
        policies: PolicySet | None = None,
        *,
        sink: DecisionSink | None = None,
        idempotency: Idempotency | None = None,
        metrics: Metrics | None = None,
        shadow_workers: int = 1,
        shadow_queue: int = 1024,
        step_workers: int = DEFAULT_WORKERS,
        tracing: Tracing | None = None,
        state: StateStore | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._policies = policies
        # Histories of the flows' stateful features (engine.state); one process's memory unless a
        # server passes its store (engine.state.sqlite, the embedded default of `verdict serve`)
        self.state: StateStore = state if state is not None else MemoryStore()
        self._clock = clock
        if policies is not None:
            self._keep_state(policies)
        self._sink = sink
        self._idempotency = idempotency
        self.metrics = metrics if metrics is not None else Metrics()
        self.drift = DriftMonitor(self.metrics)  # PSI of live inputs and scores (engine.monitor.live)
        self.steps = WorkerPool(step_workers)  # runs the preempted steps of flows with budgets (engine.runtime.fallback)
        self.tracing = tracing  # spans of each decision (engine.tracing); None: off
        if policies is not None:
            self.drift.watch(policies)
        self._shadow = ShadowPool(
            sink.record if sink is not None else None, self.metrics,
            workers=shadow_workers, queue_size=shadow_queue, new_id=new_decision_id,
        )

    @property
    def policies(self) -> PolicySet:
        p = self._policies
        if p is None:
            raise NotReady("no policies are loaded yet")
        return p

    @property
    def ready(self) -> bool:
        return self._policies is not None

    def swap(self, policies: PolicySet) -> None:
        """Make `policies` the state every following request sees (atomic)."""
        self.drift.watch(policies)
        self._keep_state(policies)
        self._policies = policies

    def _keep_state(self, policies: PolicySet) -> None:
        """Tell the state store how long each stream of the loaded flows keeps its history (TTL)."""
        for entry in policies.flows.values():
            for compiled in entry.versions.values():
                if compiled.state is not None:
                    for stream in compiled.state.streams:
                        known = self.state.retention.get(stream.sig, 0.0)
                        self.state.retention[stream.sig] = max(known, stream.retention)

    def flows(self) -> dict[str, list[str]]:
        return {name: sorted(f.versions, key=routing.version_key) for name, f in self.policies.flows.items()}

    def live_version(self, flow: str) -> str:
        return self.resolve(flow, "")[0].version

    def resolve(self, flow: str, version: str = "", input: Mapping[str, Any] | None = None) -> tuple[CompiledFlow, str]:
        """The compiled flow version a request gets, and its route: 'pinned', 'challenger' or 'live'.

        A pinned `version` wins; otherwise the challenger takes its share of key values (see
        engine.runtime.routing) and the live version the rest.
        """
        return self._resolve(self.policies, flow, version, input)

    @staticmethod
    def _resolve(policies: PolicySet, flow: str, version: str, input: Mapping[str, Any] | None) -> tuple[CompiledFlow, str]:
        return routing.resolve(policies, flow, version, input)  # all of routing is in engine.runtime.routing

    def decide(
        self,
        flow: str,
        input: Mapping[str, Any],
        *,
        version: str = "",
        request_id: str = "",
        caller: str = "",
        deadline: float | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> Decision:
        """Decide one request for ``caller`` (its authenticated name, "" if none).

        A request id is the caller's own: a retry by the same caller within the window gets the
        stored decision; the same id from another caller is another request. ``deadline``: a
        ``time.monotonic()`` instant after which the caller no longer waits (None: no deadline);
        past it, DeadlineExceeded is raised before evaluation or before a model. Raises the
        engine's typed errors; never anything else. ``trace``: the caller's W3C trace context
        (``traceparent``, ``tracestate``), the parent of the decision's span when tracing is on.
        """
        tracing = self.tracing
        if tracing is None:
            return self._decide_call(flow, input, version, request_id, caller, deadline)
        start_ns = time.time_ns()
        try:
            decision = self._decide_call(flow, input, version, request_id, caller, deadline)
        except VerdictError as exc:
            tracing.failed(trace, start_ns, flow, exc)
            raise
        tracing.decided(trace, start_ns, decision)
        return decision

    def _decide_call(
        self, flow: str, input: Mapping[str, Any], version: str, request_id: str, caller: str, deadline: float | None
    ) -> Decision:
        """``decide`` without tracing: checks, idempotency, then ``_decide``."""
        check_call(flow, version, request_id)  # bounded before it is routed, remembered or quoted
        if deadline is not None and time.monotonic() >= deadline:
            raise DeadlineExceeded("the caller's deadline passed before the decision started")
        idempotency = self._idempotency
        if idempotency is not None and request_id:  # a retry within the window gets the stored decision
            decided: list[Decision] = []

            def fresh() -> Decision:
                decided.append(self._decide(flow, input, version, request_id, caller, deadline))
                return decided[0]

            decision = idempotency.once(request_id, flow, version, input, fresh, caller=caller)
            if not decided:  # answered from the window: counted as a replay, not as a decision
                self.metrics.inc("verdict_idempotent_replays", flow=decision.flow)
            return decision
        return self._decide(flow, input, version, request_id, caller, deadline)

    def record_event(self, kind: str, fields: Mapping[str, Any], *, event_time: float = 0.0) -> tuple[float, int]:
        """Record one event of a declared type (events/<kind>.yaml) in every stateful feature's history
        that reads it; returns the event time used (``event_time`` in Unix seconds, 0: this server's
        clock) and how many key histories took it.

        Raises InvalidInput naming the unknown type, a bad event time and every bad field.
        """
        at, placed = record_declared_event(self.policies, self.state, self._clock, kind, fields, event_time)
        self.metrics.inc("verdict_events", type=kind, placed=str(placed > 0).lower())
        return at, placed

    def decide_many(
        self, requests: Sequence[Request | VerdictError], *, caller: str = "", deadline: float | None = None,
        trace: Mapping[str, str] | None = None,
    ) -> list[Decision | VerdictError]:
        """Decide each request as ``decide`` does (routing, decision log, idempotency per request id),
        one after the other; the result of each is its Decision or the typed error it raised.

        An item that is already a VerdictError (a request the transport could not decode) is its
        own result. Past ``deadline`` the remaining requests fail with DeadlineExceeded. Never
        raises for one request; the caller bounds how many there are (engine.limits.MAX_BATCH_REQUESTS).
        """
        out: list[Decision | VerdictError] = []
        for r in requests:
            if isinstance(r, VerdictError):
                out.append(r)
                continue
            try:
                out.append(self.decide(r.flow, r.input, version=r.version, request_id=r.request_id,
                                       caller=caller, deadline=deadline, trace=trace))
            except VerdictError as exc:
                out.append(exc)
        return out

    def _decide(
        self, flow: str, input: Mapping[str, Any], version: str, request_id: str, caller: str = "", deadline: float | None = None
    ) -> Decision:
        if not flow:
            raise InvalidInput([FieldError("flow", "is required", "required")])
        policies = self.policies  # read once: routing and shadows come from the same state
        compiled, route = self._resolve(policies, flow, version, input)
        expired = None if deadline is None else (lambda: time.monotonic() >= deadline)
        if expired is not None and expired():
            raise DeadlineExceeded("the caller's deadline passed before evaluation")
        start = time.perf_counter_ns()
        steps: dict[str, float] = {}  # step -> seconds (engine.runtime.flow's marks, then the log)
        last = [start]

        def mark(step: str) -> None:
            now = time.perf_counter_ns()
            steps[step] = (now - last[0]) / 1e9
            last[0] = now

        view = compiled.custom_lists  # its answers are recorded for the log (replays: Decision.lists)
        try:
            with view.recording() if view is not None else contextlib.nullcontext() as tape:
                outcome, state, at = self._evaluate(compiled, input, expired, mark, deadline)
        except (StepTimedOut, StepFailed) as exc:  # an `error` fallback: counted, then answered as the error
            reason = exc.reason if isinstance(exc, StepFailed) else "budget"
            self.metrics.inc("verdict_fallbacks", flow=compiled.flow, version=compiled.version, step=exc.step, reason=reason)
            raise
        except VerdictError:
            raise
        except Exception as exc:  # a bug or a broken model: the caller gets INTERNAL, the server lives
            raise DecisionFailed(f"evaluation of {flow} {compiled.version} failed: {type(exc).__name__}: {exc}") from exc
        eval_us = (time.perf_counter_ns() - start) / 1000.0
        decision = Decision(
            decision_id=new_decision_id(),
            request_id=request_id,
            flow=compiled.flow,
            version=compiled.version,
            revision=compiled.revision,
            outcome=outcome,
            models=compiled.model_versions,
            eval_us=eval_us,
            route=route,
            caller=caller,
            steps=steps,
            state=state,
            event_time=at,
            lists=tape.read() if tape is not None else {},
        )
        if self._sink is not None:
            if expired is not None and expired():  # the caller may be gone: not known as delivered
                self._sink.record(decision, input, masker=compiled.masker, delivery="unknown")
            else:
                self._sink.record(decision, input, masker=compiled.masker)
            mark("log")
        self._count(compiled, decision, (time.perf_counter_ns() - start) / 1e9, steps)
        shadows = policies.flows[compiled.flow].shadow
        if shadows:
            self._submit_shadows(policies, decision, shadows, input)
        return decision

    def _evaluate(
        self, compiled: CompiledFlow, input: Mapping[str, Any], expired: Callable[[], bool] | None, mark: Callable[[str], None],
        deadline: float | None = None,
    ) -> tuple[Outcome, dict[str, Any], float | None]:
        """The outcome, the stateful features it read and the event time (None: a flow without state).

        A flow with stateful features decides in one state-store transaction (engine.runtime.stateful).
        A flow with ``budgets`` (``deadline``: the caller's, monotonic seconds) runs its steps under a
        StepGuard (engine.runtime.fallback)."""
        plan = compiled.state
        guard = StepGuard(compiled.budgets, self.steps, deadline) if compiled.budgets else None
        if plan is None:
            if guard is not None:
                return compiled.evaluate(input, expired, mark=mark, guard=guard), {}, None
            return compiled.evaluate(input, expired, mark=mark), {}, None
        return evaluate_with_state(compiled, plan, self.state, self._clock, input, expired, mark, guard)

    def _count(self, compiled: CompiledFlow, decision: Decision, seconds: float, steps: dict[str, float]) -> None:
        """Count an answered decision in the metrics (engine.metrics.Metrics.decision)."""
        outcome = decision.outcome
        self.metrics.decision(
            decision.flow, decision.version, decision.route, outcome.action.name,
            (rule.id for rule in outcome.fired), (reason.code for reason in outcome.reasons),
            {bound.model.name: outcome.scores[bound.output] for bound in compiled.models if bound.output in outcome.scores},
            seconds, steps,
        )
        if outcome.features:  # a fixed-action fallback carries no feature values: nothing to monitor
            self.drift.observe(compiled, outcome)
        for taken in outcome.fallbacks:
            self.metrics.inc("verdict_fallbacks", flow=decision.flow, version=decision.version, step=taken.step, reason=taken.reason)

    def _submit_shadows(self, policies: PolicySet, decision: Decision, shadows: tuple[str, ...], input: Mapping[str, Any]) -> None:
        """Queue the flow's shadow versions (but the one that decided) for evaluation off this thread."""
        versions = policies.flows[decision.flow].versions
        flows = [versions[v] for v in shadows if v != decision.version and v in versions]
        if flows:
            served = versions[decision.version]
            self._shadow.submit(
                flows, input, decision.request_id, decision.decision_id, decision.outcome.action,
                # a fallback's values lack a score: the shadow computes its own
                prepare_key="" if decision.outcome.fallbacks else served.prepare_key, features=decision.outcome.features,
                state=decision.state or None,
            )

    def drain_shadows(self, timeout: float = 10.0) -> bool:
        """Wait until every queued shadow evaluation is done; False on timeout (tests, shutdown)."""
        return self._shadow.drain(timeout)

    def close(self) -> None:
        """Finish the queued shadow evaluations and stop their workers (and the drift refresh)."""
        self._shadow.close()
        self.drift.stop()
        self.steps.close()
        self.state.close()


def load_decider(
    root: Path, *, sink: DecisionSink | None = None, idempotency: Idempotency | None = None, state: StateStore | None = None,
) -> Decider:
    """Load, lint and self-test the policy root flow by flow, as a server starts (engine.policy.activation).

    Every flow without an error serves; a flow with one is not loaded and its requests raise
    ``FlowUnavailable`` naming its problems. Raises ``PolicyError`` listing every problem when no
    flow can serve at all.
    """
    from engine.policy.activation import check

    outcome = check(Path(root))
    if outcome.policies is None:
        raise PolicyError(list(outcome.problems) or [Problem(str(root), "no flow could be loaded", "no_flows")])
    return Decider(outcome.policies, sink=sink, idempotency=idempotency, state=state)
