"""The gRPC server: DecisionService, standard health, reflection, graceful stop, worker processes.

Start-up order (one process): bind and start with health NOT_SERVING, load, lint and self-test
every flow and model flow by flow (engine/activation.py), then mark SERVING. A request that arrives
while loading gets UNAVAILABLE. The server starts when at least one flow loads; a flow with
errors is reported (log, status, health) and not served until its files are fixed. A worker of
several loads first and only then joins the shared port. On SIGTERM or SIGINT health turns
NOT_SERVING, new calls are refused and in-flight calls get ``grace_seconds`` to finish.

Health (``grpc.health.v1``): ``""`` and ``verdict.v1.DecisionService`` are SERVING while the
server decides requests for at least one flow; ``verdict.v1.DecisionService/<flow>`` is SERVING
while that flow is decided (by what is on disk or, when its files have errors, by its last good
version) and NOT_SERVING when it has no good version (or was removed). Updated after every reload.

``workers > 1`` forks that many processes that share the port through SO_REUSEPORT. gRPC Python
supports ``fork`` only before any gRPC object exists, so the parent forks first and creates no
server, channel or health object of its own (grpc/examples/python/multiprocessing).

Metrics (``metrics_port``): a lone server serves its own registry on ``/metrics``; with workers
the parent makes a private directory for prometheus-client's multiprocess files before forking,
serves the sum over workers itself, and removes the directory when the workers have stopped
(engine/metrics.py, docs/operations.md).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent import futures
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

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
    from prometheus_client import CollectorRegistry

    from engine.audit.wiring import Audit
    from engine.reload import Reloader, ReloadStatus
    from engine.service import Decider as CoreDecider

__all__ = ["RunningServer", "flow_health_name", "serve", "start_server"]

_log = structlog.get_logger("verdict.server")
_HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


def flow_health_name(flow: str) -> str:
    """The health service name of one flow, e.g. ``verdict.v1.DecisionService/credit_application``."""
    return f"{SERVICE_NAME}/{flow}"


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
    _flows: set[str] = field(default_factory=set)  # flows with a health status

    def ready(self, decider: Decider) -> None:
        """Serve ``decider`` and report SERVING, overall and per service (and per flow it serves)."""
        self.servicer.ready(decider)
        if hasattr(decider, "metrics"):  # the core Decider (test fakes may not have one)
            self.policy_status.attach(decider)  # type: ignore[arg-type]
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        policies = getattr(decider, "policies", None) if getattr(decider, "ready", False) else None
        if policies is not None:
            self.set_flow_health({name: True for name in policies.flows} | {name: False for name in policies.unavailable})

    def set_flow_health(self, serving: Mapping[str, bool]) -> None:
        """Set ``verdict.v1.DecisionService/<flow>`` for each flow (True: SERVING); flows gone get NOT_SERVING."""
        for name in self._flows - set(serving):
            self.health.set(flow_health_name(name), health_pb2.HealthCheckResponse.NOT_SERVING)
        for name, up in serving.items():
            status = health_pb2.HealthCheckResponse.SERVING if up else health_pb2.HealthCheckResponse.NOT_SERVING
            self.health.set(flow_health_name(name), status)
        self._flows = set(serving)

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
        interceptors=list(security.interceptors()),
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


def _load(settings: Settings, audit: Audit) -> tuple[CoreDecider, Reloader]:
    """The core and its reloader after the first check of the root (flow by flow; see engine/activation.py).

    The decider is not ready (``decider.ready`` False) when no flow could be loaded.
    """
    from engine.reload import Reloader
    from engine.service import Decider
    from engine.state.sqlite import open_store

    decider = Decider(None, sink=audit.sink, idempotency=audit.idempotency, state=open_store(settings.state))
    audit.bind(lambda: decider.policies)  # the decision log masks each flow's sensitive fields
    reloader = Reloader(settings.root, decider, interval=settings.reload_interval)
    reloader.reload("start")
    return decider, reloader


# Long (66 lines): the application's assembly (log, load, serve, stop); it moves out of the transport into
# engine/app.py with the restructuring (issue 13, item 3).
def _run_one(settings: Settings, *, reuse_port: bool, stop: threading.Event, worker: int | None = None) -> int:  # noqa: C901, PLR0915 - the composition root, one step per part it assembles; moves to engine/app.py with issue 13 item 3
    """One server process: open the decision log, load, serve until ``stop``, stop gracefully.

    A lone server binds first (health NOT_SERVING and Ping answer while it loads). A worker that
    shares the port with others binds only once it has loaded: the kernel spreads new
    connections over every listening worker, so a worker still loading would refuse the calls
    that land on it while the others already serve.
    """
    from engine.audit.errors import AuditError
    from engine.audit.wiring import open_audit
    from engine.errors import StateUnavailable
    from engine.extras import MissingExtra

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
        decider, reloader = _load(settings, audit)
    except (StateUnavailable, MissingExtra) as exc:  # the state store (--state) cannot be opened
        log.error("state_open_failed", state=settings.state, error=str(exc))
        if running is not None:
            running.stop(0)
        audit.close()
        return 1
    if audit.sink is not None:
        audit.sink.writer.on_commit = decider.metrics.commit
    if not decider.ready:
        last = reloader.last
        log.error("policy_load_failed", root=str(settings.root), problems=[str(p) for p in last.problems] if last else [])
        if running is not None:
            running.stop(0)
        decider.close()
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
    exporter = None
    if settings.metrics_port is not None and worker is None:  # workers: the parent serves the sum
        try:
            exporter = _serve_metrics(settings, decider.metrics.registry, log)
        except OSError:
            running.stop(0)
            decider.close()
            audit.close()
            return 1
    decider.metrics.start()  # applies the queued decision counts every second (engine/metrics.py)
    decider.drift.start()  # PSI gauges refreshed off the request path
    held = {f.name: f.state for f in reloader.flows if f.state != "ok"}
    log.info("serving", port=running.port, flows=decider.flows(), audit=audit.location, root=str(settings.root), held_back=held)
    if security.authz is not None and (unknown := security.authz.unknown_flows(decider.flows())):
        log.warning("authz_unknown_flows", callers=unknown, detail="the authorization file grants flows this server does not have")
    _start_reloading(reloader, decider, running)
    stop.wait()
    log.info("stopping", grace_seconds=settings.grace_seconds)
    reloader.stop()
    running.stop(settings.grace_seconds)
    decider.close()  # finish the queued shadow evaluations: they are logged too
    audit.close()  # after the last in-flight call: everything answered is in the log
    decider.metrics.stop()  # the last counts reach the registry (and a worker's files)
    if exporter is not None:
        exporter.shutdown()
    log.info("stopped")
    return 0


def _serve_metrics(settings: Settings, registry: CollectorRegistry, log: structlog.typing.FilteringBoundLogger) -> Any:
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


def _start_reloading(reloader: Reloader, decider: CoreDecider, running: RunningServer) -> None:
    """Hot reload (engine/reload.py): watch the root, reload on SIGHUP, report through PolicyService and health."""

    def on_activation(status: ReloadStatus) -> None:
        if status.result != "error":  # a crash changed nothing
            running.set_flow_health({f.name: f.serving for f in status.flows})

    if reloader.last is not None:
        on_activation(reloader.last)
    reloader.on_activation = on_activation
    if threading.current_thread() is threading.main_thread():
        reloader.install_sighup()
    reloader.start(initial=False)  # the start check ran already; the watcher sees anything saved since
    running.policy_status.attach(decider, reloader)


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
    """Fork ``settings.workers`` server processes on one port; forward signals; 0 if all exit 0.

    With ``metrics_port`` the workers keep their metrics in a fresh private directory and this
    parent serves their sum; the directory is removed at the end.
    """
    if settings.metrics_port is None:
        return _fork_workers(settings, None)
    from engine.metrics import enable_multiprocess

    directory = tempfile.mkdtemp(prefix="verdict-metrics-")  # mode 0700, empty: no stale worker files
    try:
        enable_multiprocess(directory)
        return _fork_workers(settings, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _fork_workers(settings: Settings, metrics_dir: str | None) -> int:
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
                    _on_signals(lambda signum: stop.set())  # noqa: B023 (a forked child runs one iteration: this `stop` is its own)
                    code = _run_one(shared, reuse_port=True, stop=stop, worker=index)
                finally:
                    os._exit(code)
            children.append(pid)
        _log.info("workers_started", port=port, workers=len(children), pids=children)
        exporter = None
        if metrics_dir is not None:  # after forking: the children inherit no HTTP thread
            from engine.metrics import multiprocess_registry

            try:
                exporter = _serve_metrics(settings, multiprocess_registry(metrics_dir), _log.bind(pid=os.getpid()))
            except OSError:
                for child in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGTERM)

        def forward(signum: int) -> None:
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signum)

        _on_signals(forward)
        signal.signal(signal.SIGHUP, lambda signum, frame: forward(signum))  # each worker reloads
        codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
        if exporter is not None:
            exporter.shutdown()
        elif metrics_dir is not None:
            codes.append(1)  # /metrics was asked for and could not be served
    _log.info("workers_stopped", exit_codes=codes)
    return 0 if all(code == 0 for code in codes) else 1


def serve(settings: Settings) -> int:
    """Run the server until SIGTERM/SIGINT; the process exit code (0 after a clean stop)."""
    if settings.workers > 1:
        return _run_workers(settings)
    stop = threading.Event()
    _on_signals(lambda signum: stop.set())
    return _run_one(settings, reuse_port=False, stop=stop)
