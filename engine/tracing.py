"""OpenTelemetry traces of decisions: a ``Decide`` span and one child span per step; off by default.

Off (the default) costs one ``is None`` test per decision: ``Decider.tracing`` is None and nothing
of OpenTelemetry is imported. On (``verdict serve --otlp-endpoint URL``, or the standard
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` / ``OTEL_EXPORTER_OTLP_ENDPOINT``; engine.settings), every
decision is exported with OTLP/gRPC through the SDK's batching processor (off the request path).
It needs the ``otel`` extra (opentelemetry-sdk, opentelemetry-exporter-otlp-proto-grpc); without
it the server refuses to start with one line (engine.extras).

Spans are written when the decision ends, from the times the core already measures (the
``mark`` of each step, engine.runtime.flow): the ``Decide`` span (kind SERVER) runs from the call's
entry to its end; its children ``verdict.validate``, ``verdict.features``, ``verdict.score``,
``verdict.rules``, ``verdict.explain`` and ``verdict.log`` are laid end to end with the durations
measured, the last ending with the call (routing and metrics, a few µs, fall outside them). Attributes of ``Decide``: ``verdict.decision_id``,
``verdict.flow``, ``verdict.version``, ``verdict.route``, ``verdict.action``,
``verdict.revision``, ``verdict.fallback`` (and ``verdict.fallback_step`` when true), and the
``rpc.*`` attributes of the OpenTelemetry semantic conventions for RPC; a call that fails has
status ERROR and ``verdict.error_code`` (the engine's stable code). No request data goes on a span.

The caller's trace continues: a W3C ``traceparent`` (and ``tracestate``) in the gRPC metadata is
the parent of the ``Decide`` span (W3C Trace Context, https://www.w3.org/TR/trace-context/).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from engine.errors import VerdictError
from engine.extras import require
from engine.types import Decision

__all__ = ["TRACE_HEADERS", "Tracing"]

#: gRPC metadata keys the servicer hands to the core (W3C Trace Context).
TRACE_HEADERS = ("traceparent", "tracestate")


class Tracing:
    """Records the spans of decisions with one OpenTelemetry tracer (one per server process).

    Build it with ``otlp`` (export to a collector) or ``in_memory`` (tests, benchmarks) after any
    fork: the SDK's exporter thread and gRPC channel do not survive one.
    """

    def __init__(self, provider: Any, exporter: Any = None) -> None:
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._provider = provider
        self._tracer = provider.get_tracer("verdict")
        self._propagator = TraceContextTextMapPropagator()
        self.exporter = exporter  # the in-memory exporter of ``in_memory`` (tests read its spans)

    @classmethod
    def otlp(cls, endpoint: str) -> Tracing:
        """Export to an OTLP/gRPC collector at ``endpoint`` (``http://host:4317``: plaintext;
        ``https://``: TLS). Raises MissingExtra without the ``otel`` extra."""
        require("otel", "--otlp-endpoint (OpenTelemetry traces)")
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = _provider()
        exporter = OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    @classmethod
    def in_memory(cls) -> Tracing:
        """Spans kept in memory (``exporter.get_finished_spans()``), written synchronously."""
        require("otel", "in-memory tracing")
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        provider = _provider()
        exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        return cls(provider, exporter)

    def decided(self, carrier: Mapping[str, str] | None, start_ns: int, decision: Decision) -> None:
        """Record the spans of ``decision``, which began at ``start_ns`` (``time.time_ns()``)."""
        end_ns = time.time_ns()
        outcome = decision.outcome
        attributes: dict[str, Any] = {
            **_RPC,
            "verdict.decision_id": decision.decision_id,
            "verdict.flow": decision.flow,
            "verdict.version": decision.version,
            "verdict.route": decision.route,
            "verdict.action": outcome.action.name,
            "verdict.revision": decision.revision,
            "verdict.fallback": bool(outcome.fallbacks),
        }
        if outcome.fallbacks:
            attributes["verdict.fallback_step"] = outcome.fallbacks[0].step
        root = self._tracer.start_span("Decide", context=self._parent(carrier), kind=_server(), start_time=start_ns,
                                       attributes=attributes)
        self._steps(root, decision.steps, start_ns, end_ns)
        root.end(end_time=end_ns)

    def failed(self, carrier: Mapping[str, str] | None, start_ns: int, flow: str, error: VerdictError) -> None:
        """Record the ``Decide`` span of a call that ended with ``error``."""
        from opentelemetry.trace import Status, StatusCode

        root = self._tracer.start_span("Decide", context=self._parent(carrier), kind=_server(), start_time=start_ns,
                                       attributes={**_RPC, "verdict.flow": flow[:64], "verdict.error_code": error.code})
        root.set_status(Status(StatusCode.ERROR, error.code))
        root.end()

    def shutdown(self) -> None:
        """Export what is buffered and stop the exporter (at server stop)."""
        self._provider.shutdown()

    def _parent(self, carrier: Mapping[str, str] | None) -> Any:
        return self._propagator.extract(carrier) if carrier else None

    def _steps(self, root: Any, steps: Mapping[str, float], start_ns: int, end_ns: int) -> None:
        from opentelemetry import trace

        if not steps:
            return
        parent = trace.set_span_in_context(root)
        t = max(start_ns, end_ns - int(sum(steps.values()) * 1e9))  # the steps end when the decision does
        for step, seconds in steps.items():
            until = min(t + int(seconds * 1e9), end_ns)  # two clocks (wall, perf_counter): never past the end
            self._tracer.start_span(f"verdict.{step}", context=parent, start_time=t).end(end_time=until)
            t = until


_RPC = {"rpc.system": "grpc", "rpc.service": "verdict.v1.DecisionService", "rpc.method": "Decide"}


def _server() -> Any:
    from opentelemetry.trace import SpanKind

    return SpanKind.SERVER


def _provider() -> Any:
    """A TracerProvider naming this service (``service.name`` verdict, OpenTelemetry resource conventions)."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    return TracerProvider(resource=Resource.create({"service.name": "verdict"}))
