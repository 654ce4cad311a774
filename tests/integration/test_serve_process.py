"""`verdict serve` as a real process: health, decisions, graceful SIGTERM, worker processes."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from engine.grpc.convert import decision_to_response
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.wire import decode_decide_request

from .helpers import ServeProcess, comparable, credit_applications, request, wait_serving

pytestmark = pytest.mark.integration


def test_serve_process_decides_and_stops_cleanly_on_sigterm(decider, tmp_path):
    """The subprocess reaches SERVING, decides like the in-process core, and exits 0 on SIGTERM."""
    server = ServeProcess(tmp_path, "--threads", "4")
    try:
        wait_serving(server.target)
        wait_serving(server.target, service="verdict.v1.DecisionService")
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            for application in credit_applications(20):
                message = request("credit_application", application)
                served = stub.Decide(message, timeout=10)
                local = decision_to_response(decider.decide("credit_application", _decoded(message)))
                assert comparable(served) == comparable(local)
        assert server.terminate_and_wait() == 0
    finally:
        server.kill()
    events = [e["event"] for e in server.events()]
    order = [events.index(name) for name in ("listening", "serving", "stopping", "stopped")]
    assert order == sorted(order) and events[-1] == "stopped"


def _decoded(message: pb.DecideRequest) -> dict:
    return decode_decide_request(message.SerializeToString()).input


def test_sigterm_drains_in_flight_calls_and_exits_0(tmp_path):
    """SIGTERM during a burst of 300 calls: calls keep completing after the signal, none fails
    except with CANCELLED (gRPC core cancels calls still queued in the transport, never handed to
    the server), and the process exits 0. That accepted calls always finish is proven with held
    calls in test_graceful_stop."""
    server = ServeProcess(tmp_path, "--threads", "1", "--grace-seconds", "30")
    try:
        wait_serving(server.target)
        applications = credit_applications(300)
        done_at: dict[int, float] = {}
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            stub.Decide(request("credit_application", applications[0]), timeout=10)  # connected and warm
            first = threading.Event()

            def on_done(index: int):
                def finished(_future: grpc.Future) -> None:
                    done_at[index] = time.monotonic()
                    first.set()

                return finished

            futures = []
            for i, application in enumerate(applications):
                future = stub.Decide.future(request("credit_application", application), timeout=60)
                future.add_done_callback(on_done(i))
                futures.append(future)
            assert first.wait(30)
            signalled_at = time.monotonic()
            code = server.terminate_and_wait(timeout=60)
            outcomes = [f.exception() for f in futures]
        assert code == 0
        codes = {f.code() for f, e in zip(futures, outcomes) if e is not None}
        assert codes <= {grpc.StatusCode.CANCELLED}, codes
        after = sum(outcomes[i] is None and t > signalled_at for i, t in done_at.items())
        assert after > 0, "no call completed after SIGTERM: the burst did not overlap the shutdown"
    finally:
        server.kill()


def test_workers_share_one_port_and_stop_together(tmp_path):
    """--workers 2 forks two serving processes on one port; SIGTERM stops both and exits 0."""
    server = ServeProcess(tmp_path, "--workers", "2", "--threads", "2")
    try:
        server.wait_for(lambda e: e["event"] == "serving", count=2)
        wait_serving(server.target)
        serving = [e for e in server.events() if e["event"] == "serving"]
        assert len({e["pid"] for e in serving}) == 2 and {e["port"] for e in serving} == {server.port}
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            for application in credit_applications(10):
                assert stub.Decide(request("credit_application", application), timeout=10).action != pb.ACTION_UNSPECIFIED
        assert server.terminate_and_wait() == 0
    finally:
        server.kill()
    assert sum(e["event"] == "stopped" for e in server.events()) == 2
