"""Callers who left: past the client's deadline the server neither decides nor logs as delivered.

A real gRPC server on 127.0.0.1:0 serves the bundled policies with the file decision log; a slow
step is injected into the compiled flow (a slow derived-feature step, before the model; or a
slow model, after the last deadline check) and clients call with a 10 ms deadline.
"""

from __future__ import annotations

import time

import grpc
import pytest

from engine.audit.source import open_source
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.policy.loader import load_policies

from .helpers import ROOT, credit_applications, logged_server, request

pytestmark = pytest.mark.integration

CALLS = 20
DEADLINE = 0.010  # seconds, what the client gives each call
SLOW = 0.040  # seconds the injected step takes


@pytest.fixture()
def served(tmp_path):
    """(stub, the credit flow's live compiled version, log directory, decider) over a real server."""
    policies = load_policies(ROOT)
    entry = policies.flows["credit_application"]
    with logged_server(tmp_path / "audit", policies) as (channel, decider):
        yield pb_grpc.DecisionServiceStub(channel), entry.versions[entry.live], tmp_path / "audit", decider


def call_all(stub, applications, timeout):
    codes = []
    for application in applications:
        try:
            stub.Decide(request("credit_application", application), timeout=timeout)
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
    return codes


def logged(directory):
    return [r for r in open_source(directory).decisions() if r["route"] != "shadow"]


def test_expired_before_the_model_is_neither_decided_nor_logged(served):
    """A slow step before the model: every call ends DEADLINE_EXCEEDED and nothing is logged."""
    stub, compiled, directory, decider = served
    derive = compiled.program.derive

    def slow_derive(values):
        time.sleep(SLOW)
        derive(values)

    compiled.program.derive = slow_derive
    scored = []
    model = compiled.models[0].model
    score = model.score
    model.score = lambda x: scored.append(1) or score(x)
    try:
        codes = call_all(stub, credit_applications(CALLS), DEADLINE)
        decider.drain_shadows()
    finally:
        compiled.program.derive = derive
        del model.score
    assert codes == [grpc.StatusCode.DEADLINE_EXCEEDED] * CALLS
    time.sleep(SLOW * 2)  # let the last server-side call finish its work
    assert scored == []  # the model never ran for a caller who had left
    assert logged(directory) == []


def test_decision_finished_after_the_deadline_is_logged_as_delivery_unknown(served):
    """A slow model (after the last check): decisions are logged with delivery 'unknown', none as
    delivered; calls with time to spare are logged without that mark."""
    stub, compiled, directory, decider = served
    model = compiled.models[0].model
    score = model.score

    def slow_score(x):
        time.sleep(SLOW)
        return score(x)

    model.score = slow_score
    try:
        late = call_all(stub, credit_applications(CALLS), DEADLINE)
        time.sleep(SLOW * 2)
    finally:
        del model.score
    in_time = call_all(stub, credit_applications(5), 10.0)
    decider.drain_shadows()
    assert late == [grpc.StatusCode.DEADLINE_EXCEEDED] * CALLS and in_time == [grpc.StatusCode.OK] * 5
    records = logged(directory)
    delivered = [r for r in records if "delivery" not in r]
    unknown = [r for r in records if r.get("delivery") == "unknown"]
    assert len(delivered) == 5  # only the calls that had time
    assert len(unknown) == len(records) - 5 <= CALLS  # every late decision that was made says so
    assert unknown  # (the slow model ran, so some decisions were finished late)
