"""TLS, mutual TLS, bearer tokens and authorization on real servers, through the generated stubs.

Certificates are made in the test (tests/pki.py, with ``cryptography``): a CA, a server
certificate for 127.0.0.1/localhost, client certificates for alice, bob, a probe and carol (named
only by a SAN), and mallory, whose certificate claims CN=alice but comes from another CA.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from engine.grpc.auth import METHOD_RULES
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from engine.grpc.server import start_server
from engine.runtime.idempotency import Fingerprinter, IdempotencyCache
from engine.runtime.privacy import HashKey
from engine.runtime.service import Decider
from engine.settings import Settings
from engine.tokens import add_token
from tests.pki import Pki, make_pki

from .helpers import ROOT, card_payments, comparable, credit_applications, request

pytestmark = pytest.mark.integration

AUTHZ = """\
callers:
  alice:
    decide: [credit_application]
  bob:
    decide: ["*"]
    admin: [status, list_flows]
  carol.clients.example:
    decide: [card_payment]
  lending-app:
    decide: [credit_application]
  ops:
    admin: [status, list_flows]
"""

APPLICATION = credit_applications(1)[0]


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    pki = make_pki(tmp_path_factory.mktemp("pki"))
    (pki.dir / "authz.yaml").write_text(AUTHZ)
    return pki


@pytest.fixture(scope="module")
def tokens(pki) -> dict[str, str]:
    """Tokens of lending-app and ops, in the module's token file."""
    path = pki.path("tokens.yaml")
    return {name: add_token(path, name) for name in ("lending-app", "ops")}


@pytest.fixture(scope="module")
def core(decider) -> Decider:
    """The bundled policies with request-id idempotency on (in memory)."""
    return Decider(decider.policies, idempotency=IdempotencyCache(Fingerprinter(HashKey(b"test-key"))))


def _serve(core: Decider, **security: Path):
    return start_server(Settings.load(env={}, port=0, root=ROOT, **security), core)


@pytest.fixture(scope="module")
def mtls_server(pki, core):
    """Mutual TLS with the authorization file: callers are named by their client certificates."""
    running = _serve(
        core, tls_cert=pki.path("server.pem"), tls_key=pki.path("server.key"),
        tls_client_ca=pki.path("ca.pem"), authz=pki.path("authz.yaml"),
    )  # fmt: skip
    yield running
    running.stop(1)


@pytest.fixture(scope="module")
def token_server(pki, tokens, core):
    """TLS (no client certificates) with bearer tokens and the authorization file."""
    running = _serve(
        core, tls_cert=pki.path("server.pem"), tls_key=pki.path("server.key"),
        auth_tokens=pki.path("tokens.yaml"), authz=pki.path("authz.yaml"),
    )  # fmt: skip
    yield running
    running.stop(1)


@pytest.fixture(scope="module")
def tls_server(pki, core):
    """TLS only: encrypted and the server authenticated, callers anonymous."""
    running = _serve(core, tls_cert=pki.path("server.pem"), tls_key=pki.path("server.key"))
    yield running
    running.stop(1)


def channel(pki: Pki, port: int, client: str | None = None, host: str = "127.0.0.1") -> grpc.Channel:
    """A TLS channel trusting the test CA, presenting ``client``'s certificate if given."""
    creds = grpc.ssl_channel_credentials(
        pki.read("ca.pem"),
        pki.read(f"{client}.key") if client else None,
        pki.read(f"{client}.pem") if client else None,
    )
    return grpc.secure_channel(f"{host}:{port}", creds)


def decide(ch: grpc.Channel, flow: str = "credit_application", data=None, token: str | None = None, **fields: str):
    metadata = (("authorization", f"Bearer {token}"),) if token is not None else None
    return pb_grpc.DecisionServiceStub(ch).Decide(request(flow, data or APPLICATION, **fields), timeout=10, metadata=metadata)


def status_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as err:
        call()
    return err.value.code(), err.value.details()


def test_tls_serves_the_same_decisions(pki, tls_server, stub):
    """Over TLS (no client certificate) Decide answers exactly what the plaintext server answers."""
    with channel(pki, tls_server.port) as ch:
        got = decide(ch, request_id="tls-1")
    assert comparable(got) == comparable(stub.Decide(request("credit_application", APPLICATION, request_id="tls-1"), timeout=10))


