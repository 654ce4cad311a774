"""`verdict serve --otlp-endpoint` exports decision traces to a real OTLP/gRPC receiver.

The receiver is a gRPC server on 127.0.0.1:0 implementing the collector's TraceService from
opentelemetry-proto (what an OpenTelemetry Collector listens with on 4317); the server runs as
`verdict serve` in its own process and a client calls Decide with a W3C traceparent.
"""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

from .helpers import ServeProcess, credit_applications, request, wait_serving

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    """Keeps every span exported to it."""

    def __init__(self) -> None:
        self.spans: list = []
        self.arrived = threading.Condition()

    def Export(self, req, context):  # noqa: N802 - the generated service's method name
        with self.arrived:
            for resource_spans in req.resource_spans:
                for scope in resource_spans.scope_spans:
                    self.spans.extend(scope.spans)
            self.arrived.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse()

    def wait(self, n: int, timeout: float = 30.0) -> list:
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.spans) >= n, timeout)
            return list(self.spans)


@pytest.fixture()
def receiver():
    server = grpc.server(futures.ThreadPoolExecutor(2))
    found = Receiver()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(found, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield found, port
    server.stop(0).wait(5)  # fully down before the next test (an in-process server left stopping disturbs later ones)


def attrs(span) -> dict:
    return {a.key: a.value.string_value or a.value.bool_value for a in span.attributes}


def test_serve_exports_decide_and_step_spans_continuing_the_callers_trace(tmp_path, receiver):
    """A Decide with a traceparent reaches the receiver as a Decide span in the caller's trace, under the
    caller's span, with the decision id, flow, version and action, and its step spans as children."""
    found, port = receiver
    server = ServeProcess(tmp_path, "--audit", "off", "--otlp-endpoint", f"http://127.0.0.1:{port}")
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            response = pb_grpc.DecisionServiceStub(channel).Decide(
                request("credit_application", credit_applications(1)[0]), timeout=10,
                metadata=(("traceparent", f"00-{TRACE_ID}-{PARENT_ID}-01"),),
            )
        assert server.terminate_and_wait() == 0  # shutdown flushes the batch of spans
    finally:
        server.kill()
    spans = found.wait(6)
    by_name = {s.name: s for s in spans}
    root = by_name["Decide"]
    assert root.trace_id.hex() == TRACE_ID and root.parent_span_id.hex() == PARENT_ID
    a = attrs(root)
    assert a["verdict.decision_id"] == response.decision_id
    assert (a["verdict.flow"], a["verdict.version"]) == ("credit_application", response.version)
    assert a["verdict.action"] in ("APPROVE", "REVIEW", "DECLINE")
    for step in ("validate", "features", "score", "rules", "explain"):
        child = by_name[f"verdict.{step}"]
        assert child.parent_span_id == root.span_id and child.trace_id == root.trace_id
