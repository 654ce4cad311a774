"""Stateful features over gRPC: velocity computed by the server, kept across kill -9 and across workers."""

from __future__ import annotations

import grpc
import pytest

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

from .helpers import ServeProcess, request, wait_serving

pytestmark = pytest.mark.integration

PAYMENT = {
    "amount": 20.0, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE", "card_country": "DE",
    "card_present": True, "entry_mode": "chip", "hour": 14, "device_id": "D-1", "card_number": "4111111111111111",
    "account_age_days": 400,
}


def _pay(target: str, customer: str) -> tuple[str, list[str]]:
    """One decision of the live card_payment (version 3) on a fresh channel (so worker processes take turns):
    action, reason codes."""
    with grpc.insecure_channel(target) as channel:
        reply = pb_grpc.DecisionServiceStub(channel).Decide(request("card_payment", {**PAYMENT, "customer_id": customer}), timeout=10)
    assert (reply.version, reply.route) == ("3", "live"), (reply.version, reply.route)
    return reply.action, [r.code for r in reply.reasons]


def _action_names(target: str, customer: str, n: int) -> list[str]:
    out = []
    for _ in range(n):
        action, reasons = _pay(target, customer)
        name = pb.Action.Name(action)
        out.append(name + ("+VELOCITY" if "VELOCITY" in reasons else ""))
    return out


def test_sixth_payment_in_an_hour_is_declined_and_the_count_survives_kill_9(tmp_path):
    """A new customer's 6th payment within the hour is DECLINED for VELOCITY with no counter sent; after
    kill -9 and a restart on the same state file the customer's count is still there (7th declined too),
    while a customer new after the restart is approved."""
    server = ServeProcess(tmp_path, "--threads", "2")
    try:
        wait_serving(server.target)
        seen = _action_names(server.target, "C-velocity", 6)
    finally:
        server.kill()  # SIGKILL: no shutdown, no checkpoint
    assert [s.endswith("+VELOCITY") for s in seen] == [False] * 5 + [True], seen
    assert seen[5].startswith("DECLINE"), seen
    again = ServeProcess(tmp_path, "--threads", "2")
    try:
        wait_serving(again.target)
        after = _action_names(again.target, "C-velocity", 1)
        fresh = _action_names(again.target, "C-fresh", 1)
    finally:
        again.kill()
    assert after[0] == "DECLINE+VELOCITY", after
    assert fresh[0] == "APPROVE", fresh


def test_workers_share_one_exact_count(tmp_path):
    """Two worker processes on one state file: payments spread over fresh connections count exactly once
    each (the 6th and later declined for VELOCITY, the first five approved)."""
    server = ServeProcess(tmp_path, "--workers", "2", "--threads", "2")
    try:
        wait_serving(server.target)
        seen = _action_names(server.target, "C-workers", 8)
        assert server.terminate_and_wait() == 0  # SIGTERM: the parent stops its workers too
    finally:
        server.kill()
    assert seen == ["APPROVE"] * 5 + ["DECLINE+VELOCITY"] * 3, seen
