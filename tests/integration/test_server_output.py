"""What a running server writes outside its answers: only JSON lines on stderr, nothing under ~/.cache."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import grpc

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

from .helpers import ServeProcess, request, wait_serving

GOOD = {"seniority": 1, "home": "rent", "time": 60, "age": 22, "marital": "single", "records": True,
        "job": "partime", "expenses": 60, "income": 90, "assets": 0, "debt": 0, "amount": 1400, "price": 1500}

# Loaded by the server's interpreter at start-up (sitecustomize): once the server logs, a "library"
# warns through Python's warnings and logs through the standard library's logging, as grpc,
# onnxruntime or numpy do.
LIBRARY_NOISE = textwrap.dedent('''
    import logging, threading, warnings

    def _noise():
        warnings.warn("a library's deprecation notice", DeprecationWarning, stacklevel=1)
        warnings.warn("a library's user warning", UserWarning, stacklevel=1)
        logging.getLogger("somelib").warning("plain-text %s from a library logger", "warning")

    threading.Timer(6.0, _noise).start()
''')


def test_every_stderr_line_is_json_and_nothing_is_written_under_home(tmp_path, monkeypatch):
    """A real server, with library warnings and log records fired while it serves, writes only JSON lines; onnxruntime writes nothing under $HOME."""
    home, work, site = tmp_path / "home", tmp_path / "work", tmp_path / "site"
    for d in (home, work, site):
        d.mkdir()
    (site / "sitecustomize.py").write_text(LIBRARY_NOISE)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("ORT_DISABLE_TELEMETRY", raising=False)  # the server must switch it off itself
    monkeypatch.setenv("PYTHONWARNINGS", "always")
    monkeypatch.setenv("PYTHONPATH", str(site))
    server = ServeProcess(work, "--audit", "off", "--reload-interval", "0")
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            assert stub.Decide(request("credit_application", GOOD), timeout=10).action
            try:
                stub.Decide(request("credit_application", {**GOOD, "x": 1}), timeout=10)
            except grpc.RpcError as exc:
                assert exc.code() is grpc.StatusCode.INVALID_ARGUMENT
            stub.ListFlows(pb.ListFlowsRequest(), timeout=10)
        server.wait_for(lambda e: e.get("logger") == "somelib", timeout=30)
    finally:
        assert server.terminate_and_wait() == 0
    lines = [line for line in server.lines if line.strip()]
    records = [json.loads(line) for line in lines]  # every line parses, or this fails naming it
    loggers = {r.get("logger") for r in records}
    assert {"py.warnings", "somelib"} <= loggers
    assert all({"event", "level", "timestamp"} <= set(r) for r in records)
    written = [p for p in Path(home).rglob("*") if p.is_file()]
    assert not written, f"written under HOME: {written}"
