"""Deadlines in the core and the servicer: a caller who left gets DEADLINE_EXCEEDED, nothing logged."""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest

from engine.errors import DeadlineExceeded
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.servicer import DecisionServicer
from engine.grpc.wire import decode_decide_request
from engine.policy.loader import load_policies
from engine.runtime.service import Decider

from .grpc_fakes import AbortError, FakeContext

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = {
    "seniority": 9, "home": "rent", "time": 60, "age": 30, "marital": "married", "records": False,
    "job": "freelance", "expenses": 73, "income": 129, "assets": 0, "debt": 0, "amount": 800, "price": 846,
}  # fmt: skip


class ListSink:
    """Records what the Decider logs, with its delivery mark."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str]] = []

    def record(self, decision, raw_input, *, masker, delivery: str = "") -> None:
        self.records.append((decision.decision_id, delivery))


@pytest.fixture(scope="module")
def policies():
    return load_policies(ROOT)


def test_a_passed_deadline_decides_and_logs_nothing(policies):
    """decide() with a deadline already passed raises DeadlineExceeded before anything is logged."""
    sink = ListSink()
    decider = Decider(policies, sink=sink)
    with pytest.raises(DeadlineExceeded):
        decider.decide("credit_application", APPLICATION, deadline=time.monotonic() - 0.001)
    decider.close()
    assert sink.records == []


def test_a_deadline_in_the_future_decides_and_logs_as_usual(policies):
    """With time to spare the decision is logged without a delivery mark (answered in time)."""
    sink = ListSink()
    decider = Decider(policies, sink=sink)
    decision = decider.decide("credit_application", APPLICATION, version="1", deadline=time.monotonic() + 30)
    decider.close()
    assert (decision.decision_id, "") in sink.records


def test_the_deadline_is_checked_before_the_model(policies):
    """If the deadline passes during validation/derived features, the model is not run."""
    compiled = policies.flows["credit_application"].versions["1"]
    asked = []
    with pytest.raises(DeadlineExceeded, match="before model credit_default ran"):
        compiled.evaluate(APPLICATION, lambda: asked.append(1) or True)
    assert asked == [1]
    assert compiled.evaluate(APPLICATION, lambda: False).scores  # not expired: the model scores


def test_servicer_passes_the_calls_remaining_time_as_a_deadline():
    """The servicer turns context.time_remaining() into a monotonic deadline for the core;
    DeadlineExceeded from the core ends the call with DEADLINE_EXCEEDED."""
    seen = []

    class Core:
        def decide(self, flow, input, *, version="", request_id="", caller="", deadline=None):
            seen.append(deadline)
            raise DeadlineExceeded("the caller's deadline passed before evaluation")

    servicer = DecisionServicer(Core())  # type: ignore[arg-type]
    call = decode_decide_request(pb.DecideRequest(flow="credit_application").SerializeToString())
    before = time.monotonic()
    with pytest.raises(AbortError) as info:
        servicer.Decide(call, FakeContext(time_remaining=0.25))
    assert info.value.code is grpc.StatusCode.DEADLINE_EXCEEDED
    assert before + 0.25 <= seen[0] <= time.monotonic() + 0.25
    with pytest.raises(AbortError):
        servicer.Decide(call, FakeContext(time_remaining=None))
    assert seen[1] is None
