"""The real server on a free loopback port, called through the generated stub."""

from __future__ import annotations

import json
import threading
from collections import Counter

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from engine.cli import main
from engine.grpc.convert import decision_to_response, response_to_dict
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.status import field_errors_from
from engine.grpc.wire import decode_decide_request

from .conftest import MAX_MESSAGE_BYTES
from .helpers import card_payments, comparable, credit_applications, request

pytestmark = pytest.mark.integration

APPLICATIONS = credit_applications()
GOOD = APPLICATIONS[0]


def _in_process(decider, message: pb.DecideRequest) -> pb.DecideResponse:
    """The decision the core makes in-process for the same request bytes."""
    call = decode_decide_request(message.SerializeToString())
    decision = decider.decide(call.flow, call.input, version=call.version, request_id=call.request_id)
    return decision_to_response(decision)


def _error(stub, message: pb.DecideRequest) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Decide(message, timeout=10)
    return caught.value


def _still_serving(stub) -> None:
    assert stub.Decide(request("credit_application", GOOD), timeout=10).action != pb.ACTION_UNSPECIFIED


def test_real_credit_applications_decide_as_in_process(stub, decider):
    """300 real applications get complete answers equal to the in-process decisions, all actions seen."""
    actions = Counter()
    for i, application in enumerate(APPLICATIONS[:: len(APPLICATIONS) // 300][:300]):
        message = request("credit_application", application, request_id=f"r{i}")
        response = stub.Decide(message, timeout=10)
        assert comparable(response) == comparable(_in_process(decider, message))
        assert response.request_id == f"r{i}" and response.decision_id and response.revision
        assert "pd" in response.scores and response.models["credit_default"].startswith("2@")  # v3 is live
        if response.action == pb.DECLINE:
            assert 1 <= len(response.reasons) <= 4
            assert 1 <= len(response.notice_reasons) <= 4 and all(n.text for n in response.notice_reasons)
        if response.action == pb.REVIEW:
            assert response.reasons
        actions[pb.Action.Name(response.action)] += 1
    assert set(actions) == {"APPROVE", "REVIEW", "DECLINE"}, actions


def test_service_and_verdict_decide_print_identical_decisions(stub, tmp_path, capsys):
    """For the same input, `verdict decide` prints the service's answer (ids and timings aside)."""
    for i, application in enumerate(APPLICATIONS[:5]):
        path = tmp_path / f"app{i}.json"
        path.write_text(json.dumps(application))
        assert main(["decide", "credit_application", "--input", str(path), "--request-id", f"r{i}"]) == 0
        printed = json.loads(capsys.readouterr().out)
        served = response_to_dict(stub.Decide(request("credit_application", application, request_id=f"r{i}"), timeout=10))
        for doc in (printed, served):
            del doc["decision_id"], doc["eval_us"]
        assert printed == served


def test_card_payments_decide(stub, decider):
    """Real card_payment transactions decide with a fraud score, equal to in-process decisions."""
    for payment in card_payments(50):
        message = request("card_payment", payment, version="1")  # the CSV's rows are version 1's inputs
        response = stub.Decide(message, timeout=10)
        assert comparable(response) == comparable(_in_process(decider, message))
        assert response.scores and response.action != pb.ACTION_UNSPECIFIED


def test_32_concurrent_clients_each_get_their_own_decision(target, decider):
    """32 clients on their own channels send 1,280 distinct requests; each answer equals the one-by-one decision."""
    clients, per_client = 32, 40
    inputs = APPLICATIONS[: clients * per_client]
    expected = [comparable(_in_process(decider, request("credit_application", x, request_id=f"c{i}"))) for i, x in enumerate(inputs)]
    results: list[pb.DecideResponse | None] = [None] * len(inputs)
    failures: list[BaseException] = []
    start = threading.Barrier(clients)

    def client(k: int) -> None:
        try:
            with grpc.insecure_channel(target) as channel:
                stub = pb_grpc.DecisionServiceStub(channel)
                start.wait()
                for i in range(k, len(inputs), clients):
                    results[i] = stub.Decide(request("credit_application", inputs[i], request_id=f"c{i}"), timeout=30)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures, failures[:3]
    assert len(results) > 1024
    mismatched = [i for i, r in enumerate(results) if r is None or comparable(r) != expected[i]]
    assert not mismatched, f"{len(mismatched)} answers differ from the one-by-one decision, e.g. #{mismatched[:5]}"
    assert len({r.decision_id for r in results}) == len(results)


def test_bad_input_is_invalid_argument_naming_every_bad_field(stub):
    """An application with three bad fields gets INVALID_ARGUMENT naming all three; the server keeps serving."""
    bad = dict(GOOD, age=-5, home="castle")
    del bad["seniority"]
    error = _error(stub, request("credit_application", bad))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    fields = {e["field"]: e["code"] for e in field_errors_from(error.trailing_metadata())}
    assert set(fields) == {"age", "home", "seniority"}
    for name in fields:
        assert name in error.details()
    _still_serving(stub)


def test_missing_flow_is_invalid_argument(stub):
    """A request without a flow is INVALID_ARGUMENT naming 'flow'."""
    error = _error(stub, request("", GOOD))
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert [e["field"] for e in field_errors_from(error.trailing_metadata())] == ["flow"]
    _still_serving(stub)


@pytest.mark.parametrize(
    ("flow", "version", "named"),
    [("mortgage", "", "'mortgage'"), ("credit_application", "99", "'99'")],
)
def test_unknown_flow_or_version_is_not_found_naming_it(stub, flow, version, named):
    """An unknown flow or version is NOT_FOUND, named in the message; the server keeps serving."""
    error = _error(stub, request(flow, GOOD, version=version))
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert named in error.details()
    _still_serving(stub)


def test_oversize_request_is_resource_exhausted(stub):
    """A request over the configured message size is RESOURCE_EXHAUSTED; the server keeps serving."""
    error = _error(stub, request("credit_application", dict(GOOD, note="x" * (MAX_MESSAGE_BYTES + 1))))
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    _still_serving(stub)


def test_malformed_bytes_are_invalid_argument(channel, stub):
    """Bytes that are not a DecideRequest are INVALID_ARGUMENT, not INTERNAL or UNKNOWN."""
    raw = channel.unary_unary("/verdict.v1.DecisionService/Decide")  # no serializers: raw bytes
    with pytest.raises(grpc.RpcError) as caught:
        raw(b"\x0a\x05ab", timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    _still_serving(stub)


def test_list_flows_lists_both_example_flows(stub):
    """ListFlows names credit_application and card_payment with their live versions."""
    flows = {f.name: f for f in stub.ListFlows(pb.ListFlowsRequest(), timeout=10).flows}
    assert {"credit_application", "card_payment"} <= set(flows)
    assert flows["credit_application"].live_version in flows["credit_application"].versions


@pytest.mark.parametrize("service", ["", "verdict.v1.DecisionService"])
def test_health_is_serving(channel, service):
    """The standard health service reports SERVING, overall and for DecisionService."""
    status = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    assert status.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_the_service(channel):
    """Server reflection lists DecisionService, health and reflection itself."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    names = {s.name for r in responses for s in r.list_services_response.service}
    assert {"verdict.v1.DecisionService", "grpc.health.v1.Health"} <= names