def test_a_plaintext_client_cannot_talk_to_a_tls_server(tls_server):
    """A client that does not speak TLS gets no answer (UNAVAILABLE): the server never serves plaintext."""
    with grpc.insecure_channel(f"127.0.0.1:{tls_server.port}") as ch:
        code, _ = status_of(lambda: decide(ch))
    assert code is grpc.StatusCode.UNAVAILABLE


def test_mtls_client_certificate_names_the_caller(pki, mtls_server):
    """alice's certificate lets alice Decide credit_application; the hostname localhost verifies too."""
    for host in ("127.0.0.1", "localhost"):
        with channel(pki, mtls_server.port, "alice", host=host) as ch:
            assert decide(ch).action in (pb.APPROVE, pb.REVIEW, pb.DECLINE)


def test_a_subject_alternative_name_names_a_caller_without_a_cn(pki, mtls_server):
    """carol's certificate has no CN, only the SAN carol.clients.example: that is the caller authz knows."""
    with channel(pki, mtls_server.port, "carol-san") as ch:
        assert decide(ch, "card_payment", card_payments(1)[0], version="1").flow == "card_payment"
        code, details = status_of(lambda: decide(ch, "credit_application"))
        assert code is grpc.StatusCode.PERMISSION_DENIED and "carol.clients.example" in details


def test_no_client_certificate_is_refused(pki, mtls_server):
    """Without a client certificate the mutual-TLS handshake fails: the call never reaches the server."""
    with channel(pki, mtls_server.port) as ch:
        code, _ = status_of(lambda: decide(ch))
    assert code is grpc.StatusCode.UNAVAILABLE


def test_a_certificate_from_another_ca_is_refused(pki, mtls_server):
    """mallory's certificate says CN=alice but another CA signed it: refused in the handshake."""
    with channel(pki, mtls_server.port, "mallory") as ch:
        code, _ = status_of(lambda: decide(ch))
    assert code is grpc.StatusCode.UNAVAILABLE


def test_a_caller_not_allowed_a_flow_gets_permission_denied(pki, mtls_server):
    """alice may not decide card_payment, nor learn whether 'mortgage' exists; the server keeps serving her."""
    with channel(pki, mtls_server.port, "alice") as ch:
        code, details = status_of(lambda: decide(ch, "card_payment", {"amount": 1.0}))
        assert code is grpc.StatusCode.PERMISSION_DENIED
        assert "alice" in details and "card_payment" in details
        assert "bob" not in details and "credit_application" not in details  # nothing about others' rights
        code, details = status_of(lambda: decide(ch, "mortgage", {}))
        assert code is grpc.StatusCode.PERMISSION_DENIED and "known flows" not in details
        assert decide(ch).flow == "credit_application"


def test_admin_methods_are_guarded(pki, mtls_server):
    """GetStatus, ListFlows, Reload and RecordEvent need their admin permission: alice is refused the first three, bob
    (status, list_flows) is answered but may not reload nor record events."""
    with channel(pki, mtls_server.port, "alice") as ch:
        code, details = status_of(lambda: pb_grpc.PolicyServiceStub(ch).Reload(pb.ReloadRequest(), timeout=10))
        assert code is grpc.StatusCode.PERMISSION_DENIED and "Reload" in details
        code, details = status_of(lambda: pb_grpc.PolicyServiceStub(ch).GetStatus(pb.StatusRequest(), timeout=10))
        assert code is grpc.StatusCode.PERMISSION_DENIED and "GetStatus" in details
        code, details = status_of(lambda: pb_grpc.DecisionServiceStub(ch).ListFlows(pb.ListFlowsRequest(), timeout=10))
        assert code is grpc.StatusCode.PERMISSION_DENIED and "ListFlows" in details
    with channel(pki, mtls_server.port, "bob") as ch:
        assert pb_grpc.PolicyServiceStub(ch).GetStatus(pb.StatusRequest(), timeout=10).revision
        names = {f.name for f in pb_grpc.DecisionServiceStub(ch).ListFlows(pb.ListFlowsRequest(), timeout=10).flows}
        assert names == {"credit_application", "card_payment", "customer_onboarding", "account_payout"}
        code, details = status_of(lambda: pb_grpc.PolicyServiceStub(ch).Reload(pb.ReloadRequest(), timeout=10))
        assert code is grpc.StatusCode.PERMISSION_DENIED and "needs admin permission 'reload'" in details
        event = pb.RecordEventRequest(type="password_reset")
        code, details = status_of(lambda: pb_grpc.DecisionServiceStub(ch).RecordEvent(event, timeout=10))
        assert code is grpc.StatusCode.PERMISSION_DENIED and "needs admin permission 'record_events'" in details


