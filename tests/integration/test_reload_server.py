"""Hot reload, routing and policy status through the real gRPC server and `verdict serve`."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.server import start_server
from engine.policy.loader import load
from engine.runtime.reload import Reloader
from engine.runtime.service import load_decider
from engine.settings import Settings
from tests.unit.policy_roots import project_copy, routed_copy

from .helpers import ServeProcess, credit_applications, live_card_payments, request, wait_serving

pytestmark = pytest.mark.integration

FRAUD_SCORE = "rules/fraud/score.yaml"


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def test_status_rpc_reports_flows_routing_and_revisions(stub, channel, decider):
    """GetStatus lists each flow's versions, live version, (absent) challenger and shadows, and revisions."""
    status = pb_grpc.PolicyServiceStub(channel).GetStatus(pb.StatusRequest(), timeout=10)
    assert status.revision == decider.policies.revision
    credit = {f.name: f for f in status.flows}["credit_application"]
    assert list(credit.versions) == ["1", "2", "3"] and credit.live_version == "3"
    assert (credit.challenger_version, credit.challenger_share, credit.challenger_key) == ("", 0.0, "")
    assert list(credit.shadow_versions) == []
    assert credit.revisions["3"] == decider.policies.flows["credit_application"].versions["3"].revision


def test_challenger_and_pinned_routes_over_grpc(tmp_path):
    """The response says which version decided and how: live, challenger (by customer) or pinned."""
    root = routed_copy(tmp_path / "root")
    decider = load_decider(root)
    running = start_server(Settings.load(env={}, port=0, root=root, threads=4), decider)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            application = credit_applications(1)[0]
            routes = set()
            for i in range(60):
                response = stub.Decide(request("credit_application", {**application, "customer_id": f"C{i:05d}"}), timeout=10)
                routes.add((response.version, response.route))
            assert routes == {("3", "live"), ("4", "challenger")}
            pinned = stub.Decide(request("credit_application", application, version="2"), timeout=10)
            assert (pinned.version, pinned.route) == ("2", "pinned")
    finally:
        running.stop(grace=1)
        decider.close()


