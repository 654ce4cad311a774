"""Custom lists on a real `verdict serve`: changes by CLI and RPC reach the next decisions without a restart.

A server on port 0 decides card_payment (data/card_payments.csv line 2, an everyday approved
payment). Adding its device with `verdict lists add` while the server runs makes the next Decide
DECLINED for BLOCKED_DEVICE within a second (the stated bound); removing it over the ListService RPC
approves again; a card added over the RPC declines with BLOCKED_CARD. Bad ListService input is
INVALID_ARGUMENT naming every bad field and the server keeps serving. No file the server or the
CLI wrote and nothing either printed holds the card number. After `kill -9` and a restart the
entries are still there (the store commits before it answers).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import grpc
import pytest

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.status import FIELD_ERRORS_KEY

from .helpers import ServeProcess, request, verdict_command, wait_serving

pytestmark = pytest.mark.integration

PAN = "4111111111111111"  # a standard test card number
# data/card_payments.csv line 2 (groceries, 7.94 EUR, chip, known device): approved without lists.
PAYMENT = {
    "amount": 7.94, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE", "card_country": "DE",
    "card_present": True, "entry_mode": "chip", "hour": 16, "customer_id": "C000747", "device_id": "D0007470",
    "card_number": PAN, "account_age_days": 2058, "txn_count_1h": 0, "txn_count_24h": 4, "amount_avg_30d": 41.04,
    "new_device": False, "distance_from_home_km": 7.1,
}
STALENESS_BOUND = 1.0  # seconds: docs/lists.md, engine/custom_lists/refresh.py


def _decide(stub: pb_grpc.DecisionServiceStub) -> pb.DecideResponse:
    return stub.Decide(request("card_payment", PAYMENT, version="1"), timeout=10)  # PAYMENT: version 1's inputs


def _until(stub: pb_grpc.DecisionServiceStub, action: int, timeout: float = 5.0) -> tuple[pb.DecideResponse, float]:
    """Decide until the action is ``action``; the last response and the seconds it took."""
    started = time.monotonic()
    while True:
        response = _decide(stub)
        if response.action == action or time.monotonic() - started > timeout:
            return response, time.monotonic() - started
        time.sleep(0.02)


def _cli(workdir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([*verdict_command(), "lists", *args], cwd=workdir, input=stdin, capture_output=True, text=True,
                          timeout=60, check=False)


def _files_hold(root: Path, needle: bytes) -> list[str]:
    return [str(p) for p in root.rglob("*") if p.is_file() and needle in p.read_bytes()]


def test_list_changes_reach_a_running_server_within_a_second(tmp_path):
    """CLI add -> DECLINED (BLOCKED_DEVICE) within 1 s; RPC add card -> BLOCKED_CARD; RPC removes -> APPROVED; no PAN anywhere."""
    server = ServeProcess(tmp_path)
    printed: list[str] = []
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            lists = pb_grpc.ListServiceStub(channel)
            assert _decide(stub).action == pb.APPROVE

            added = _cli(tmp_path, "add", "blocked_devices", "D0007470", "--actor", "alice", "--reason", "fraud ring")
            printed += [added.stdout, added.stderr]
            assert added.returncode == 0, added.stderr
            response, took = _until(stub, pb.DECLINE)
            assert response.action == pb.DECLINE and [r.code for r in response.reasons] == ["BLOCKED_DEVICE"]
            assert took < STALENESS_BOUND, f"the change took {took:.2f}s to be seen"

            lists.RemoveListEntry(pb.ListEntryChange(list="blocked_devices", value="D0007470", actor="bob", reason="cleared"))
            assert _decide(stub).action == pb.APPROVE  # this process's own change: visible before the RPC answers

            change = lists.AddListEntry(pb.ListEntryChange(list="blocked_cards", value=PAN, actor="bob", reason="stolen"))
            assert change.action == "add" and PAN not in change.record_json
            response = _decide(stub)
            assert response.action == pb.DECLINE and [r.code for r in response.reasons] == ["BLOCKED_CARD"]
            shown = lists.GetList(pb.GetListRequest(list="blocked_cards")).entries
            assert [e.entry for e in shown] == ["411111******1111"]

            with pytest.raises(grpc.RpcError) as caught:
                lists.AddListEntry(pb.ListEntryChange(list="blocked_card", value=PAN))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            trailer = dict(caught.value.trailing_metadata())[FIELD_ERRORS_KEY]
            assert {e["field"] for e in json.loads(trailer)} == {"list", "actor", "reason"}
            with pytest.raises(grpc.RpcError) as caught:
                lists.AddListEntry(pb.ListEntryChange(list="blocked_card", value="", actor="a", reason="r", note="x" * 2000,
                                                      expires_at_unix_ms=-1))
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            fields = {e["field"] for e in json.loads(dict(caught.value.trailing_metadata())[FIELD_ERRORS_KEY])}
            assert fields == {"list", "value", "note", "expires_at_unix_ms"}
            assert "blocked_cards" in caught.value.details()  # did you mean

            lists.RemoveListEntry(pb.ListEntryChange(list="blocked_cards", value="4111-1111-1111-1111", actor="bob", reason="found"))
            assert _decide(stub).action == pb.APPROVE

        history = _cli(tmp_path, "history")
        printed += [history.stdout, history.stderr]
        assert history.returncode == 0, history.stderr
        actions = [(r["list"], r["action"], r["actor"]) for r in json.loads(history.stdout)]
        assert actions == [("blocked_devices", "add", "alice"), ("blocked_devices", "remove", "bob"),
                           ("blocked_cards", "add", "bob"), ("blocked_cards", "remove", "bob")]
    finally:
        assert server.terminate_and_wait() == 0
    printed.append("".join(server.lines))
    assert not any(PAN in text for text in printed)
    assert _files_hold(tmp_path, PAN.encode()) == []


def test_entries_survive_kill_9_and_a_restart(tmp_path):
    """An entry added over RPC is still in the list after the server is killed with SIGKILL and restarted."""
    server = ServeProcess(tmp_path)
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            pb_grpc.ListServiceStub(channel).AddListEntry(
                pb.ListEntryChange(list="blocked_devices", value="D0007470", actor="alice", reason="fraud ring"))
    finally:
        server.kill()
    again = ServeProcess(tmp_path)
    try:
        wait_serving(again.target)
        with grpc.insecure_channel(again.target) as channel:
            response = _decide(pb_grpc.DecisionServiceStub(channel))
        assert response.action == pb.DECLINE and [r.code for r in response.reasons] == ["BLOCKED_DEVICE"]
    finally:
        assert again.terminate_and_wait() == 0


def test_every_worker_sees_a_change_within_a_second(tmp_path):
    """With --workers 2, an entry added through one worker declines on fresh connections to any worker within 1 s."""
    server = ServeProcess(tmp_path, "--workers", "2")
    try:
        wait_serving(server.target)
        server.wait_for(lambda e: e["event"] == "serving", count=2)
        with grpc.insecure_channel(server.target) as channel:
            pb_grpc.ListServiceStub(channel).AddListEntry(
                pb.ListEntryChange(list="blocked_devices", value="D0007470", actor="alice", reason="fraud ring"))
        slowest = 0.0
        for _ in range(12):  # each channel is a new connection, spread over the workers by the kernel
            with grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                response, took = _until(pb_grpc.DecisionServiceStub(channel), pb.DECLINE)
                assert response.action == pb.DECLINE
                slowest = max(slowest, took)
        assert slowest < STALENESS_BOUND
    finally:
        assert server.terminate_and_wait() == 0
    refreshed = [e for e in server.events() if e["event"] == "lists_refreshed" and e.get("generation") == 1]
    assert len({e["pid"] for e in refreshed}) == 2, "both workers took the change"


def test_a_server_without_a_store_refuses_list_changes_and_keeps_serving(tmp_path):
    """--lists off: ListService answers FAILED_PRECONDITION, every list is empty, Decide still answers."""
    server = ServeProcess(tmp_path, "--lists", "off")
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            with pytest.raises(grpc.RpcError) as caught:
                pb_grpc.ListServiceStub(channel).AddListEntry(
                    pb.ListEntryChange(list="blocked_devices", value="D0007470", actor="a", reason="r"))
            assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert _decide(pb_grpc.DecisionServiceStub(channel)).action == pb.APPROVE
    finally:
        assert server.terminate_and_wait() == 0
    assert not (tmp_path / "audit" / "custom_lists.sqlite").exists()
