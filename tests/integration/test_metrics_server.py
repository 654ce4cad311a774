"""`verdict serve --metrics-port`: under load over real gRPC, /metrics agrees with the decision log."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

from .helpers import ServeProcess, credit_applications, request, verdict_command, wait_serving

pytestmark = pytest.mark.integration


def scrape(port: int) -> dict[str, Counter]:
    """Every sample of /metrics: sample name -> Counter of (sorted label items) -> value."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    out: dict[str, Counter] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, Counter())[tuple(sorted(sample.labels.items()))] += sample.value
    return out


def settled(port: int, answered: int, timeout: float = 10.0) -> dict[str, Counter]:
    """The scrape once it counts ``answered`` decisions: workers apply their counts every second."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(port)
        counted = [sum(samples.get(name, Counter()).values()) for name in ("verdict_decisions_total", "verdict_decision_duration_seconds_count")]
        if min(counted) >= answered or time.monotonic() > deadline:
            return samples
        time.sleep(0.2)


def load(target: str, applications: list[dict], concurrency: int, calls: int) -> int:
    """``calls`` Decide calls from ``concurrency`` threads, each thread on its own channel; how many answered."""

    def worker(offset: int) -> int:
        answered = 0
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            for i in range(offset, calls, concurrency):
                stub.Decide(request("credit_application", applications[i % len(applications)]), timeout=30)
                answered += 1
        return answered

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(pool.map(worker, range(concurrency)))


def logged(log_dir) -> list[dict]:
    """The served (non-shadow) decisions of the decision log, through `verdict audit show`."""
    shown = subprocess.run([*verdict_command(), "audit", "show", str(log_dir)], capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    return [r for r in map(json.loads, shown.stdout.splitlines()) if r["route"] != "shadow"]


@pytest.mark.parametrize("workers", [1, 2])
def test_metrics_agree_with_the_decision_log_under_load(tmp_path, workers):
    """Decisions by (flow, version, route, action), rule hits and reason codes on /metrics equal those of the decision log."""
    log_dir = tmp_path / "audit"
    server = ServeProcess(tmp_path, "--audit", str(log_dir), "--metrics-port", "0", "--workers", str(workers), "--threads", "4")
    try:
        exporter = server.wait_for(lambda e: e["event"] == "metrics_listening")
        server.wait_for(lambda e: e["event"] == "serving", count=workers)
        wait_serving(server.target)
        answered = load(server.target, credit_applications(200), concurrency=8, calls=400)
        samples = settled(int(exporter["port"]), answered)
        assert server.terminate_and_wait() == 0
    finally:
        server.kill()
    records = logged(log_dir)
    assert answered == len(records) == 400
    from_log = Counter((("action", r["action"]), ("flow", r["flow"]), ("route", r["route"]), ("version", r["version"])) for r in records)
    assert samples["verdict_decisions_total"] == from_log
    hits = Counter((("flow", r["flow"]), ("rule", f["id"]), ("version", r["version"])) for r in records for f in r["fired"])
    assert samples["verdict_rule_hits_total"] == hits and hits  # the data fire rules
    codes = Counter((("code", c["code"]), ("flow", r["flow"]), ("version", r["version"])) for r in records for c in r["reasons"])
    assert samples["verdict_reason_codes_total"] == codes
    assert sum(samples["verdict_decision_duration_seconds_count"].values()) == 400
    assert sum(samples["verdict_decision_log_commit_seconds_count"].values()) >= 1


def test_a_busy_metrics_port_stops_the_server_with_a_clear_error(tmp_path):
    """--metrics-port on a port already in use: metrics_bind_failed is logged and the server exits 1."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = ServeProcess(tmp_path, "--audit", "off", "--metrics-port", str(port))
        try:
            failed = server.wait_for(lambda e: e["event"] == "metrics_bind_failed")
            assert failed["port"] == port
            assert server.proc.wait(30) == 1
        finally:
            server.kill()