def test_a_known_client_without_any_grant_may_only_ping(pki, mtls_server):
    """The probe's certificate is valid but authz does not list it: Ping answers, Decide is denied."""
    with channel(pki, mtls_server.port, "probe") as ch:
        assert pb_grpc.DecisionServiceStub(ch).Ping(pb.PingRequest(payload=b"hi"), timeout=10).payload == b"hi"
        code, _ = status_of(lambda: decide(ch))
    assert code is grpc.StatusCode.PERMISSION_DENIED


def test_request_ids_are_scoped_per_caller_over_the_wire(pki, mtls_server):
    """alice and bob both use request id 'shared' for different inputs: two decisions, no ALREADY_EXISTS."""
    other = {**APPLICATION, "amount": APPLICATION["amount"] + 100}
    with channel(pki, mtls_server.port, "alice") as a, channel(pki, mtls_server.port, "bob") as b:
        first = decide(a, request_id="shared")
        second = decide(b, data=other, request_id="shared")
        assert second.decision_id != first.decision_id
        assert decide(a, request_id="shared").decision_id == first.decision_id  # alice's retry: her decision


def test_a_valid_token_names_the_caller(pki, tokens, token_server):
    """lending-app's token decides credit_application; ops's token reads status but may not decide."""
    with channel(pki, token_server.port) as ch:
        assert decide(ch, token=tokens["lending-app"]).flow == "credit_application"
        meta = (("authorization", f"Bearer {tokens['ops']}"),)
        assert pb_grpc.PolicyServiceStub(ch).GetStatus(pb.StatusRequest(), timeout=10, metadata=meta).revision
        code, details = status_of(lambda: decide(ch, token=tokens["ops"]))
        assert code is grpc.StatusCode.PERMISSION_DENIED and "'ops'" in details


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        (None, "no credential"),
        ((("authorization", "Bearer vdt_not-a-real-token"),), "invalid bearer token"),
        ((("authorization", "Basic bGVuZGluZzphcHA="),), "Bearer <token>"),
        ((("authorization", "Bearer " + "x" * 4000),), "invalid bearer token"),
    ],
)
def test_a_missing_or_bad_token_is_unauthenticated(pki, token_server, metadata, message):
    """No token, an unknown one, another scheme or an absurdly long one: UNAUTHENTICATED, saying which."""
    with channel(pki, token_server.port) as ch:
        stub = pb_grpc.DecisionServiceStub(ch)
        code, details = status_of(lambda: stub.Decide(request("credit_application", APPLICATION), timeout=10, metadata=metadata))
        assert code is grpc.StatusCode.UNAUTHENTICATED and message in details
        code, _ = status_of(lambda: pb_grpc.PolicyServiceStub(ch).GetStatus(pb.StatusRequest(), timeout=10, metadata=metadata))
        assert code is grpc.StatusCode.UNAUTHENTICATED


def test_health_needs_no_credentials(pki, token_server, mtls_server):
    """Health answers SERVING without a token; on mutual TLS any certificate of the CA will do, even one authz does not list."""
    request_ = health_pb2.HealthCheckRequest(service="")
    with channel(pki, token_server.port) as ch:
        assert health_pb2_grpc.HealthStub(ch).Check(request_, timeout=10).status == health_pb2.HealthCheckResponse.SERVING
    with channel(pki, mtls_server.port, "probe") as ch:
        assert health_pb2_grpc.HealthStub(ch).Check(request_, timeout=10).status == health_pb2.HealthCheckResponse.SERVING


def _services(ch: grpc.Channel) -> list[str]:
    return sorted(ProtoReflectionDescriptorDatabase(ch).get_services())


