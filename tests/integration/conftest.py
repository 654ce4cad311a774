"""An in-process server on a free loopback port with the bundled policies, and a stub for it."""

from __future__ import annotations

import grpc
import pytest

from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.server import start_server
from engine.runtime.service import load_decider
from engine.settings import Settings

from .helpers import ROOT

MAX_MESSAGE_BYTES = 64 * 1024


@pytest.fixture(scope="session")
def decider():
    """The real core, loaded from the bundled root."""
    return load_decider(ROOT)


@pytest.fixture(scope="session")
def server(decider):
    """The real gRPC server on 127.0.0.1:0, serving ``decider``."""
    settings = Settings.load(env={}, port=0, root=ROOT, max_message_bytes=MAX_MESSAGE_BYTES, threads=16)
    running = start_server(settings, decider)
    yield running
    running.stop(grace=1)


@pytest.fixture(scope="session")
def target(server):
    return f"127.0.0.1:{server.port}"


@pytest.fixture(scope="session")
def channel(target):
    with grpc.insecure_channel(target) as ch:
        yield ch


@pytest.fixture(scope="session")
def stub(channel):
    """The generated DecisionService stub on the in-process server."""
    return pb_grpc.DecisionServiceStub(channel)
