"""Shared helpers of the integration tests: real inputs from data/, response comparison, a server."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine.datasets import read_card_payments, read_credit_applications
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from tests.unit.audit_helpers import V1_COUNTERS

ROOT = Path(__file__).resolve().parents[2]
CREDIT_CSV = ROOT / "data" / "credit_data.csv"
CARD_CSV = ROOT / "data" / "card_payments.csv"


def credit_applications(limit: int | None = None) -> list[dict[str, Any]]:
    """Applications from data/credit_data.csv as flow inputs: snake_case, missing cells omitted."""
    return read_credit_applications(CREDIT_CSV, limit)


def card_payments(limit: int) -> list[dict[str, Any]]:
    """Transactions from data/card_payments.csv as card_payment version 1 inputs (label dropped; with
    the counters: pin version "1", or use live_card_payments for versions 2 and 3)."""
    return read_card_payments(CARD_CSV, limit)


def live_card_payments(limit: int) -> list[dict[str, Any]]:
    """Transactions from data/card_payments.csv as inputs of card_payment versions 2 and 3 (live): without the counters."""
    return [{k: v for k, v in row.items() if k not in V1_COUNTERS} for row in card_payments(limit)]


def request(flow: str, data: dict[str, Any], **fields: str) -> pb.DecideRequest:
    """A DecideRequest for ``flow`` with ``data`` as its input."""
    message = pb.DecideRequest(flow=flow, **fields)
    message.input.update(data)
    return message


def comparable(response: pb.DecideResponse) -> pb.DecideResponse:
    """The response without what differs between two decisions of the same input (id, timing)."""
    copy = pb.DecideResponse()
    copy.CopyFrom(response)
    copy.ClearField("decision_id")
    copy.ClearField("eval_us")
    return copy


def wait_serving(target: str, timeout: float = 60.0, service: str = "") -> None:
    """Block until the server at ``target`` reports SERVING on the standard health service."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                status = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status
                if status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{target} not SERVING after {timeout}s")
            time.sleep(0.05)


@contextlib.contextmanager
def logged_server(directory: Path, policies: Any) -> Iterator[tuple[grpc.Channel, Any]]:
    """A real server on 127.0.0.1:0 serving ``policies`` with the file decision log in ``directory``:
    yields (channel to it, the Decider); stops both after."""
    from engine.audit.segments import FileStore
    from engine.audit.sink import AuditSink
    from engine.audit.writer import GroupCommitWriter
    from engine.grpc.server import start_server
    from engine.runtime.privacy import HashKey
    from engine.runtime.service import Decider
    from engine.settings import Settings

    sink = AuditSink(GroupCommitWriter(FileStore(directory)), HashKey(b"k" * 32))
    decider = Decider(policies, sink=sink)
    running = start_server(Settings.load(env={}, port=0, root=ROOT, threads=8), decider)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield channel, decider
    finally:
        running.stop(grace=1)
        decider.close()
        sink.close()


def verdict_command() -> list[str]:
    """The installed ``verdict`` console script, or the same entry point through -m."""
    script = Path(sys.executable).parent / "verdict"
    return [str(script)] if script.exists() else [sys.executable, "-m", "engine.cli"]


class ServeProcess:
    """``verdict serve`` in a subprocess on a free port; a thread collects its JSON log lines.

    It runs in ``workdir`` so that whatever it writes relative to its working directory (the
    decision log) stays out of the checkout and away from other test runs.
    """

    def __init__(self, workdir: Path, *args: str) -> None:
        pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, VERDICT_LOG_FORMAT="json", PYTHONUNBUFFERED="1", PYTHONPATH=pythonpath)
        self.proc = subprocess.Popen(
            [*verdict_command(), "serve", "--port", "0", "--root", str(ROOT), *args],
            cwd=workdir,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        started = self.wait_for(lambda e: e["event"] in ("listening", "workers_started"))
        self.port = int(started["port"])
        self.target = f"127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def events(self) -> list[dict[str, Any]]:
        """The JSON log records so far."""
        with self._changed:
            return [json.loads(line) for line in self.lines if line.startswith("{")]

    def wait_for(self, match: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 60.0) -> dict[str, Any]:
        """Block until ``count`` log records match; the last of them."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [e for e in self.events() if match(e)]
                if len(found) >= count:
                    return found[count - 1]
                if not self._reader.is_alive() or time.monotonic() > deadline:
                    raise RuntimeError("server log never showed the expected event:\n" + "".join(self.lines))
                self._changed.wait(0.5)

    def terminate_and_wait(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code once the process and its log have ended."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._reader.join(timeout)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(10)


def service_address(variable: str, what: str) -> str:
    """The address of a throwaway service scripts/test_services.sh started (``variable``): required under
    CI (a failure saying so), a skip with the reason elsewhere."""
    value = os.environ.get(variable)
    if not value:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{variable} is not set: scripts/test_services.sh must start {what} in CI")
        pytest.skip(f"no {what}: run through scripts/test.sh (it starts one) or set {variable}")
    return value