def test_reload_storm_through_grpc_under_load(tmp_path):  # noqa: PLR0915 (one scenario read top to bottom)
    """Clients decide over gRPC while good and broken changes (garbage, a tampered model, a changed
    released file, a failing test) are reloaded: 0 failed calls, every decision from a good state,
    health SERVING throughout, and the status RPC names the file of the last refusal."""
    root = project_copy(tmp_path / "root")
    score = root / FRAUD_SCORE
    original = score.read_text()
    good_variant = original.replace("fraud_score >= 0.3", "fraud_score >= 0.31")
    good: set[str] = set()
    for text in (original, good_variant):
        score.write_text(text)
        policies = load(root).policies
        good |= {f.revision for entry in policies.flows.values() for f in entry.versions.values()}
    score.write_text(original)

    decider = load_decider(root)
    settings = Settings.load(env={}, port=0, root=root, threads=8)
    running = start_server(settings, decider)
    reloader = Reloader(root, decider)
    running.policy_status.attach(decider, reloader)
    target = f"127.0.0.1:{running.port}"

    model = root / "model_artifacts/card_fraud/1/model.onnx"
    model_bytes = model.read_bytes()
    released = root / "rules/credit/eligibility.yaml"
    released_text = released.read_text()
    changes = [
        ("good", lambda: score.write_text(good_variant)),
        ("garbage", lambda: score.write_text(good_variant + "\n%%% not yaml [\n")),
        ("good", lambda: score.write_text(original)),
        ("tampered model", lambda: _flip_byte(model)),
        ("good", lambda: model.write_bytes(model_bytes)),
        ("released file", lambda: released.write_text(released_text + "# a comment is a change too\n")),
        ("good", lambda: released.write_text(released_text)),
        ("failing test", lambda: score.write_text(original.replace("fraud_score >= 0.8", "fraud_score >= 0.99"))),
        ("good", lambda: score.write_text(good_variant)),
    ]

    stop = threading.Event()
    errors: list[str] = []
    revisions: set[str] = set()
    calls = [0]
    lock = threading.Lock()
    credit = credit_applications(40)
    cards = live_card_payments(40)

    def client(n: int) -> None:
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            i = n
            while not stop.is_set():
                i += 1
                flow, data = ("card_payment", cards[i % 40]) if i % 2 else ("credit_application", {**credit[i % 40], "customer_id": f"C{i}"})
                try:
                    response = stub.Decide(request(flow, data), timeout=30)
                    with lock:
                        revisions.add(response.revision)
                        calls[0] += 1
                except grpc.RpcError as exc:
                    errors.append(f"{exc.code()}: {exc.details()}")

    threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    outcomes: list[tuple[str, bool]] = []
    refusals = {}
    try:
        with grpc.insecure_channel(target) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            policy = pb_grpc.PolicyServiceStub(channel)
            for kind, change in changes:
                change()
                status = reloader.reload("watch")
                outcomes.append((kind, status.ok))
                assert health.Check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
                if not status.ok:
                    last = policy.GetStatus(pb.StatusRequest(), timeout=5).last_reload
                    refusals[kind] = [(p.path, p.code) for p in last.problems] + list(last.failed_tests)
    finally:
        stop.set()
        for t in threads:
            t.join()
        running.stop(grace=1)
        decider.close()
    assert errors == []
    assert calls[0] > 50
    assert outcomes == [(kind, kind == "good") for kind, _ in changes]
    assert revisions <= good
    assert any(path == FRAUD_SCORE for path, _ in refusals["garbage"])
    assert any(path.startswith("model_artifacts/card_fraud/1") for path, _ in refusals["tampered model"])
    assert ("rules/credit/eligibility.yaml", "released_version_changed") in refusals["released file"]
    assert any("a very high fraud score is declined" in str(item) for item in refusals["failing test"])


def test_verdict_serve_picks_up_changes_by_itself_and_on_sighup(tmp_path):
    """`verdict serve` activates a saved change without a restart, refuses a broken one (naming the
    file in its log and status), and reloads on SIGHUP."""
    root = project_copy(tmp_path / "root")
    server = ServeProcess(tmp_path, "--root", str(root), "--threads", "2", "--audit", "off", "--reload-interval", "0.2")
    try:
        wait_serving(server.target)
        server.wait_for(lambda e: e["event"] == "reload_ok" and e["trigger"] == "start")  # self-test at start
        payment = live_card_payments(1)[0]
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            status = pb_grpc.PolicyServiceStub(channel)
            before = stub.Decide(request("card_payment", payment), timeout=10).revision

            score = root / FRAUD_SCORE
            score.write_text(score.read_text().replace("fraud_score >= 0.3", "fraud_score >= 0.31"))
            server.wait_for(lambda e: e["event"] == "reload_ok" and e["trigger"] == "watch")
            changed = stub.Decide(request("card_payment", payment), timeout=10).revision
            assert changed != before

            with score.open("a") as f:
                f.write("  - id: FS-003\n    when: fraud_score >>> 2\n    action: DECLINE\n    reason: HIGH_FRAUD_SCORE\n")
            refused = server.wait_for(lambda e: e["event"] == "reload_refused")
            assert any(p.startswith(f"{FRAUD_SCORE}:") for p in refused["problems"])
            assert stub.Decide(request("card_payment", payment), timeout=10).revision == changed
            last = status.GetStatus(pb.StatusRequest(), timeout=10).last_reload
            assert not last.ok and last.problems[0].path == FRAUD_SCORE and last.problems[0].line > 0

            score.write_text(score.read_text().split("  - id: FS-003")[0])
            server.wait_for(lambda e: e["event"] == "reload_ok", count=3)
            os.kill(server.proc.pid, signal.SIGHUP)
            server.wait_for(lambda e: e["event"] == "reload_ok" and e["trigger"] == "sighup")
            assert status.GetStatus(pb.StatusRequest(), timeout=10).metrics["reloads{result=refused,trigger=watch}"] >= 1
        assert server.terminate_and_wait() == 0
    finally:
        server.kill()


