"""The servicer converts in, calls the core, converts out, and reports errors by status code."""

import grpc
import pytest

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.servicer import SERVICE_NAME, DecisionServicer, handlers
from engine.grpc.status import field_errors_from
from engine.grpc.wire import decode_decide_request

from .grpc_fakes import AbortError, FakeContext, FakeDecider


def _call(flow="credit_application", version="", request_id="r-1", **input_):
    request = pb.DecideRequest(flow=flow, version=version, request_id=request_id)
    request.input.update(input_)
    return decode_decide_request(request.SerializeToString())


def _decide(servicer, call):
    return pb.DecideResponse.FromString(servicer.Decide(call, FakeContext()))


def test_decide_passes_the_request_to_the_core_and_answers_its_decision():
    """Flow, version, request id and input reach the core; its decision comes back serialized."""
    core = FakeDecider()
    response = _decide(DecisionServicer(core), _call(version="1", request_id="abc", age=17, income=120.5))
    assert core.calls == [("credit_application", {"age": 17.0, "income": 120.5}, "1", "abc")]
    assert response.action == pb.DECLINE and response.request_id == "abc"
    assert response.flow == "credit_application" and response.reasons and response.fired_rules


def _abort(servicer, call):
    context = FakeContext()
    with pytest.raises(AbortError) as caught:
        servicer.Decide(call, context)
    return caught.value, field_errors_from(context.trailing)


def test_empty_flow_is_invalid_argument_naming_the_field():
    """A request without a flow is INVALID_ARGUMENT with field 'flow'."""
    error, fields = _abort(DecisionServicer(FakeDecider()), _call(flow=""))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [f["field"] for f in fields] == ["flow"]


def test_bad_input_is_invalid_argument_naming_every_field():
    """Every bad field the core reports is named in the status and the metadata."""
    error, fields = _abort(DecisionServicer(FakeDecider()), _call(age="old", home=True))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert sorted(f["field"] for f in fields) == ["age", "home"]
    assert "age" in error.details and "home" in error.details


@pytest.mark.parametrize(("flow", "version", "named"), [("nope", "", "nope"), ("credit_application", "9", "'9'")])
def test_unknown_flow_or_version_is_not_found_naming_it(flow, version, named):
    """An unknown flow or version is NOT_FOUND and the message names it."""
    error, _ = _abort(DecisionServicer(FakeDecider()), _call(flow=flow, version=version))
    assert error.code is grpc.StatusCode.NOT_FOUND
    assert named in error.details


def test_malformed_request_is_invalid_argument():
    """Bytes that are not a DecideRequest are the caller's fault: INVALID_ARGUMENT, field 'request'."""
    error, fields = _abort(DecisionServicer(FakeDecider()), decode_decide_request(b"\x0a\x05ab"))
    assert error.code is grpc.StatusCode.INVALID_ARGUMENT
    assert fields[0]["field"] == "request" and fields[0]["code"] == "malformed"


def test_before_ready_calls_are_unavailable():
    """Until a decider is attached, Decide and ListFlows answer UNAVAILABLE; afterwards they serve."""
    servicer = DecisionServicer()
    error, _ = _abort(servicer, _call(age=30))
    assert error.code is grpc.StatusCode.UNAVAILABLE
    with pytest.raises(AbortError):
        servicer.ListFlows(pb.ListFlowsRequest(), FakeContext())
    servicer.ready(FakeDecider())
    assert _decide(servicer, _call(age=30)).action == pb.APPROVE


def test_a_crash_in_the_core_is_internal():
    """An unexpected exception from the core becomes INTERNAL, not UNKNOWN."""

    class Broken(FakeDecider):
        def decide(self, *args, **kwargs):
            raise ZeroDivisionError("boom")

    error, _ = _abort(DecisionServicer(Broken()), _call(age=30))
    assert error.code is grpc.StatusCode.INTERNAL


def test_list_flows_lists_versions_and_live_version():
    """ListFlows answers every loaded flow with its versions and live version."""
    response = DecisionServicer(FakeDecider()).ListFlows(pb.ListFlowsRequest(), FakeContext())
    assert [(f.name, f.live_version, list(f.versions)) for f in response.flows] == [
        ("card_payment", "2", ["1", "2"]),
        ("credit_application", "1", ["1"]),
    ]


def test_handlers_cover_every_rpc_of_the_contract():
    """Every rpc of verdict.v1.DecisionService has a handler; Decide uses the fast codec."""
    service = pb.DESCRIPTOR.services_by_name["DecisionService"]
    table = handlers(DecisionServicer(FakeDecider()))
    assert SERVICE_NAME == "verdict.v1.DecisionService"
    assert set(table) == {m.name for m in service.methods}
    assert table["Decide"].request_deserializer is decode_decide_request
    assert table["Decide"].response_serializer is None
