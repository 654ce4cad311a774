"""The transport half of security: TLS credentials, who is calling, and the gate before each method.

``Security.from_settings`` reads the certificate, key, client CA, token and authorization files
once at start-up (every problem at once, before the server binds). ``AuthInterceptor`` is a gRPC
server interceptor: for each method it looks up the permission the method needs in
``METHOD_RULES`` and wraps the handler so that, with the call's context at hand, it

1. authenticates: a bearer token in the ``authorization: Bearer <token>`` metadata (looked up in
   the token file), else the verified client certificate of a mutual-TLS connection (its subject
   CN, or its first subject alternative name when it has no CN); neither gives UNAUTHENTICATED;
2. authorizes with the pure policy (``engine.authz``): Decide needs the flow named in the request,
   DecideBatch every flow its requests name (one not granted refuses the whole call),
   ListFlows, GetStatus, Reload and the ListService methods their admin permission; a refusal is PERMISSION_DENIED naming the method
   or flow;
3. hands the servicer a context that also carries the caller (``caller_of``), which scopes request
   ids (engine/runtime/idempotency.py).

Health (``grpc.health.v1.Health``) is public: load balancers and orchestrators probe it without
credentials. Reflection and Ping need an authenticated caller and no permission. A method the
table does not list is refused (deny by default), so a method added later is closed until
someone decides who may call it. Errors go through the one status table (engine/grpc/status.py).
"""

from __future__ import annotations

import enum
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc

from engine.authz import AuthzPolicy, load_authz
from engine.errors import PermissionDenied, PolicyError, Problem, Unauthenticated
from engine.grpc.status import abort
from engine.settings import Settings
from engine.tokens import TokenStore, load_tokens

__all__ = ["METHOD_RULES", "AuthInterceptor", "Rule", "Security", "caller_of", "identity_from_auth_context"]

AUTHORIZATION_KEY = "authorization"
_BEARER = "bearer "


class Rule(enum.Enum):
    """What a method needs from its caller."""

    PUBLIC = "public"  # nothing: no credential is asked for
    AUTHENTICATED = "authenticated"  # any known caller
    DECIDE = "decide"  # a caller that may Decide the request's flow
    DECIDE_BATCH = "decide_batch"  # a caller that may Decide every flow the batch's requests name
    STATUS = "status"  # admin permission "status"
    LIST_FLOWS = "list_flows"  # admin permission "list_flows"
    RELOAD = "reload"  # admin permission "reload"
    LISTS_WRITE = "lists:write"  # admin permission "lists:write" (ListService: changes and reads)
    CASES_READ = "cases_read"  # admin permission "cases_read" (the review queue's dispositions)
    CASES_DECIDE = "cases_decide"  # admin permission "cases_decide" (CaseService.DecideCase, AddCaseNote)
    OUTCOMES_WRITE = "outcomes_write"  # admin permission "outcomes_write" (CaseService.RecordOutcomes)
    RECORD_EVENTS = "record_events"  # admin permission "record_events" (RecordEvent: feeds stateful features)


