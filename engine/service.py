"""The transport-agnostic decision service: routes a request to a flow version and decides.

This is the one object the gRPC servicer and the CLI call. It owns the current ``PolicySet`` and
swaps it atomically on reload; each call reads the reference once, so a request never sees a
half-loaded state. It adds identity and timing to the pure outcome.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from engine.errors import DecisionFailed, FieldError, FlowNotFound, InvalidInput, NotReady, VerdictError, VersionNotFound
from engine.flow import CompiledFlow
from engine.loader import PolicySet, load_policies
from engine.types import Decision

__all__ = ["Decider", "DecisionSink", "Idempotency", "load_decider", "new_decision_id"]


class Idempotency(Protocol):
    """Retries with the same request id get the stored decision (``engine.idempotency``)."""

    def once(
        self, request_id: str, flow: str, version: str, input: Mapping[str, Any], decide: Callable[[], Decision]
    ) -> Decision: ...


class DecisionSink(Protocol):
    """Where every decision goes before the caller sees it (the decision log).

    ``record`` returns only once the decision is durable (or raises, and the caller gets an error
    instead of an answer that was never logged). Shadow outcomes are recorded with route "shadow".
    """

    def record(self, decision: Decision, raw_input: Mapping[str, Any]) -> None: ...


def new_decision_id() -> str:
    """A random, unique decision id (UUID4, hex)."""
    return uuid.uuid4().hex


class Decider:
    """Decides requests against the current policy set."""

    def __init__(
        self,
        policies: PolicySet | None = None,
        *,
        sink: DecisionSink | None = None,
        idempotency: Idempotency | None = None,
    ) -> None:
        self._policies = policies
        self._sink = sink
        self._idempotency = idempotency

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
        self._policies = policies

    def flows(self) -> dict[str, list[str]]:
        from engine.loader import version_key

        return {name: sorted(f.versions, key=version_key) for name, f in self.policies.flows.items()}

    def live_version(self, flow: str) -> str:
        return self.resolve(flow, "")[0].version

    def resolve(self, flow: str, version: str = "") -> tuple[CompiledFlow, str]:
        """The compiled flow version a request gets, and its route ('live' or 'pinned')."""
        policies = self.policies
        entry = policies.flows.get(flow)
        if entry is None:
            raise FlowNotFound(flow, list(policies.flows))
        if not version:
            return entry.versions[entry.live], "live"
        compiled = entry.versions.get(version)
        if compiled is None:
            raise VersionNotFound(flow, version, list(entry.versions))
        return compiled, "pinned"

    def decide(self, flow: str, input: Mapping[str, Any], *, version: str = "", request_id: str = "") -> Decision:
        """Decide one request. Raises the engine's typed errors; never anything else."""
        idempotency = self._idempotency
        if idempotency is not None and request_id:  # a retry within the window gets the stored decision
            return idempotency.once(request_id, flow, version, input, lambda: self._decide(flow, input, version, request_id))
        return self._decide(flow, input, version, request_id)

    def _decide(self, flow: str, input: Mapping[str, Any], version: str, request_id: str) -> Decision:
        if not flow:
            raise InvalidInput([FieldError("flow", "is required", "required")])
        compiled, route = self.resolve(flow, version)
        start = time.perf_counter_ns()
        try:
            outcome = compiled.evaluate(input)
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
        )
        if self._sink is not None:
            self._sink.record(decision, input)
        return decision


def load_decider(root: Path, *, sink: DecisionSink | None = None, idempotency: Idempotency | None = None) -> Decider:
    """Load and compile the policy root; raises PolicyError listing every problem."""
    return Decider(load_policies(Path(root)), sink=sink, idempotency=idempotency)
