"""A slow or failing model behind a real gRPC server: flagged fallback decisions within the budget.

The bundled card_payment 1 declares a 50 ms budget on its model with a REVIEW/MODEL_UNAVAILABLE
fallback (policies/card_payment/1/flow.yaml). A real server on 127.0.0.1:0 serves it with the file
decision log; the model is made genuinely slow (a hook that sleeps before scoring) or broken.
"""

from __future__ import annotations

import time

import pytest

from engine.audit.source import open_source
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.policy.loader import load_policies

from .helpers import ROOT, card_payments, logged_server, request

pytestmark = pytest.mark.integration

CALLS = 12
SLOW = 0.300  # seconds the slow model takes: six times the flow's 50 ms budget
BUDGET = 0.050


@pytest.fixture()
def served(tmp_path):
    """(stub, card_payment 1's model, log directory, decider) over a real server with the bundled policies."""
    policies = load_policies(ROOT)
    model = policies.flows["card_payment"].versions["1"].models[0].model
    with logged_server(tmp_path / "audit", policies) as (channel, decider):
        yield pb_grpc.DecisionServiceStub(channel), model, tmp_path / "audit", decider


def test_a_slow_model_answers_flagged_reviews_within_the_budget(served):
    """Every call with a model 6x over budget is a REVIEW flagged fallback (step score.card_fraud), answered
    well before the model would finish; the log records the fallback; no APPROVE is unflagged."""
    stub, model, directory, decider = served
    score = model.score

    def slow(x):
        time.sleep(SLOW)
        return score(x)

    model.score = slow
    took: list[float] = []
    responses: list[pb.DecideResponse] = []
    try:
        for payment in card_payments(CALLS):
            start = time.monotonic()
            responses.append(stub.Decide(request("card_payment", payment, version="1"), timeout=5))
            took.append(time.monotonic() - start)
    finally:
        del model.score
    assert all(r.fallback and r.fallback_step == "score.card_fraud" and r.fallback_reason in ("budget", "busy") for r in responses)
    assert {r.action for r in responses} == {pb.REVIEW}
    assert all(r.reasons[0].code == "MODEL_UNAVAILABLE" for r in responses)
    assert max(took) < SLOW  # never waited for the slow model
    assert sorted(took)[len(took) // 2] < BUDGET + 0.1  # the median call ends near the budget
    records = [r for r in open_source(directory).decisions() if r["route"] != "shadow"]
    assert len(records) == CALLS
    assert all(r["fallback"][0]["step"] == "score.card_fraud" and r["action"] == "REVIEW" for r in records)
    counted = sum(decider.metrics.get("verdict_fallbacks", flow="card_payment", version="1", step="score.card_fraud", reason=why)
                  for why in ("budget", "busy"))
    assert counted == CALLS


def test_a_broken_model_answers_flagged_reviews_and_the_server_keeps_serving(served):
    """A model that raises gives flagged REVIEWs (reason error), not INTERNAL; once it works again,
    decisions are normal and unflagged."""
    stub, model, _, _ = served

    def broken(x):
        raise RuntimeError("onnxruntime: [ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION")

    model.score = broken
    try:
        broken_answers = [stub.Decide(request("card_payment", p, version="1"), timeout=5) for p in card_payments(3)]
    finally:
        del model.score
    healthy = [stub.Decide(request("card_payment", p, version="1"), timeout=5) for p in card_payments(3)]
    assert all(r.fallback and r.fallback_reason == "error" and r.action == pb.REVIEW for r in broken_answers)
    assert not any(r.fallback for r in healthy)
    assert all("fraud_score" in r.scores for r in healthy)
