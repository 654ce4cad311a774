"""The authentication gate: identity from certificates and tokens, deny by default, health left open."""

from __future__ import annotations

from types import SimpleNamespace

import grpc
import pytest

from engine.authz import parse_authz
from engine.grpc.auth import METHOD_RULES, AuthInterceptor, Rule, Security, caller_of, identity_from_auth_context
from engine.tokens import TokenStore, token_digest

from .grpc_fakes import AbortError, FakeContext


class CallContext(FakeContext):
    """A context with invocation metadata and an auth context, as grpc gives a servicer."""

    def __init__(self, metadata=(), auth=None) -> None:
        super().__init__()
        self._metadata = tuple(metadata)
        self._auth = auth or {}

    def invocation_metadata(self):
        return self._metadata

    def auth_context(self):
        return self._auth


def _interceptor(authz: str | None = "callers:\n  alice:\n    decide: [credit_application]\n") -> AuthInterceptor:
    tokens = TokenStore({token_digest("vdt_alice"): "alice"})
    return AuthInterceptor(Security(client_ca=b"ca", tokens=tokens, authz=parse_authz(authz) if authz else None))


def _handler(seen: list):
    def behaviour(request, context):
        seen.append(caller_of(context))
        return "answered"

    return grpc.unary_unary_rpc_method_handler(behaviour)


def _call(interceptor: AuthInterceptor, method: str, context: CallContext, request=None):
    seen: list = []
    handler = interceptor.intercept_service(lambda details: _handler(seen), SimpleNamespace(method=method, invocation_metadata=()))
    return handler.unary_unary(request, context), seen


def test_identity_is_the_cn_else_the_first_san():
    """A certificate's CN names the caller; without a CN its first SAN does; without either, nobody."""
    assert identity_from_auth_context({"x509_common_name": [b"alice"], "x509_subject_alternative_name": [b"a.example"]}) == "alice"
    assert identity_from_auth_context({"x509_common_name": [b""], "x509_subject_alternative_name": [b"carol.example"]}) == "carol.example"
    assert identity_from_auth_context({"transport_security_type": [b"ssl"]}) is None


def test_the_servicer_sees_the_caller_the_gate_found():
    """A certificate or a token admits the call, and the servicer reads that caller through caller_of."""
    gate = _interceptor()
    cert = CallContext(auth={"x509_common_name": [b"alice"]})
    assert _call(gate, "/verdict.v1.DecisionService/Decide", cert, SimpleNamespace(flow="credit_application")) == ("answered", ["alice"])
    token = CallContext(metadata=(("authorization", "Bearer vdt_alice"),))
    assert _call(gate, "/verdict.v1.DecisionService/Ping", token) == ("answered", ["alice"])
    assert caller_of(FakeContext()) == ""


def test_a_method_without_a_rule_is_refused_even_for_a_known_caller():
    """Deny by default: a method missing from METHOD_RULES answers PERMISSION_DENIED, never reaching its servicer."""
    ctx = CallContext(auth={"x509_common_name": [b"alice"]})
    with pytest.raises(AbortError) as err:
        _call(_interceptor(), "/verdict.v1.PolicyService/Shutdown", ctx)
    assert err.value.code is grpc.StatusCode.PERMISSION_DENIED and "Shutdown" in err.value.details


def test_health_is_public_and_the_rest_is_not():
    """Only the health methods are PUBLIC; Decide needs its flow, the admin methods their permission."""
    public = sorted(m for m, rule in METHOD_RULES.items() if rule is Rule.PUBLIC)
    assert public and all(m.startswith("/grpc.health.v1.Health/") for m in public)
    assert METHOD_RULES["/verdict.v1.DecisionService/Decide"] is Rule.DECIDE
    assert METHOD_RULES["/verdict.v1.PolicyService/GetStatus"] is Rule.STATUS
    assert METHOD_RULES["/verdict.v1.DecisionService/ListFlows"] is Rule.LIST_FLOWS
    seen: list = []
    handler = _handler(seen)
    gate = _interceptor()
    assert gate.intercept_service(lambda d: handler, SimpleNamespace(method="/grpc.health.v1.Health/Check")) is handler