def test_shadow_outcomes_of_every_request_reach_the_decision_log(tmp_path):
    """Concurrent clients call `verdict serve` (routing: live 3, challenger 4 for 10% of customers,
    shadow 4): every request version 3 decided (live, pinned, or without a customer id) has exactly
    one shadow record of version 4 in the log, under its request id; the challenger's have none;
    the counters agree."""
    from engine.audit.source import open_source

    log_dir = tmp_path / "audit"
    root = routed_copy(tmp_path / "root")
    server = ServeProcess(tmp_path, "--root", str(root), "--audit", str(log_dir), "--threads", "4", "--reload-interval", "0")
    applications = credit_applications(50)
    answered: dict[str, tuple[str, str]] = {}
    errors: list[str] = []
    lock = threading.Lock()
    try:
        wait_serving(server.target)

        def client(n: int) -> None:
            with grpc.insecure_channel(server.target) as channel:
                stub = pb_grpc.DecisionServiceStub(channel)
                for i in range(50):
                    data = dict(applications[i])
                    if i % 10:  # one request in ten carries no customer id: the live version decides
                        data["customer_id"] = f"C{n}-{i}"
                    pin = {"version": "3"} if i % 25 == 7 else {}
                    try:
                        response = stub.Decide(request("credit_application", data, request_id=f"r{n}-{i}", **pin), timeout=30)
                    except grpc.RpcError as exc:
                        errors.append(f"{exc.code()}: {exc.details()}")
                        continue
                    with lock:
                        answered[response.request_id] = (response.version, response.route)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == [] and len(answered) == 200
        routes = {route for _, route in answered.values()}
        assert routes == {"live", "challenger", "pinned"}
        by_v1 = {rid for rid, (version, _) in answered.items() if version == "3"}
        with grpc.insecure_channel(server.target) as channel:
            status = pb_grpc.PolicyServiceStub(channel)
            deadline = time.monotonic() + 30
            while True:
                counted = sum(v for k, v in status.GetStatus(pb.StatusRequest(), timeout=10).metrics.items() if k.startswith("shadow_decisions"))
                if counted >= len(by_v1) or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            metrics = status.GetStatus(pb.StatusRequest(), timeout=10).metrics
        assert counted == len(by_v1)
        assert not any(k.startswith("shadow_dropped") for k in metrics)
        assert server.terminate_and_wait() == 0
    finally:
        server.kill()
    source = open_source(log_dir)
    assert source.verify().ok
    records = list(source.decisions())
    shadows = sorted((r["request_id"], r["version"]) for r in records if r["route"] == "shadow")
    assert shadows == sorted((rid, "4") for rid in by_v1)
    assert sorted(r["request_id"] for r in records if r["route"] != "shadow") == sorted(answered)


def _health(channel, service: str) -> int:
    return health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status


