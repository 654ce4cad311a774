"""The Ping rpc, the transport floor the benchmarks compare Decide with (case grpc_echo)."""

from __future__ import annotations

import grpc

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.server import start_server
from engine.settings import Settings


def test_ping_echoes_the_payload_before_policies_load():
    """A server with no policies yet answers Ping with the exact payload, through the generated stub."""
    running = start_server(Settings.load(env={}, port=0))
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            payload = bytes(range(256)) * 3
            assert stub.Ping(pb.PingRequest(payload=payload), timeout=5).payload == payload
            assert stub.Ping(pb.PingRequest(), timeout=5).payload == b""
    finally:
        running.stop(0)
