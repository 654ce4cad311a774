"""The composition root of ``verdict serve``: one place that assembles the application.

It builds, in order: the security settings, the gRPC server (``engine.grpc.server``), the decision
log (``engine.audit.wiring``), the decision service and its reloader (``engine.runtime``), the
metrics endpoint, hot reload and the signal handlers; and it stops them in the reverse order. Every
part is given what it needs as an argument: no module below this one knows the others exist
(docs/architecture.md, "Imports point down").

Start-up order (one process): bind and start with health NOT_SERVING, load, lint and self-test
every flow and model flow by flow (engine/policy/activation.py), then mark SERVING. A request that
arrives while loading gets UNAVAILABLE. The server starts when at least one flow loads; a flow with
errors is reported (log, status, health) and not served until its files are fixed. A worker of
several loads first and only then joins the shared port. On SIGTERM or SIGINT health turns
NOT_SERVING, new calls are refused and in-flight calls get ``grace_seconds`` to finish.

``workers > 1`` forks that many processes that share the port through SO_REUSEPORT
(``engine.workers``). gRPC Python supports ``fork`` only before any gRPC object exists, so the
parent forks first and creates no server, channel or health object of its own
(grpc/examples/python/multiprocessing).

Metrics (``metrics_port``): a lone server serves its own registry on ``/metrics``; with workers
the parent makes a private directory for prometheus-client's multiprocess files before forking,
serves the sum over workers itself, and removes the directory when the workers have stopped
(engine/metrics.py, docs/operations.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import structlog

from engine.errors import PolicyError, StateUnavailable, VerdictError
from engine.extras import MissingExtra
from engine.grpc.auth import Security
from engine.grpc.server import BindError, RunningServer, start_server
from engine.settings import Settings, is_loopback
from engine.workers import on_signals, run_workers

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from engine.audit.wiring import Audit
    from engine.cases.wiring import Review
    from engine.custom_lists.refresh import ListRefresher
    from engine.custom_lists.snapshot import ListView
    from engine.runtime.reload import Reloader, ReloadStatus
    from engine.runtime.service import Decider

__all__ = ["serve"]

_log = structlog.get_logger("verdict.server")  # the name the start-up and stop events have always had
Log = structlog.typing.FilteringBoundLogger


@dataclass
class _Parts:
    """What one server process has opened, in the order it is closed again."""

    decider: Decider
    reloader: Reloader
    audit: Audit
    running: RunningServer | None = None
    exporter: Any = None  # the /metrics HTTP server (prometheus-client), when one was asked for
    lists_refresher: ListRefresher | None = None  # keeps the custom lists' snapshot current (engine.custom_lists)
    review: Review | None = None  # the review queue's opener and relay (engine.cases), when on

    def _close_log(self) -> None:
        """Stop the review queue's threads (the relay's last pass appends to the log), then close the log."""
        if self.review is not None:
            self.review.close()
        self.audit.close()

    def abandon(self) -> None:
        """Close what was opened after a failed start: no grace, nothing is being served yet."""
        if self.running is not None:
            self.running.stop(0)
        if self.lists_refresher is not None:
            self.lists_refresher.stop()
        self.decider.close()
        self._close_log()

    def stop(self, grace: float) -> None:
        """Stop serving: reload first, then calls (``grace`` seconds), then what they wrote to."""
        self.reloader.stop()
        if self.running is not None:
            self.running.stop(grace)
        if self.lists_refresher is not None:
            self.lists_refresher.stop()
        self.decider.close()  # finish the queued shadow evaluations: they are logged too
        self._close_log()  # after the last in-flight call: everything answered is in the log
        self.decider.metrics.stop()  # the last counts reach the registry (and a worker's files)
        if self.exporter is not None:
            self.exporter.shutdown()
        if self.decider.tracing is not None:
            self.decider.tracing.shutdown()  # the buffered spans go out


def _load(settings: Settings, audit: Audit, custom_lists: ListView | None = None) -> tuple[Decider, Reloader]:
    """The core and its reloader after the first check of the root (flow by flow; see engine/policy/activation.py).

    The decider is not ready (``decider.ready`` False) when no flow could be loaded.
    """
    from engine.runtime.reload import Reloader
    from engine.runtime.service import Decider
    from engine.state.sqlite import open_store

    # one step worker per request thread: a request in flight always finds one (engine.runtime.fallback)
    store = open_store(settings.state)
    if getattr(store, "unreachable", ""):  # Redis down at start: serve; stateful flows take their state fallback
        _log.warning("state_unreachable", state=settings.state, error=store.unreachable,  # type: ignore[attr-defined]
                     detail="flows with stateful features answer their state fallback (docs/fallbacks.md) until it answers")
    decider = Decider(None, sink=audit.sink, idempotency=audit.idempotency, step_workers=settings.threads, state=store)
    reloader = Reloader(settings.root, decider, interval=settings.reload_interval, custom_lists=custom_lists)
    reloader.reload("start")
    if audit.sink is not None:
        audit.sink.writer.on_commit = decider.metrics.commit
    return decider, reloader


def _bind(settings: Settings, security: Security, log: Log, decider: Decider | None = None) -> RunningServer | None:
    """Start the gRPC server (serving ``decider`` at once when given, on a shared port); None, logged, when it cannot bind."""
    try:
        running = start_server(settings, decider, reuse_port=decider is not None, security=security)
    except BindError as exc:
        log.error("bind_failed", address=settings.address, error=str(exc))
        return None
    if decider is None:
        log.info("listening", host=settings.host, port=running.port, root=str(settings.root), threads=settings.threads)
    _log_security(log, settings, security)
    return running


def _open(settings: Settings, running: RunningServer | None, worker: int | None, log: Log) -> _Parts | None:
    """Open the decision log, the review queue and the custom lists, load the root (and its state store);
    None (logged; what was opened closed again, ``running`` stopped) when any fails."""
    import sqlite3

    from engine.audit.errors import AuditError
    from engine.audit.wiring import open_audit
    from engine.custom_lists.wiring import open_lists

    opened: list[Callable[[], None]] = [lambda: running.stop(0)] if running is not None else []

    def fail(event: str | None, **fields: Any) -> None:
        if event is not None:
            log.error(event, **fields)
        for close in reversed(opened):
            close()

    try:
        audit = open_audit(settings, worker=worker)
    except AuditError as exc:
        fail("audit_open_failed", error=str(exc))
        return None
    opened.append(audit.close)
    review = _open_review(settings, audit, worker, log)
    if review is False:
        fail(None)  # _open_review logged why
        return None
    if review is not None:
        opened.append(review.close)
    try:
        custom_lists, lists_refresher = open_lists(settings)
    except (AuditError, sqlite3.Error, OSError) as exc:
        fail("lists_open_failed", directory=str(settings.lists_dir), error=str(exc))
        return None
    try:
        decider, reloader = _load(settings, audit, custom_lists)
    except (StateUnavailable, MissingExtra) as exc:  # the state store (--state) cannot be opened
        fail("state_open_failed", state=settings.state, error=str(exc))
        return None
    if lists_refresher is not None:
        lists_refresher.start()  # after the load: the declarations say which lists hold IP ranges
    if settings.otlp_endpoint:  # per process, after any fork: the exporter's thread and channel do not survive one
        from engine.tracing import Tracing

        decider.tracing = Tracing.otlp(settings.otlp_endpoint)
        log.info("tracing", otlp_endpoint=settings.otlp_endpoint)
    parts = _Parts(decider, reloader, audit, running, lists_refresher=lists_refresher, review=review)
    if not decider.ready:
        last = reloader.last
        log.error("policy_load_failed", root=str(settings.root), problems=[str(p) for p in last.problems] if last else [])
        parts.abandon()
        return None
    return parts


def _start(settings: Settings, *, reuse_port: bool, worker: int | None, log: Log) -> _Parts | None:
    """Assemble one server process up to serving; None (logged, all closed again) when a part fails.

    A lone server binds first (health NOT_SERVING and Ping answer while it loads). A worker that
    shares the port with others binds only once it has loaded: the kernel spreads new
    connections over every listening worker, so a worker still loading would refuse the calls
    that land on it while the others already serve.
    """
    try:
        security = Security.from_settings(settings)
    except PolicyError as exc:
        log.error("security_config_failed", problems=[str(p) for p in exc.problems])
        return None
    running = None if reuse_port else _bind(settings, security, log)
    if not reuse_port and running is None:
        return None
    parts = _open(settings, running, worker, log)
    if parts is None:
        return None
    if parts.running is None:
        parts.running = _bind(settings, security, log, parts.decider)
        if parts.running is None:
            parts.abandon()
            return None
        parts.running.lists.attach(parts.lists_refresher)
    else:
        parts.running.lists.attach(parts.lists_refresher)
        parts.running.ready(parts.decider)
    parts.running.cases.bind(parts.review.store if parts.review is not None else None)
    if settings.metrics_port is not None and worker is None:  # workers: the parent serves the sum
        try:
            parts.exporter = _serve_metrics(settings, parts.decider.metrics.registry, log)
        except OSError:
            parts.abandon()
            return None
    _go_live(settings, security, parts, log)
    return parts


def _go_live(settings: Settings, security: Security, parts: _Parts, log: Log) -> None:
    """Start the background work (metrics, drift, hot reload) and say what is served."""
    decider, running = parts.decider, parts.running
    assert running is not None
    decider.metrics.start()  # applies the queued decision counts every second (engine/metrics.py)
    decider.drift.start()  # PSI gauges refreshed off the request path
    held = {f.name: f.state for f in parts.reloader.flows if f.state != "ok"}
    log.info("serving", port=running.port, flows=decider.flows(), audit=parts.audit.location, root=str(settings.root), held_back=held)
    if security.authz is not None and (unknown := security.authz.unknown_flows(decider.flows())):
        log.warning("authz_unknown_flows", callers=unknown, detail="the authorization file grants flows this server does not have")
    _start_reloading(parts.reloader, decider, running, parts.review)


def _run_one(settings: Settings, *, reuse_port: bool, stop: threading.Event, worker: int | None = None) -> int:
    """One server process: open the decision log, load, serve until ``stop``, stop gracefully; the exit code."""
    log = _log.bind(pid=os.getpid())
    parts = _start(settings, reuse_port=reuse_port, worker=worker, log=log)
    if parts is None:
        return 1
    stop.wait()
    log.info("stopping", grace_seconds=settings.grace_seconds)
    parts.stop(settings.grace_seconds)
    log.info("stopped")
    return 0


def _open_review(settings: Settings, audit: Audit, worker: int | None, log: Log) -> Review | Literal[False] | None:
    """The review queue (engine/cases/wiring.py), None when off, False when it cannot open (logged)."""
    from engine.cases.wiring import open_review

    try:
        return open_review(settings, audit, worker=worker)
    except PolicyError as exc:
        log.error("review_config_failed", problems=[str(p) for p in exc.problems])
    except VerdictError as exc:
        log.error("case_store_open_failed", error=str(exc))
    return False


def _serve_metrics(settings: Settings, registry: CollectorRegistry, log: Log) -> Any:
    """Serve ``registry`` on ``settings.metrics_host:metrics_port``/metrics; logs and re-raises OSError."""
    from engine.metrics import serve_metrics

    assert settings.metrics_port is not None
    try:
        exporter, port = serve_metrics(registry, settings.metrics_port, settings.metrics_host)
    except OSError as exc:
        log.error("metrics_bind_failed", host=settings.metrics_host, port=settings.metrics_port, error=str(exc))
        raise
    log.info("metrics_listening", host=settings.metrics_host, port=port, path="/metrics")
    if not is_loopback(settings.metrics_host):
        log.warning("metrics_public", host=settings.metrics_host, detail="/metrics is plain HTTP without authentication")
    return exporter


def _log_security(log: structlog.typing.FilteringBoundLogger, settings: Settings, security: Security) -> None:
    """Say at start how callers are authenticated; warn loudly when they are not."""
    if not security.authenticates:
        log.warning(
            "unauthenticated",
            host=settings.host,
            tls=security.tls,
            detail="callers are not authenticated: anyone who can reach this address may call every method "
            "(see docs/security.md: --tls-client-ca or --auth-tokens, and --authz)",
        )
    if not security.tls and not is_loopback(settings.host):
        log.warning("insecure", host=settings.host, detail="plaintext on a non-loopback address (--insecure)")
    log.info("security", **security.describe())


def _start_reloading(reloader: Reloader, decider: Decider, running: RunningServer, review: Review | None = None) -> None:
    """Hot reload (engine/runtime/reload.py): watch the root, reload on SIGHUP, report through PolicyService and health;
    the review queue re-reads its review.yaml files (a bad one keeps the last good config: the reload reports it, via lint)."""

    def on_activation(status: ReloadStatus) -> None:
        if status.result != "error":  # a crash changed nothing
            running.set_flow_health({f.name: f.serving for f in status.flows})
            if review is not None:
                review.reload_config(reloader.root)

    if reloader.last is not None:
        on_activation(reloader.last)
    reloader.on_activation = on_activation
    if threading.current_thread() is threading.main_thread():
        reloader.install_sighup()
    reloader.start(initial=False)  # the start check ran already; the watcher sees anything saved since
    running.policy_status.attach(decider, reloader)


def serve(settings: Settings) -> int:
    """Run the server until SIGTERM/SIGINT; the process exit code (0 after a clean stop)."""
    if settings.workers > 1:
        return run_workers(settings, _run_one, _serve_metrics)
    stop = threading.Event()
    on_signals(lambda signum: stop.set())
    return _run_one(settings, reuse_port=False, stop=stop)