def test_a_server_started_with_one_broken_flow_serves_the_others_and_reports_it(tmp_path, capsys):
    """`verdict serve` on a root where card_payment is broken: it starts, credit decides, card_payment answers
    FAILED_PRECONDITION naming the file, health and status say so per flow; fixing the file brings it in; a later
    typo in credit keeps credit on its last good version while SERVING."""
    from engine.cli import main
    from engine.grpc.server import flow_health_name

    root = project_copy(tmp_path / "root")
    score = root / FRAUD_SCORE
    good_score = score.read_text()
    score.write_text(good_score.replace("fraud_score >= 0.3", "fraud_score >>> 0.3"))
    server = ServeProcess(tmp_path, "--root", str(root), "--threads", "2", "--audit", "off", "--reload-interval", "0.2")
    try:
        wait_serving(server.target)
        started = server.wait_for(lambda e: e["event"] == "serving")
        assert started["held_back"] == {"card_payment": "unavailable"} and started["root"] == str(root.resolve())
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            status = pb_grpc.PolicyServiceStub(channel)
            assert _health(channel, "") == health_pb2.HealthCheckResponse.SERVING
            assert _health(channel, flow_health_name("credit_application")) == health_pb2.HealthCheckResponse.SERVING
            assert _health(channel, flow_health_name("card_payment")) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert stub.Decide(request("credit_application", credit_applications(1)[0]), timeout=10).action
            with pytest.raises(grpc.RpcError) as refused:
                stub.Decide(request("card_payment", live_card_payments(1)[0]), timeout=10)
            assert refused.value.code() is grpc.StatusCode.FAILED_PRECONDITION
            assert "card_payment" in refused.value.details() and f"{FRAUD_SCORE}:" in refused.value.details()
            flows = {f.name: f for f in status.GetStatus(pb.StatusRequest(), timeout=10).flows}
            assert (flows["card_payment"].state, flows["credit_application"].state) == ("unavailable", "ok")
            assert flows["card_payment"].problems[0].path == FRAUD_SCORE and flows["card_payment"].problems[0].line > 0
            assert main(["status", "--target", server.target]) == 1
            assert "card_payment: [UNAVAILABLE" in capsys.readouterr().out

            score.write_text(good_score)
            server.wait_for(lambda e: e["event"] == "reload_ok" and e["trigger"] == "watch")
            assert _health(channel, flow_health_name("card_payment")) == health_pb2.HealthCheckResponse.SERVING
            assert stub.Decide(request("card_payment", live_card_payments(1)[0]), timeout=10).action
            assert main(["status", "--target", server.target]) == 0

            credit_before = stub.Decide(request("credit_application", credit_applications(1)[0]), timeout=10).revision
            rules = root / "rules/credit/eligibility.yaml"
            rules.write_text(rules.read_text().replace("when: ", "when: >>> ", 1))
            refused_event = server.wait_for(lambda e: e["event"] == "reload_refused" and e["trigger"] == "watch")
            assert refused_event["held_back"] == {"credit_application": "stale"}
            assert _health(channel, flow_health_name("credit_application")) == health_pb2.HealthCheckResponse.SERVING
            assert stub.Decide(request("credit_application", credit_applications(1)[0]), timeout=10).revision == credit_before
            assert main(["status", "--target", server.target]) == 1
            assert "credit_application: live" in (out := capsys.readouterr().out) and "[STALE" in out
        assert server.terminate_and_wait() == 0
    finally:
        server.kill()


def test_a_routing_only_change_is_visible_in_status(tmp_path):
    """Changing only routing.yaml changes the state revision and the flow's routing revision that GetStatus reports."""
    root = routed_copy(tmp_path / "root")
    decider = load_decider(root)
    reloader = Reloader(root, decider)
    running = start_server(Settings.load(env={}, port=0, root=root, threads=2), decider)
    running.policy_status.attach(decider, reloader)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            status = pb_grpc.PolicyServiceStub(channel)
            before = status.GetStatus(pb.StatusRequest(), timeout=10)
            routing = root / "policies/credit_application/routing.yaml"
            routing.write_text(routing.read_text().replace("share: 0.1", "share: 0.2"))
            assert reloader.reload().ok
            after = status.GetStatus(pb.StatusRequest(), timeout=10)
        credit = {f.name: f for f in after.flows}["credit_application"]
        old = {f.name: f for f in before.flows}["credit_application"]
        assert after.revision != before.revision and credit.routing_revision != old.routing_revision
        assert credit.challenger_share == 0.2 and after.root == str(root.resolve())
    finally:
        running.stop(grace=1)