def test_reflection_lists_services_over_mutual_tls_the_way_grpcurl_does(pki, mtls_server, token_server):
    """grpc_reflection's client over the mTLS channel lists every service; without credentials it is refused."""
    with channel(pki, mtls_server.port, "probe") as ch:
        services = _services(ch)
        assert {"verdict.v1.DecisionService", "verdict.v1.PolicyService", "grpc.health.v1.Health"} <= set(services)
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(ch))
        decide_method = pool.FindServiceByName("verdict.v1.DecisionService").FindMethodByName("Decide")
        assert decide_method.input_type.full_name == "verdict.v1.DecideRequest"
    with channel(pki, token_server.port) as ch:
        with pytest.raises(grpc.RpcError) as err:
            _services(ch)
        assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_every_method_the_server_offers_has_a_rule(pki, mtls_server):
    """Each method reflection lists has an entry in METHOD_RULES (a new method is not left to deny-by-default by accident)."""
    with channel(pki, mtls_server.port, "probe") as ch:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(ch))
        methods = [
            f"/{service}/{method.name}"
            for service in _services(ch)
            for method in pool.FindServiceByName(service).methods
        ]
    missing = [m for m in methods if m not in METHOD_RULES]
    assert methods and not missing, f"add {missing} to engine.grpc.auth.METHOD_RULES"


def _client_args(pki: Pki, port: int, tmp_path: Path, *extra: str, target_host: str = "127.0.0.1") -> list[str]:
    path = tmp_path / "app.json"
    path.write_text(__import__("json").dumps(APPLICATION))
    return ["client", "credit_application", "--input", str(path), "--target", f"{target_host}:{port}", "--tls-ca", str(pki.path("ca.pem")), *extra]


def test_verdict_client_speaks_mutual_tls(pki, mtls_server, tmp_path, capsys):
    """`verdict client --tls-ca --tls-cert --tls-key` decides as alice; as alice on card_payment it exits 2 with PERMISSION_DENIED."""
    from engine.cli import main

    alice = ["--tls-cert", str(pki.path("alice.pem")), "--tls-key", str(pki.path("alice.key"))]
    assert main(_client_args(pki, mtls_server.port, tmp_path, *alice)) == 0
    assert '"flow": "credit_application"' in capsys.readouterr().out
    args = _client_args(pki, mtls_server.port, tmp_path, *alice)
    args[1] = "card_payment"
    assert main(args) == 2
    assert "PERMISSION_DENIED" in capsys.readouterr().err
    assert main(_client_args(pki, mtls_server.port, tmp_path)) == 1  # no client certificate: the handshake fails
    assert main(_client_args(pki, mtls_server.port, tmp_path, "--tls-cert", str(pki.path("alice.pem")))) == 2
    assert "--tls-cert and --tls-key go together" in capsys.readouterr().err


def test_verdict_client_and_status_send_tokens(pki, tokens, token_server, tmp_path, capsys):
    """--token and --token-file authenticate `verdict client` and `verdict status`; a wrong token exits 2 with UNAUTHENTICATED."""
    from engine.cli import main

    assert main(_client_args(pki, token_server.port, tmp_path, "--token", tokens["lending-app"])) == 0
    assert main(_client_args(pki, token_server.port, tmp_path, "--token", "vdt_wrong")) == 2
    assert "UNAUTHENTICATED: [unauthenticated] invalid bearer token" in capsys.readouterr().err
    token_file = tmp_path / "ops.token"
    token_file.write_text(tokens["ops"] + "\n")
    status = ["status", "--target", f"127.0.0.1:{token_server.port}", "--tls-ca", str(pki.path("ca.pem"))]
    assert main([*status, "--token-file", str(token_file)]) == 0
    assert "serving revision" in capsys.readouterr().out
    assert main(status) == 1
    assert "UNAUTHENTICATED" in capsys.readouterr().err


def test_server_name_checks_the_certificate_against_another_name(pki, core, tmp_path, capsys):
    """A server whose certificate names only verdict.internal: reached at 127.0.0.1 it verifies with --server-name verdict.internal, not without, not with a wrong name."""
    from engine.cli import main

    running = _serve(core, tls_cert=pki.path("internal.pem"), tls_key=pki.path("internal.key"))
    try:
        assert main(_client_args(pki, running.port, tmp_path)) == 1
        assert "UNAVAILABLE" in capsys.readouterr().err
        assert main(_client_args(pki, running.port, tmp_path, "--server-name", "verdict.internal")) == 0
        assert main(_client_args(pki, running.port, tmp_path, "--server-name", "evil.example")) == 1
    finally:
        running.stop(1)
