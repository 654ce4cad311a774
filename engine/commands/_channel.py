"""The connection flags of the commands that call a server (client, status) and the channel they open.

``--tls-ca FILE`` (trust this CA; implies TLS), ``--tls`` (TLS trusting gRPC's bundled public
roots), ``--tls-cert FILE --tls-key FILE`` (present a client certificate: mutual TLS),
``--server-name NAME`` (the name to check the server's certificate against, when it differs from
the target's host), ``--token TOKEN`` or ``--token-file FILE`` (sent as
``authorization: Bearer <token>``). See docs/security.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.commands._io import UsageError

__all__ = ["CallFailed", "add_connection_flags", "call_metadata", "call_policy_service", "open_channel"]


def add_connection_flags(p: argparse.ArgumentParser) -> None:
    """Add the TLS and credential flags to a command that calls a server."""
    g = p.add_argument_group("connection security (docs/security.md)")
    g.add_argument("--tls", action="store_true", help="use TLS, trusting gRPC's bundled public root CAs")
    g.add_argument("--tls-ca", type=Path, metavar="FILE", help="PEM CA that signed the server's certificate (implies TLS)")
    g.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM client certificate, for mutual TLS (with --tls-key)")
    g.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM private key of --tls-cert")
    g.add_argument("--server-name", metavar="NAME", help="name the server's certificate must carry, if not the target's host")
    g.add_argument("--token", help="bearer token (sent as 'authorization: Bearer TOKEN'); visible in the process list, prefer --token-file")
    g.add_argument("--token-file", type=Path, metavar="FILE", help="file whose first line is the bearer token")


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None


def call_metadata(args: argparse.Namespace) -> tuple[tuple[str, str], ...]:
    """The metadata every call carries: the bearer token, when one is given."""
    token = args.token
    if args.token_file is not None:
        if token:
            raise UsageError("give --token or --token-file, not both")
        lines = _read(args.token_file, "token file").decode("utf-8", "replace").splitlines()
        token = lines[0].strip() if lines else ""
        if not token:
            raise UsageError(f"the token file {args.token_file} is empty")
    return (("authorization", f"Bearer {token}"),) if token else ()


def open_channel(args: argparse.Namespace) -> Any:
    """A channel to ``args.target``: TLS when asked for (or a client certificate is given), else plaintext.

    Raises ``UsageError`` for unreadable files or a certificate without its key.
    """
    import grpc

    if (args.tls_cert is None) != (args.tls_key is None):
        raise UsageError("--tls-cert and --tls-key go together")
    tls = args.tls or args.tls_ca is not None or args.tls_cert is not None
    if not tls:
        if args.server_name:
            raise UsageError("--server-name needs TLS (--tls-ca or --tls)")
        return grpc.insecure_channel(args.target)
    credentials = grpc.ssl_channel_credentials(
        root_certificates=_read(args.tls_ca, "CA file") if args.tls_ca is not None else None,
        private_key=_read(args.tls_key, "client key") if args.tls_key is not None else None,
        certificate_chain=_read(args.tls_cert, "client certificate") if args.tls_cert is not None else None,
    )
    options = [("grpc.ssl_target_name_override", args.server_name)] if args.server_name else []
    return grpc.secure_channel(args.target, credentials, options=options)


class CallFailed(Exception):
    """A call to the server did not return a reply; it was reported on stderr. ``exit_code``: 2 bad usage, 1 failed call."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


def call_policy_service(args: argparse.Namespace, method: str, request: Any, *, service: str = "PolicyService") -> Any:
    """``<service>.<method>(request)`` on ``args.target`` with ``args.timeout`` (seconds): its reply.

    Reports bad connection flags or a failed call (its gRPC status and details) on stderr and
    raises ``CallFailed`` with the command's exit code (2 or 1).
    """
    import grpc

    from engine.commands._io import report
    from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

    try:
        metadata = call_metadata(args)
        channel = open_channel(args)
    except UsageError as exc:
        report(str(exc))
        raise CallFailed(2) from None
    with channel:
        try:
            return getattr(getattr(pb_grpc, f"{service}Stub")(channel), method)(request, timeout=args.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            from engine.grpc.status import field_errors_from

            report(f"{exc.code().name}: {exc.details()}")
            for error in field_errors_from(exc.trailing_metadata()):  # INVALID_ARGUMENT names each bad field
                report(f"  {error['field']}: {error['message']} [{error['code']}]")
            raise CallFailed(2 if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else 1) from None
