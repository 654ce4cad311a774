"""A graceful stop lets calls the server has accepted finish, and refuses new ones."""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.server import start_server
from engine.settings import Settings
from tests.unit.grpc_fakes import FakeDecider

from .helpers import request

pytestmark = pytest.mark.integration


class GatedDecider(FakeDecider):
    """Holds every decision until the test opens the gate; counts the calls that arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.arrived = threading.Semaphore(0)

    def decide(self, flow, input, *, version="", request_id="", caller="", deadline=None):
        self.arrived.release()
        assert self.gate.wait(30)
        return super().decide(flow, input, version=version, request_id=request_id, deadline=deadline)


def test_stop_finishes_accepted_calls_and_refuses_new_ones():
    """Four calls held inside the core when stop begins all complete OK; new calls never reach the
    core; health turns NOT_SERVING."""
    core = GatedDecider()
    running = start_server(Settings.load(env={}, port=0, threads=8), core)
    target = f"127.0.0.1:{running.port}"
    stopper = threading.Thread(target=running.stop, args=(30,))
    try:
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            futures = [stub.Decide.future(request("credit_application", {"age": 20.0 + i}), timeout=30) for i in range(4)]
            for _ in futures:
                assert core.arrived.acquire(timeout=30)  # all four are inside the core now
            stopper.start()
            with pytest.raises(grpc.RpcError) as refused:
                stub.Decide(request("credit_application", {"age": 40.0}), timeout=5)
            # Refused by the stopping server (UNAVAILABLE), or cancelled by gRPC core before it was
            # ever handed to the servicer (CANCELLED); either way it never reached the core:
            assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
            assert not core.arrived.acquire(timeout=0)
            check = running.health.Check(health_pb2.HealthCheckRequest(), None)
            assert check.status == health_pb2.HealthCheckResponse.NOT_SERVING
            assert stopper.is_alive()  # still waiting for the held calls
            core.gate.set()
            responses = [f.result(timeout=30) for f in futures]
            stopper.join(30)
    finally:
        core.gate.set()
        if not stopper.is_alive():
            running.server.stop(None)
    assert not stopper.is_alive()
    assert [r.action for r in responses] == [pb.APPROVE] * 4
