"""`verdict serve` as a process: loopback and a warning without credentials, refusals at start, TLS from the flags."""

from __future__ import annotations

import os
import subprocess

import grpc
import pytest

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from tests.pki import make_pki

from .helpers import ROOT, ServeProcess, credit_applications, request, verdict_command, wait_serving

pytestmark = pytest.mark.integration


def _serve_exits(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    env.pop("VERDICT_INSECURE", None)
    return subprocess.run(
        [*verdict_command(), "serve", "--port", "0", "--root", str(ROOT), "--audit", "off", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env,
    )  # fmt: skip


def test_without_credentials_the_server_binds_loopback_and_says_it_is_unauthenticated(tmp_path):
    """The default server listens on 127.0.0.1 and logs an 'unauthenticated' warning at start."""
    server = ServeProcess(tmp_path, "--audit", "off")
    try:
        listening = server.wait_for(lambda e: e["event"] == "listening")
        assert listening["host"] == "127.0.0.1"
        warning = server.wait_for(lambda e: e["event"] == "unauthenticated")
        assert warning["level"] == "warning" and "not authenticated" in warning["detail"]
        assert server.wait_for(lambda e: e["event"] == "security")["tls"] is False
    finally:
        assert server.terminate_and_wait() == 0


def test_a_public_host_without_tls_is_refused_before_anything_starts(tmp_path):
    """`serve --host 0.0.0.0` without TLS exits 2 naming --insecure; it never binds."""
    result = _serve_exits(tmp_path, "--host", "0.0.0.0")
    assert result.returncode == 2
    assert "is not a loopback address" in result.stderr and "--insecure" in result.stderr
    assert '"event": "listening"' not in result.stderr


def test_broken_security_files_are_all_named_at_start(tmp_path):
    """A key that is not PEM and an authz file with a bad permission: exit 2, each problem with file (and line)."""
    pki = make_pki(tmp_path / "pki")
    (tmp_path / "bad.key").write_text("not a key\n")
    (tmp_path / "authz.yaml").write_text("callers:\n  alice:\n    admin: [shutdown]\n")
    result = _serve_exits(
        tmp_path, "--tls-cert", str(pki.path("server.pem")), "--tls-key", str(tmp_path / "bad.key"),
        "--tls-client-ca", str(pki.path("ca.pem")), "--authz", str(tmp_path / "authz.yaml"),
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert "bad.key" in result.stderr and "not PEM" in result.stderr
    assert "authz.yaml:3" in result.stderr


def test_serve_flags_give_mutual_tls_and_authorization(tmp_path):
    """`serve --tls-cert --tls-key --tls-client-ca --authz`: alice decides, bob may not; the start log says mutual TLS and names bob's unknown flow."""
    pki = make_pki(tmp_path / "pki")
    authz = tmp_path / "authz.yaml"
    authz.write_text("callers:\n  alice:\n    decide: [credit_application]\n  bob:\n    decide: [mortgage]\n")
    server = ServeProcess(
        tmp_path, "--audit", "off", "--tls-cert", str(pki.path("server.pem")), "--tls-key", str(pki.path("server.key")),
        "--tls-client-ca", str(pki.path("ca.pem")), "--authz", str(authz),
    )  # fmt: skip
    try:
        posture = server.wait_for(lambda e: e["event"] == "security")
        assert posture["tls"] is True and posture["mutual_tls"] is True and posture["authz_callers"] == ["alice", "bob"]
        assert not [e for e in server.events() if e["event"] == "unauthenticated"]
        server.wait_for(lambda e: e["event"] == "serving")
        assert server.wait_for(lambda e: e["event"] == "authz_unknown_flows")["callers"] == {"bob": ["mortgage"]}
        application = request("credit_application", credit_applications(1)[0])
        for who, allowed in (("alice", True), ("bob", False)):
            creds = grpc.ssl_channel_credentials(pki.read("ca.pem"), pki.read(f"{who}.key"), pki.read(f"{who}.pem"))
            with grpc.secure_channel(server.target, creds) as ch:
                stub = pb_grpc.DecisionServiceStub(ch)
                if allowed:
                    assert stub.Decide(application, timeout=10).flow == "credit_application"
                else:
                    with pytest.raises(grpc.RpcError) as err:
                        stub.Decide(application, timeout=10)
                    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    finally:
        assert server.terminate_and_wait() == 0


def test_auth_add_token_prints_the_token_once_and_the_server_accepts_it(tmp_path):
    """`verdict auth add-token` prints only the token; `serve --auth-tokens` accepts it as the caller; the file does not hold it."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    tokens = tmp_path / "tokens.yaml"
    made = subprocess.run([*verdict_command(), "auth", "add-token", "lending-app", "--file", str(tokens)],
                          capture_output=True, text=True, timeout=60, env=env, check=True)  # fmt: skip
    token = made.stdout.strip()
    assert token.startswith("vdt_") and made.stdout.count("\n") == 1 and token not in tokens.read_text()
    server = ServeProcess(tmp_path, "--audit", "off", "--auth-tokens", str(tokens))
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as ch:
            stub = pb_grpc.PolicyServiceStub(ch)
            assert stub.GetStatus(pb.StatusRequest(), timeout=10, metadata=(("authorization", f"Bearer {token}"),)).revision
            with pytest.raises(grpc.RpcError) as err:
                stub.GetStatus(pb.StatusRequest(), timeout=10)
            assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    finally:
        assert server.terminate_and_wait() == 0


def test_workers_serve_mutual_tls_and_log_the_caller(tmp_path):
    """`serve --workers 2` with mutual TLS: every worker checks certificates, and each logged decision names its caller."""
    from engine.audit.source import open_source

    pki = make_pki(tmp_path / "pki")
    authz = tmp_path / "authz.yaml"
    authz.write_text("callers:\n  alice:\n    decide: [credit_application]\n")
    audit = tmp_path / "audit"
    server = ServeProcess(
        tmp_path, "--workers", "2", "--threads", "2", "--audit", str(audit),
        "--tls-cert", str(pki.path("server.pem")), "--tls-key", str(pki.path("server.key")),
        "--tls-client-ca", str(pki.path("ca.pem")), "--authz", str(authz),
    )  # fmt: skip
    try:
        server.wait_for(lambda e: e["event"] == "serving", count=2)
        applications = credit_applications(12)
        for who in ("alice", "bob"):
            creds = grpc.ssl_channel_credentials(pki.read("ca.pem"), pki.read(f"{who}.key"), pki.read(f"{who}.pem"))
            # a new channel per call: new connections, spread over both workers by the kernel
            for i, data in enumerate(applications):
                with grpc.secure_channel(server.target, creds) as ch:
                    stub = pb_grpc.DecisionServiceStub(ch)
                    call = lambda: stub.Decide(request("credit_application", data, request_id=f"{who}-{i}"), timeout=10)  # noqa: E731, B023 (called within this iteration only)
                    if who == "alice":
                        assert call().request_id == f"alice-{i}"
                    else:
                        with pytest.raises(grpc.RpcError) as err:
                            call()
                        assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    finally:
        assert server.terminate_and_wait() == 0
    answered = [r for r in open_source(audit).decisions() if r["route"] != "shadow"]
    assert sorted(r["request_id"] for r in answered) == sorted(f"alice-{i}" for i in range(12))
    assert {r["caller"] for r in answered} == {"alice"}
    per_worker = [sum(r["route"] != "shadow" for r in open_source(audit / f"worker-{w}").decisions()) for w in (0, 1)]
    assert all(n > 0 for n in per_worker), per_worker  # both workers served (and checked) callers


def test_verdict_reload_needs_the_reload_permission_and_applies_a_change(tmp_path, capsys):
    """`verdict reload` with ops's token (admin reload) makes the server take a routing change now; lending-app's token is refused."""
    from engine.cli import main
    from engine.tokens import add_token
    from tests.unit.policy_roots import routed_copy

    root = routed_copy(tmp_path / "root")
    tokens = tmp_path / "tokens.yaml"
    ops, lending = add_token(tokens, "ops"), add_token(tokens, "lending-app")
    authz = tmp_path / "authz.yaml"
    authz.write_text("callers:\n  ops:\n    admin: [status, reload]\n  lending-app:\n    decide: [credit_application]\n")
    server = ServeProcess(  # a later --root wins over the helper's
        tmp_path, "--root", str(root), "--audit", "off", "--reload-interval", "0",
        "--auth-tokens", str(tokens), "--authz", str(authz),
    )  # fmt: skip
    try:
        server.wait_for(lambda e: e["event"] == "reload_ok" and e["trigger"] == "start")  # the reloader is attached
        routing = root / "policies" / "credit_application" / "routing.yaml"
        routing.write_text('live: "3"\n')  # no challenger, no shadow
        assert main(["reload", "--target", server.target, "--token", lending]) == 1
        assert "PERMISSION_DENIED" in capsys.readouterr().err
        assert main(["reload", "--target", server.target, "--token", ops]) == 0
        assert capsys.readouterr().out.startswith("reload: OK")
        with grpc.insecure_channel(server.target) as ch:
            meta = (("authorization", f"Bearer {ops}"),)
            status = pb_grpc.PolicyServiceStub(ch).GetStatus(pb.StatusRequest(), timeout=10, metadata=meta)
        credit = {f.name: f for f in status.flows}["credit_application"]
        assert (credit.challenger_version, list(credit.shadow_versions)) == ("", [])
        assert status.last_reload.trigger == "request" and status.last_reload.ok
    finally:
        assert server.terminate_and_wait() == 0
