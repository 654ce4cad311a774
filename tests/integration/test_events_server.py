"""RecordEvent over gRPC: event schemas enforced, and an account-takeover sequence refused, then approved a day later."""

from __future__ import annotations

import json

import grpc
import pytest

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

from .helpers import ServeProcess, request, wait_serving

pytestmark = pytest.mark.integration
T0 = 1_800_000_000.0


@pytest.fixture(scope="module")
def stub(tmp_path_factory):
    server = ServeProcess(tmp_path_factory.mktemp("serve"), "--threads", "2")
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            yield pb_grpc.DecisionServiceStub(channel)
    finally:
        server.kill()


def _event(stub, kind: str, at: float, **fields) -> pb.RecordEventResponse:
    message = pb.RecordEventRequest(type=kind, event_time=at)
    message.fields.update(fields)
    return stub.RecordEvent(message, timeout=10)


def _payout(stub, at: float, amount: float = 2500.0) -> tuple[str, list[str]]:
    data = {"customer_id": "C-ato", "amount": amount, "currency": "EUR", "destination": "own_account", "event_time": at}
    reply = stub.Decide(request("account_payout", data), timeout=10)
    return pb.Action.Name(reply.action), [r.code for r in reply.reasons]


def test_takeover_sequence_is_declined_and_the_same_payout_a_day_later_approved(stub):
    """Password reset, then a new-device sign-in, then a large payout within the hour: DECLINE
    ACCOUNT_TAKEOVER; the same payout a day later: APPROVE."""
    assert _event(stub, "password_reset", T0, customer_id="C-ato", channel="email_link").recorded == 1
    assert _event(stub, "login", T0 + 600, customer_id="C-ato", device_id="D-new", new_device=True).recorded == 1
    assert _payout(stub, T0 + 1200) == ("DECLINE", ["ACCOUNT_TAKEOVER"])
    assert _payout(stub, T0 + 86400 + 1200) == ("APPROVE", [])


def test_a_login_from_a_known_device_does_not_complete_the_sequence(stub):
    """A reset followed by a sign-in from a known device (where: new_device is false) is no takeover."""
    _event(stub, "password_reset", T0, customer_id="C-known", channel="web")
    assert _event(stub, "login", T0 + 60, customer_id="C-known", device_id="D-1", new_device=False).recorded == 0
    data = {"customer_id": "C-known", "amount": 2500.0, "currency": "EUR", "destination": "own_account", "event_time": T0 + 120}
    reply = stub.Decide(request("account_payout", data), timeout=10)
    assert pb.Action.Name(reply.action) == "APPROVE"


def test_bad_events_are_refused_naming_every_bad_field(stub):
    """An event with a wrong type, an unknown field and a missing required field is INVALID_ARGUMENT
    naming each; an unknown event type is INVALID_ARGUMENT with a did-you-mean; the server keeps serving."""
    with pytest.raises(grpc.RpcError) as err:
        _event(stub, "login", T0, device_id=5, colour="red")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    trailer = dict(err.value.trailing_metadata())["verdict-field-errors"]
    named = {e["field"] for e in json.loads(trailer)}
    assert {"customer_id", "new_device", "device_id", "colour"} <= named, named
    with pytest.raises(grpc.RpcError) as err:
        _event(stub, "pasword_reset", T0, customer_id="C1")
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "password_reset" in err.value.details()
    assert _event(stub, "phone_change", T0, customer_id="C1").recorded == 0  # declared, read by no flow yet