def test_without_an_authz_file_every_known_caller_may_call_everything():
    """Authentication alone (no --authz): a known caller may Decide any flow and call the admin methods."""
    gate = _interceptor(authz=None)
    ctx = CallContext(auth={"x509_common_name": [b"anyone"]})
    assert _call(gate, "/verdict.v1.DecisionService/Decide", ctx, SimpleNamespace(flow="card_payment"))[0] == "answered"
    assert _call(gate, "/verdict.v1.PolicyService/GetStatus", ctx)[0] == "answered"
    with pytest.raises(AbortError) as err:
        _call(gate, "/verdict.v1.PolicyService/GetStatus", CallContext())
    assert err.value.code is grpc.StatusCode.UNAUTHENTICATED


def test_an_unknown_method_stays_unimplemented():
    """A method the server does not have is left to gRPC (UNIMPLEMENTED), not turned into an auth error."""
    assert _interceptor().intercept_service(lambda d: None, SimpleNamespace(method="/x.Y/Z")) is None


@pytest.mark.parametrize(
    ("flags", "warnings"),
    [
        ({}, ["unauthenticated"]),
        ({"host": "0.0.0.0", "insecure": True}, ["unauthenticated", "insecure"]),
        ({"auth_tokens": "tokens.yaml"}, []),
    ],
)
def test_the_start_log_says_when_callers_are_not_authenticated(flags, warnings):
    """Without credentials the server warns 'unauthenticated'; plaintext beyond loopback also warns 'insecure'; one 'security' line always."""
    import structlog

    from engine.app import _log_security
    from engine.settings import Settings

    settings = Settings.load(env={}, **flags)
    security = Security(tokens=TokenStore({}) if "auth_tokens" in flags else None)
    with structlog.testing.capture_logs() as logs:
        _log_security(structlog.get_logger("test"), settings, security)
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == warnings
    assert [e["event"] for e in logs if e["log_level"] == "info"] == ["security"]


def test_tls_files_that_grpc_would_only_call_a_bind_failure_are_named(tmp_path):
    """A key of another certificate, an encrypted key and a CA that is not a certificate: each a tls_invalid problem naming why."""
    from cryptography.hazmat.primitives import serialization

    from engine.errors import PolicyError
    from engine.settings import Settings
    from tests.pki import make_pki

    pki = make_pki(tmp_path / "pki")
    key = serialization.load_pem_private_key(pki.read("server.key"), password=None)
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw"))
    )
    bad_ca = tmp_path / "bad-ca.pem"
    bad_ca.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
    cases = [
        ({"tls_key": pki.path("alice.key")}, "KEY_VALUES_MISMATCH"),
        ({"tls_key": encrypted}, "encrypted"),
        ({"tls_key": pki.path("server.key"), "tls_client_ca": bad_ca}, "client CA cannot be used"),
    ]
    for flags, named in cases:
        settings = Settings.load(env={}, tls_cert=pki.path("server.pem"), **flags)
        with pytest.raises(PolicyError) as err:
            Security.from_settings(settings)
        assert [p.code for p in err.value.problems] == ["tls_invalid"] and named in str(err.value), flags
    assert Security.from_settings(Settings.load(env={}, tls_cert=pki.path("server.pem"), tls_key=pki.path("server.key"))).tls


