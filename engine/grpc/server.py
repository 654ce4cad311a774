"""The gRPC server: DecisionService, standard health, reflection, graceful stop, worker processes.

Start-up order (one process): bind and start with health NOT_SERVING, load and verify every
flow and model, then mark SERVING (overall and per service). A request that arrives while
loading gets UNAVAILABLE. A worker of several loads first and only then joins the shared port. On SIGTERM or SIGINT health turns NOT_SERVING, new calls are refused and in-flight
calls get ``grace_seconds`` to finish.

``workers > 1`` forks that many processes that share the port through SO_REUSEPORT. gRPC Python
supports ``fork`` only before any gRPC object exists, so the parent forks first and creates no
server, channel or health object of its own (grpc/examples/python/multiprocessing).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engine.errors import PolicyError
from engine.grpc.auth import Security
from engine.grpc.policy_status import POLICY_SERVICE_NAME, PolicyStatusServicer, policy_handlers
from engine.grpc.servicer import SERVICE_NAME, Decider, DecisionServicer, handlers
from engine.settings import Settings, is_loopback

if TYPE_CHECKING:
    from engine.audit.wiring import Audit
    from engine.reload import Reloader
    from engine.service import Decider as CoreDecider

__all__ = ["RunningServer", "serve", "start_server"]

_log = structlog.get_logger("verdict.server")
_HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


class BindError(OSError):
    """The server could not bind its address (in use, or not a local address)."""


@dataclass
class RunningServer:
    """A started server and the handles to make it ready and to stop it."""

    server: grpc.Server
    port: int
    servicer: DecisionServicer
    health: health.HealthServicer
    policy_status: PolicyStatusServicer = field(default_factory=PolicyStatusServicer)

    def ready(self, decider: Decider) -> None:
        """Serve ``decider`` and report SERVING, overall and per service."""
        self.servicer.ready(decider)
        if hasattr(decider, "metrics"):  # the core Decider (test fakes may not have one)
            self.policy_status.attach(decider)  # type: ignore[arg-type]
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace: float | None) -> None:
        """Report NOT_SERVING, refuse new calls, give in-flight ones ``grace`` seconds; block until done."""
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()


def start_server(
    settings: Settings, decider: Decider | None = None, *, reuse_port: bool = False, security: Security | None = None
) -> RunningServer:
    """Build, bind and start a server; SERVING at once if ``decider`` is given, else after ``ready``.

    ``security`` (TLS credentials, tokens, authorization) is read from ``settings`` when not given;
    raises ``PolicyError`` when those files are unreadable or invalid, ``BindError`` when the
    address cannot be bound.
    """
    if security is None:
        security = Security.from_settings(settings)
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),  # off: a port in use is an error, not shared
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="verdict-rpc"),
        options=options,
        interceptors=security.interceptors(),
    )
    servicer = DecisionServicer()
    method_handlers = handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, method_handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, method_handlers)
    policy_status = PolicyStatusServicer()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(POLICY_SERVICE_NAME, policy_handlers(policy_status)),)
    )

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, POLICY_SERVICE_NAME, _HEALTH_SERVICE, reflection.SERVICE_NAME), server
    )

    try:
        if security.tls:
            port = server.add_secure_port(settings.address, security.server_credentials())
        else:
            port = server.add_insecure_port(settings.address)
    except RuntimeError as exc:  # grpcio raises RuntimeError when it cannot bind
        raise BindError(f"cannot listen on {settings.address}: {exc}") from None
    if port == 0:
        raise BindError(f"cannot listen on {settings.address}")
    server.start()
    running = RunningServer(server=server, port=port, servicer=servicer, health=health_servicer, policy_status=policy_status)
    if decider is not None:
        running.ready(decider)
    return running


def _load(root: Path, audit: Audit | None = None) -> CoreDecider:
    from engine.service import load_decider

    if audit is None:
        return load_decider(root)
    decider = load_decider(root, sink=audit.sink, idempotency=audit.idempotency)
    audit.bind(lambda: decider.policies)  # the decision log masks each flow's sensitive fields
    return decider


def _run_one(settings: Settings, *, reuse_port: bool, stop: threading.Event, worker: int | None = None) -> int:
    """One server process: open the decision log, load, serve until ``stop``, stop gracefully.

    A lone server binds first (health NOT_SERVING and Ping answer while it loads). A worker that
    shares the port with others binds only once it has loaded: the kernel spreads new
    connections over every listening worker, so a worker still loading would refuse the calls
    that land on it while the others already serve.
    """
    from engine.audit.errors import AuditError
    from engine.audit.wiring import open_audit

    log = _log.bind(pid=os.getpid())
    try:
        security = Security.from_settings(settings)
    except PolicyError as exc:
        log.error("security_config_failed", problems=[str(p) for p in exc.problems])
        return 1
    running: RunningServer | None = None
    if not reuse_port:
        try:
            running = start_server(settings, security=security)
        except BindError as exc:
            log.error("bind_failed", address=settings.address, error=str(exc))
            return 1
        log.info("listening", host=settings.host, port=running.port, root=str(settings.root), threads=settings.threads)
        _log_security(log, settings, security)
    try:
        audit = open_audit(settings, worker=worker)
    except AuditError as exc:
        log.error("audit_open_failed", error=str(exc))
        if running is not None:
            running.stop(0)
        return 1
    try:
        decider = _load(settings.root, audit)
    except PolicyError as exc:
        log.error("policy_load_failed", root=str(settings.root), problems=[str(p) for p in exc.problems])
        if running is not None:
            running.stop(0)
        audit.close()
        return 1
    if running is None:
        try:
            running = start_server(settings, decider, reuse_port=True, security=security)
        except BindError as exc:
            log.error("bind_failed", address=settings.address, error=str(exc))
            decider.close()
            audit.close()
            return 1
        _log_security(log, settings, security)
    else:
        running.ready(decider)
    log.info("serving", port=running.port, flows=decider.flows(), audit=audit.location)
    if security.authz is not None and (unknown := security.authz.unknown_flows(decider.flows())):
        log.warning("authz_unknown_flows", callers=unknown, detail="the authorization file grants flows this server does not have")
    reloader = _start_reloading(settings, decider, running)
    stop.wait()
    log.info("stopping", grace_seconds=settings.grace_seconds)
    reloader.stop()
    running.stop(settings.grace_seconds)
    decider.close()  # finish the queued shadow evaluations: they are logged too
    audit.close()  # after the last in-flight call: everything answered is in the log
    log.info("stopped")
    return 0


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


def _start_reloading(settings: Settings, decider: CoreDecider, running: RunningServer) -> Reloader:
    """Hot reload (engine/reload.py): watch the root, reload on SIGHUP, report through PolicyService."""
    from engine.reload import Reloader

    reloader = Reloader(settings.root, decider, interval=settings.reload_interval)
    if threading.current_thread() is threading.main_thread():
        reloader.install_sighup()
    reloader.start()
    running.policy_status.attach(decider, reloader)
    return reloader


def _on_signals(handler: Callable[[int], None]) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: handler(signum))


@contextlib.contextmanager
def _reserved_port(host: str, port: int) -> Iterator[int]:
    """Hold ``host:port`` (a free one when 0) with SO_REUSEPORT so that workers can share it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _run_workers(settings: Settings) -> int:
    """Fork ``settings.workers`` server processes on one port; forward signals; 0 if all exit 0."""
    with _reserved_port(settings.host, settings.port) as port:
        shared = settings.model_copy(update={"port": port})
        children: list[int] = []
        for index in range(settings.workers):
            pid = os.fork()
            if pid == 0:  # child: no gRPC object exists yet in this process
                code = 1
                try:
                    structlog.contextvars.bind_contextvars(worker=index)
                    stop = threading.Event()
                    _on_signals(lambda signum: stop.set())
                    code = _run_one(shared, reuse_port=True, stop=stop, worker=index)
                finally:
                    os._exit(code)
            children.append(pid)
        _log.info("workers_started", port=port, workers=len(children), pids=children)

        def forward(signum: int) -> None:
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signum)

        _on_signals(forward)
        signal.signal(signal.SIGHUP, lambda signum, frame: forward(signum))  # each worker reloads
        codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
    _log.info("workers_stopped", exit_codes=codes)
    return 0 if all(code == 0 for code in codes) else 1


def serve(settings: Settings) -> int:
    """Run the server until SIGTERM/SIGINT; the process exit code (0 after a clean stop)."""
    if settings.workers > 1:
        return _run_workers(settings)
    stop = threading.Event()
    _on_signals(lambda signum: stop.set())
    return _run_one(settings, reuse_port=False, stop=stop)
