"""``verdict serve``: run the gRPC decision service until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import structlog

from engine.commands._io import ROOT_HELP, report
from engine.settings import Settings, SettingsError, root_origin

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``serve`` and its flags (each overrides its VERDICT_* environment variable)."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="run the gRPC decision service",
        description="Run the gRPC DecisionService (with health and reflection) until SIGTERM/SIGINT. "
        "Every flag overrides its VERDICT_* environment variable; see engine/settings.py.",
    )
    p.add_argument("--host", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, help="TCP port, 0 for a free one (default 50051)")
    p.add_argument("--root", type=Path, help=ROOT_HELP)
    p.add_argument("--workers", type=int, help="server processes sharing the port (default 1)")
    p.add_argument("--threads", type=int, help="request threads per process (default 16)")
    p.add_argument("--max-message-bytes", type=int, help="largest request accepted (default 65536)")
    p.add_argument("--grace-seconds", type=float, help="time in-flight calls get on shutdown (default 10)")
    p.add_argument("--log-level", help="debug, info, warning or error (default info)")
    p.add_argument("--log-format", help="json or console (default json)")
    p.add_argument("--audit", metavar="DIR", help="decision log directory, or 'off' (default ./audit)")
    p.add_argument("--audit-dsn", metavar="DSN", help="PostgreSQL DSN of the decision log (instead of --audit)")
    p.add_argument("--lists", metavar="DIR", help="custom lists' store directory, or 'off' (default: the --audit directory; docs/lists.md)")
    p.add_argument("--cases", metavar="PATH|DSN", help="review-case store: SQLite file or PostgreSQL DSN, 'off' (default: DIR/cases.db beside the log)")
    p.add_argument("--idempotency-window", type=float, metavar="SECONDS", help="retry window of request ids, 0 = off (default 600)")
    p.add_argument("--reload-interval", type=float, metavar="SECONDS", help="how often to look for changed policy files, 0 = only on SIGHUP (default 0.5)")
    p.add_argument("--metrics-port", type=int, metavar="PORT", help="serve Prometheus /metrics on this port (docs/operations.md)")
    p.add_argument("--metrics-host", metavar="HOST", help="address of /metrics (default 127.0.0.1)")
    p.add_argument("--otlp-endpoint", metavar="URL",
                   help="export OpenTelemetry traces to this OTLP/gRPC collector, e.g. http://127.0.0.1:4317 (needs the otel extra; docs/operations.md)")
    p.add_argument("--state", metavar="FILE", help="SQLite file of stateful features, or 'memory' (default state/state.db; docs/behaviour.md)")
    g = p.add_argument_group("security (docs/security.md)")
    g.add_argument("--tls-cert", type=Path, metavar="FILE", help="PEM certificate chain of the server: serve TLS (with --tls-key)")
    g.add_argument("--tls-key", type=Path, metavar="FILE", help="PEM private key of --tls-cert")
    g.add_argument("--tls-client-ca", type=Path, metavar="FILE", help="PEM CA: require and verify client certificates it signed (mutual TLS)")
    g.add_argument("--auth-tokens", type=Path, metavar="FILE", help="bearer token file made by 'verdict auth add-token'")
    g.add_argument("--authz", type=Path, metavar="FILE", help="authorization file: callers -> flows and admin methods")
    g.add_argument("--insecure", action="store_true", default=None, help="allow plaintext on a non-loopback --host")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Validate the settings, configure logging, serve."""
    from engine.app import serve
    from engine.errors import PolicyError
    from engine.extras import require
    from engine.grpc.auth import Security
    from engine.logging import configure

    try:
        settings = Settings.load(
            host=args.host,
            port=args.port,
            root=args.root,
            workers=args.workers,
            threads=args.threads,
            max_message_bytes=args.max_message_bytes,
            grace_seconds=args.grace_seconds,
            log_level=args.log_level,
            log_format=args.log_format,
            audit=args.audit,
            audit_dsn=args.audit_dsn,
            lists=args.lists,
            cases=args.cases,
            idempotency_window_seconds=args.idempotency_window,
            reload_interval=args.reload_interval,
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
            otlp_endpoint=args.otlp_endpoint,
            state=args.state,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            tls_client_ca=args.tls_client_ca,
            auth_tokens=args.auth_tokens,
            authz=args.authz,
            insecure=args.insecure,
        )
        Security.from_settings(settings)  # every unreadable or invalid file named, before anything starts
        if settings.otlp_endpoint:  # tracing needs the otel extra: MissingExtra is one line and exit 2 (engine/cli.py)
            require("otel", "--otlp-endpoint (OpenTelemetry traces)")
    except SettingsError as exc:
        report(str(exc))
        return 2
    except PolicyError as exc:
        report(f"{len(exc.problems)} problem(s) in the TLS, token or authorization files:")
        for problem in exc.problems:
            report(f"  {problem}")
        return 2
    configure(settings.log_level, settings.log_format)
    # The root it serves, and where it came from: as a log line (every line of a server's stderr is
    # structured), not the plain "verdict: policy root ..." note of the one-shot commands.
    structlog.get_logger("verdict.serve").info("policy_root", root=str(settings.root.resolve()), origin=root_origin(args.root))
    return serve(settings)