def test_decide_batch_needs_every_flow_it_names():
    """DecideBatch is admitted only when the caller may Decide every flow of its requests; else PERMISSION_DENIED naming one."""
    from engine.grpc.batch import BatchCall
    from engine.grpc.wire import DecideCall, Malformed

    gate = _interceptor()
    ctx = CallContext(metadata=(("authorization", "Bearer vdt_alice"),))
    credit = DecideCall("credit_application", "", "", {})
    ok = BatchCall((credit, Malformed("bad bytes"), credit))
    assert _call(gate, "/verdict.v1.DecisionService/DecideBatch", ctx, ok) == ("answered", ["alice"])
    with pytest.raises(AbortError) as err:
        _call(gate, "/verdict.v1.DecisionService/DecideBatch", ctx, BatchCall((credit, DecideCall("card_payment", "", "", {}))))
    assert err.value.code is grpc.StatusCode.PERMISSION_DENIED
    assert "card_payment" in err.value.details


@pytest.mark.parametrize("method", ["AddListEntry", "RemoveListEntry", "GetList"])
def test_list_service_needs_lists_write(method):
    """Every ListService method is admitted with the admin permission lists:write and refused without it."""
    path = f"/verdict.v1.ListService/{method}"
    ctx = CallContext(metadata=(("authorization", "Bearer vdt_alice"),))
    granted = _interceptor("callers:\n  alice:\n    admin: ['lists:write']\n")
    assert _call(granted, path, ctx) == ("answered", ["alice"])
    with pytest.raises(AbortError) as err:
        _call(_interceptor("callers:\n  alice:\n    decide: ['*']\n    admin: [status, reload]\n"), path, ctx)
    assert err.value.code is grpc.StatusCode.PERMISSION_DENIED and "lists:write" in err.value.details


def test_case_service_needs_its_own_permissions():
    """CaseService reads need cases_read and DecideCase cases_decide; deciding rights do not include either."""
    gate = _interceptor("callers:\n  alice:\n    decide: ['*']\n    admin: [cases_read]\n")
    ctx = CallContext(metadata=(("authorization", "Bearer vdt_alice"),))
    for method in ("ListCaseDecisions", "WatchCases", "GetCase"):
        assert METHOD_RULES[f"/verdict.v1.CaseService/{method}"] is Rule.CASES_READ
        assert _call(gate, f"/verdict.v1.CaseService/{method}", ctx) == ("answered", ["alice"])
    with pytest.raises(AbortError) as err:
        _call(gate, "/verdict.v1.CaseService/DecideCase", ctx)
    assert err.value.code is grpc.StatusCode.PERMISSION_DENIED and "DecideCase" in err.value.details
    reader_less = _interceptor("callers:\n  alice:\n    decide: ['*']\n")
    with pytest.raises(AbortError) as err:
        _call(reader_less, "/verdict.v1.CaseService/GetCase", ctx)
    assert err.value.code is grpc.StatusCode.PERMISSION_DENIED


@pytest.mark.parametrize(("method", "rule", "granted", "refused", "named"), [
    ("RecordOutcomes", Rule.OUTCOMES_WRITE, "admin: [outcomes_write]", "decide: ['*']\n    admin: [cases_read, cases_decide]", "outcomes_write"),
    ("AddCaseNote", Rule.CASES_DECIDE, "admin: [cases_decide]", "admin: [cases_read]", ""),
])
def test_case_changes_need_their_own_permission(method, rule, granted, refused, named):
    """RecordOutcomes needs outcomes_write (the case permissions do not admit it); AddCaseNote is a change: cases_decide, not cases_read."""
    path = f"/verdict.v1.CaseService/{method}"
    assert METHOD_RULES[path] is rule
    ctx = CallContext(metadata=(("authorization", "Bearer vdt_alice"),))
    assert _call(_interceptor(f"callers:\n  alice:\n    {granted}\n"), path, ctx) == ("answered", ["alice"])
    with pytest.raises(AbortError) as err:
        _call(_interceptor(f"callers:\n  alice:\n    {refused}\n"), path, ctx)
    assert err.value.code is grpc.StatusCode.PERMISSION_DENIED and method in err.value.details and named in err.value.details
