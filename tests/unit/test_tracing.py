"""OpenTelemetry traces (engine.tracing): a Decide span with one child per step, the caller's trace continued, off by default."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from opentelemetry.trace import SpanKind, StatusCode

from engine.errors import InvalidInput
from engine.grpc.servicer import _trace_of
from engine.policy.loader import load_policies
from engine.runtime.service import Decider
from engine.settings import Settings, SettingsError
from engine.tracing import Tracing

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = {
    "seniority": 9, "home": "rent", "time": 60, "age": 30, "marital": "married", "records": False,
    "job": "freelance", "expenses": 73, "income": 129, "assets": 0, "debt": 0, "amount": 800, "price": 846,
}  # fmt: skip
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"  # the example of W3C Trace Context §3.2.2.1
PARENT_ID = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def policies():
    return load_policies(ROOT)


def spans_of(policies, carrier=None, **kwargs):
    """The finished spans of one traced decision (or error) of credit_application, and its result."""
    tracing = Tracing.in_memory()
    decider = Decider(policies, tracing=tracing)
    try:
        result = decider.decide("credit_application", APPLICATION, trace=carrier, **kwargs)
    except InvalidInput as exc:
        result = exc
    decider.close()
    return {s.name: s for s in tracing.exporter.get_finished_spans()}, result


def test_a_decision_has_a_decide_span_and_one_child_per_step(policies):
    """Decide (kind SERVER) carries decision id, flow, version, action; validate..log are its children, in order, inside it."""
    spans, decision = spans_of(policies)
    root = spans["Decide"]
    assert root.kind is SpanKind.SERVER
    assert root.attributes["verdict.decision_id"] == decision.decision_id
    assert (root.attributes["verdict.flow"], root.attributes["verdict.version"]) == ("credit_application", decision.version)
    assert root.attributes["verdict.action"] == decision.action.name
    assert root.attributes["verdict.fallback"] is False
    steps = [spans[f"verdict.{s}"] for s in ("validate", "features", "score", "rules", "explain")]
    assert all(s.parent.span_id == root.context.span_id and s.context.trace_id == root.context.trace_id for s in steps)
    assert all(a.end_time <= b.start_time for a, b in itertools.pairwise(steps))
    assert root.start_time <= steps[0].start_time and steps[-1].end_time <= root.end_time
    assert root.parent is None  # no caller trace: a new one


def test_the_callers_traceparent_continues_its_trace(policies):
    """A W3C traceparent from the caller makes Decide a child of the caller's span, in the caller's trace."""
    spans, _ = spans_of(policies, {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    root = spans["Decide"]
    assert format(root.context.trace_id, "032x") == TRACE_ID
    assert format(root.parent.span_id, "016x") == PARENT_ID


def test_an_error_is_an_error_span_with_its_code(policies):
    """A refused request still leaves a Decide span, status ERROR, with the engine's error code and no request data."""
    tracing = Tracing.in_memory()
    decider = Decider(policies, tracing=tracing)
    with pytest.raises(InvalidInput):
        decider.decide("credit_application", {**APPLICATION, "age": -5})
    decider.close()
    (root,) = tracing.exporter.get_finished_spans()
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes["verdict.error_code"] == "invalid_input"
    assert "-5" not in str(dict(root.attributes))


def test_tracing_is_off_by_default_and_reads_no_metadata(policies):
    """A Decider has no tracing unless given one, and the servicer then never reads the call's metadata."""

    class NoMetadata:
        def invocation_metadata(self):
            raise AssertionError("metadata read while tracing is off")

    decider = Decider(policies)
    assert decider.tracing is None and _trace_of(decider, NoMetadata()) == {}
    decider.close()


def test_the_servicer_hands_only_the_trace_headers_to_a_tracing_core(policies):
    """With tracing on, traceparent and tracestate (nothing else of the metadata) go to the core."""

    class Context:
        def invocation_metadata(self):
            return (("traceparent", "00-x-y-01"), ("tracestate", "a=b"), ("authorization", "Bearer secret"))

    decider = Decider(policies, tracing=Tracing.in_memory())
    assert _trace_of(decider, Context()) == {"trace": {"traceparent": "00-x-y-01", "tracestate": "a=b"}}
    decider.close()


def test_the_otlp_endpoint_comes_from_the_flag_verdict_or_the_standard_variables():
    """--otlp-endpoint beats VERDICT_OTLP_ENDPOINT, which beats OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, then OTEL_EXPORTER_OTLP_ENDPOINT."""
    std = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://b:4317"}
    assert Settings.load(env={}).otlp_endpoint is None
    assert Settings.load(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://a:4317"}).otlp_endpoint == "http://a:4317"
    assert Settings.load(env=std).otlp_endpoint == "http://b:4317"
    assert Settings.load(env={**std, "VERDICT_OTLP_ENDPOINT": "http://c:4317"}).otlp_endpoint == "http://c:4317"
    assert Settings.load(env=std, otlp_endpoint="https://d:4317").otlp_endpoint == "https://d:4317"
    with pytest.raises(SettingsError, match="otlp_endpoint"):
        Settings.load(env={}, otlp_endpoint="collector:4317")  # no scheme: refused, named


def test_each_request_of_a_batch_is_a_decide_span_in_the_callers_trace(policies):
    """decide_many (DecideBatch) records one Decide span per request, each a child of the caller's span."""
    from collections import namedtuple

    tracing = Tracing.in_memory()
    decider = Decider(policies, tracing=tracing)
    request = namedtuple("request", "flow version request_id input")
    results = decider.decide_many([request("credit_application", "", f"r{i}", APPLICATION) for i in range(3)],
                                  trace={"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"})
    decider.close()
    roots = [s for s in tracing.exporter.get_finished_spans() if s.name == "Decide"]
    assert len(roots) == 3
    assert sorted(s.attributes["verdict.decision_id"] for s in roots) == sorted(r.decision_id for r in results)
    assert all(format(s.parent.span_id, "016x") == PARENT_ID for s in roots)


def test_a_fallback_decision_says_so_on_its_span(tmp_path):
    """A decision taken by a fallback has verdict.fallback true and verdict.fallback_step on its Decide span."""
    import time

    from .test_fallback import PAYMENT, card_root

    root = card_root(tmp_path, "  score: {budget_ms: 10, on_miss: action, action: REVIEW, reason: MODEL_UNAVAILABLE}\n")
    tracing = Tracing.in_memory()
    decider = Decider(load_policies(root), tracing=tracing)
    model = decider.policies.flows["card_payment"].versions["1"].models[0].model
    score = model.score
    model.score = lambda x: time.sleep(0.1) or score(x)
    decider.decide("card_payment", PAYMENT, version="1")
    decider.close()
    (span,) = [s for s in tracing.exporter.get_finished_spans() if s.name == "Decide"]
    assert span.attributes["verdict.fallback"] is True
    assert span.attributes["verdict.fallback_step"] == "score.card_fraud"
    assert span.attributes["verdict.action"] == "REVIEW"