METHOD_RULES: dict[str, Rule] = {
    "/verdict.v1.DecisionService/Decide": Rule.DECIDE,
    "/verdict.v1.DecisionService/DecideBatch": Rule.DECIDE_BATCH,
    "/verdict.v1.DecisionService/ListFlows": Rule.LIST_FLOWS,
    "/verdict.v1.DecisionService/Ping": Rule.AUTHENTICATED,
    "/verdict.v1.DecisionService/RecordEvent": Rule.RECORD_EVENTS,
    "/verdict.v1.PolicyService/GetStatus": Rule.STATUS,
    "/verdict.v1.PolicyService/Reload": Rule.RELOAD,
    "/verdict.v1.ListService/AddListEntry": Rule.LISTS_WRITE,
    "/verdict.v1.ListService/RemoveListEntry": Rule.LISTS_WRITE,
    "/verdict.v1.ListService/GetList": Rule.LISTS_WRITE,
    "/verdict.v1.CaseService/ListCaseDecisions": Rule.CASES_READ,
    "/verdict.v1.CaseService/WatchCases": Rule.CASES_READ,
    "/verdict.v1.CaseService/GetCase": Rule.CASES_READ,
    "/verdict.v1.CaseService/DecideCase": Rule.CASES_DECIDE,
    "/verdict.v1.CaseService/RecordOutcomes": Rule.OUTCOMES_WRITE,
    "/verdict.v1.CaseService/AddCaseNote": Rule.CASES_DECIDE,
    "/grpc.health.v1.Health/Check": Rule.PUBLIC,
    "/grpc.health.v1.Health/Watch": Rule.PUBLIC,
    "/grpc.health.v1.Health/List": Rule.PUBLIC,
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo": Rule.AUTHENTICATED,
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo": Rule.AUTHENTICATED,
}


@dataclass(frozen=True)
class Security:
    """What the server needs to serve TLS and to know and check its callers, read at start-up."""

    cert_chain: bytes | None = None
    private_key: bytes | None = None
    client_ca: bytes | None = None
    tokens: TokenStore | None = None
    authz: AuthzPolicy | None = None

    @property
    def tls(self) -> bool:
        """True when the server speaks TLS."""
        return self.cert_chain is not None

    @property
    def authenticates(self) -> bool:
        """True when callers must prove who they are (client certificates or bearer tokens)."""
        return self.client_ca is not None or self.tokens is not None

    def server_credentials(self) -> grpc.ServerCredentials:
        """TLS credentials; with a client CA the client must present a certificate it signed."""
        assert self.cert_chain is not None and self.private_key is not None
        return grpc.ssl_server_credentials(
            [(self.private_key, self.cert_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )

    def interceptors(self) -> tuple[grpc.ServerInterceptor, ...]:
        """The authentication gate, when callers must authenticate; none otherwise."""
        return (AuthInterceptor(self),) if self.authenticates else ()

    def describe(self) -> dict[str, Any]:
        """How the server is protected, for the start-up log line."""
        return {
            "tls": self.tls,
            "mutual_tls": self.client_ca is not None,
            "tokens": len(self.tokens) if self.tokens is not None else None,
            "authz_callers": self.authz.callers if self.authz is not None else None,
        }

    @classmethod
    def from_settings(cls, settings: Settings) -> Security:
        """Read every file the settings name; raises ``PolicyError`` listing every problem."""
        problems: list[Problem] = []

        def pem(path: Path | None, what: str, marker: bytes) -> bytes | None:
            if path is None:
                return None
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                problems.append(Problem(str(path), f"cannot read the {what}: {exc.strerror or exc}", "tls_unreadable"))
                return None
            if marker not in data:
                problems.append(Problem(str(path), f"the {what} is not PEM (no '{marker.decode()}' line)", "tls_not_pem"))
            return data

        cert = pem(settings.tls_cert, "server certificate (--tls-cert)", b"-----BEGIN CERTIFICATE-----")
        key = pem(settings.tls_key, "server private key (--tls-key)", b"PRIVATE KEY-----")
        client_ca = pem(settings.tls_client_ca, "client CA (--tls-client-ca)", b"-----BEGIN CERTIFICATE-----")
        if cert is not None and key is not None and not problems:
            _check_tls_files(problems, settings)
        tokens = _collect(problems, load_tokens, settings.auth_tokens)
        authz = _collect(problems, load_authz, settings.authz)
        if problems:
            raise PolicyError(problems)
        return cls(cert_chain=cert, private_key=key, client_ca=client_ca, tokens=tokens, authz=authz)


_T = TypeVar("_T")


def _no_password() -> bytes:
    raise ValueError("the private key is encrypted: gRPC needs an unencrypted key file (restrict it with chmod 600)")


def _check_tls_files(problems: list[Problem], settings: Settings) -> None:
    """Parse the certificate, key and client CA with the standard ``ssl`` module before gRPC sees them.

    gRPC reports a key that does not match its certificate, or a PEM it cannot parse, only as
    "Failed to bind to address"; OpenSSL (through ``ssl``) names the actual problem.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key), password=_no_password)
    except (ssl.SSLError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or str(exc)
        problems.append(
            Problem(str(settings.tls_cert), f"the certificate and key (--tls-key {settings.tls_key}) cannot be used: {reason}", "tls_invalid")
        )
    if settings.tls_client_ca is not None:
        try:
            context.load_verify_locations(cafile=str(settings.tls_client_ca))
        except ssl.SSLError as exc:
            problems.append(Problem(str(settings.tls_client_ca), f"the client CA cannot be used: {exc.reason or exc}", "tls_invalid"))


def _collect(problems: list[Problem], load: Callable[[Path], _T], path: Path | None) -> _T | None:
    """``load(path)``, or None when no path is set or loading failed (its problems appended)."""
    if path is None:
        return None
    try:
        return load(path)
    except PolicyError as exc:
        problems.extend(exc.problems)
        return None


def identity_from_auth_context(auth: dict[str, list[bytes]]) -> str | None:
    """The caller a verified client certificate names: its subject CN, else its first SAN; else None.

    ``auth`` is ``ServicerContext.auth_context()``; gRPC fills ``x509_common_name`` and
    ``x509_subject_alternative_name`` only from a certificate the TLS handshake verified.
    """
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        values = auth.get(key) or []
        for value in values:
            name = value.decode("utf-8", "replace").strip()
            if name:
                return name
    return None


class _CallerContext:
    """The call's context, plus the authenticated ``caller``; everything else is delegated."""

    __slots__ = ("_context", "caller")

    def __init__(self, context: grpc.ServicerContext, caller: str) -> None:
        self._context = context
        self.caller = caller

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)


def caller_of(context: Any) -> str:
    """The authenticated caller of a call ("" when the server does not authenticate)."""
    return context.caller if isinstance(context, _CallerContext) else ""


class AuthInterceptor(grpc.ServerInterceptor):
    """Authenticates and authorizes every call but health's before the servicer sees it."""

    def __init__(self, security: Security) -> None:
        self._tokens = security.tokens
        self._certificates = security.client_ca is not None
        self._authz = security.authz
        # method -> (the handler gRPC found, its guarded wrapper): built once per method, not per call
        self._guarded: dict[str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]] = {}

    def authenticate(self, context: grpc.ServicerContext) -> str:
        """The caller's name; raises ``Unauthenticated`` when the call proves no identity."""
        for key, value in context.invocation_metadata() or ():
            if key != AUTHORIZATION_KEY:
                continue
            text = value if isinstance(value, str) else value.decode("utf-8", "replace")
            if not text[: len(_BEARER)].lower() == _BEARER:
                raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
            if self._tokens is None:
                raise Unauthenticated("this server does not accept bearer tokens")
            caller = self._tokens.caller(text[len(_BEARER) :].strip())
            if caller is None:
                raise Unauthenticated("invalid bearer token")
            return caller
        if self._certificates:
            caller = identity_from_auth_context(context.auth_context())  # type: ignore[arg-type]  # types-grpcio says Mapping[str, bytes]; gRPC gives lists of bytes ("a map of strings to an iterable of bytes", grpc.ServicerContext.auth_context)
            if caller is not None:
                return caller
        wanted = " or ".join(
            ([f"'{AUTHORIZATION_KEY}: Bearer <token>' metadata"] if self._tokens is not None else [])
            + (["a client certificate"] if self._certificates else [])
        )
        raise Unauthenticated(f"no credential: send {wanted}")

    def authorize(self, caller: str, rule: Rule, method: str, request: Any) -> None:
        """Raise ``PermissionDenied`` unless ``caller`` may make this call."""
        authz = self._authz
        if authz is None or rule is Rule.AUTHENTICATED:
            return
        if rule is Rule.DECIDE:
            flow = getattr(request, "flow", None)
            if isinstance(flow, str):  # a malformed request names no flow; the servicer refuses it
                authz.check_decide(caller, flow)
            return
        if rule is Rule.DECIDE_BATCH:  # the whole call is refused when one request's flow is not granted
            flows = getattr(request, "flows", None)
            for flow in sorted(flows()) if callable(flows) else ():
                authz.check_decide(caller, flow)
            return
        authz.check_admin(caller, rule.value, method.rsplit("/", 1)[-1])

    def _admit(self, rule: Rule, method: str, request: Any, context: grpc.ServicerContext) -> _CallerContext:
        caller = self.authenticate(context)
        self.authorize(caller, rule, method, request)
        return _CallerContext(context, caller)

    def intercept_service(
        self, continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        """The method's handler, behind the gate its rule asks for (a handler that refuses if unlisted)."""
        handler = continuation(details)
        if handler is None:
            return None  # no such method: UNIMPLEMENTED
        method = details.method
        cached = self._guarded.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        rule = METHOD_RULES.get(method)
        if rule is Rule.PUBLIC:
            return handler
        if rule is None:
            guarded = _refusing(handler, method)
        else:
            guarded = _guarded(handler, lambda request, context: self._admit(rule, method, request, context))
        if len(self._guarded) < len(METHOD_RULES) * 2:  # bounded: only methods the server has reach here
            self._guarded[method] = (handler, guarded)
        return guarded


def _refusing(handler: grpc.RpcMethodHandler[Any, Any], method: str) -> grpc.RpcMethodHandler[Any, Any]:
    """A handler that refuses every call: ``method`` has no entry in ``METHOD_RULES``."""

    def admit(request: Any, context: grpc.ServicerContext) -> Any:
        raise PermissionDenied(f"{method} is not open to callers on this server")

    return _guarded(handler, admit)


def _guarded(handler: grpc.RpcMethodHandler[Any, Any], admit: Callable[[Any, grpc.ServicerContext], Any]) -> grpc.RpcMethodHandler[Any, Any]:
    """``handler`` with ``admit(request, context) -> context`` run before its behaviour.

    Unary requests are admitted with the request (Decide's flow); streaming ones before the
    first message is read, with no request.
    """
    des, ser = handler.request_deserializer, handler.response_serializer

    def checked(context: grpc.ServicerContext, request: Any) -> Any:
        try:
            return admit(request, context)
        except (Unauthenticated, PermissionDenied) as exc:
            abort(context, exc)

    if handler.unary_unary is not None:
        inner_uu = handler.unary_unary

        def unary_unary(request: Any, context: grpc.ServicerContext) -> Any:
            return inner_uu(request, checked(context, request))

        return grpc.unary_unary_rpc_method_handler(unary_unary, request_deserializer=des, response_serializer=ser)
    if handler.unary_stream is not None:
        inner_us = handler.unary_stream

        def unary_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            return inner_us(request, checked(context, request))

        return grpc.unary_stream_rpc_method_handler(unary_stream, request_deserializer=des, response_serializer=ser)
    if handler.stream_unary is not None:
        inner_su = handler.stream_unary

        def stream_unary(requests: Iterator[Any], context: grpc.ServicerContext) -> Any:
            return inner_su(requests, checked(context, None))

        return grpc.stream_unary_rpc_method_handler(stream_unary, request_deserializer=des, response_serializer=ser)
    inner_ss = handler.stream_stream
    if inner_ss is None:
        raise ValueError(f"a method handler with no behaviour: {handler!r}")

    def stream_stream(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[Any]:
        return inner_ss(requests, checked(context, None))

    return grpc.stream_stream_rpc_method_handler(stream_stream, request_deserializer=des, response_serializer=ser)
