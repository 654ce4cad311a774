"""The worker processes of ``verdict serve --workers N``: forked before any gRPC object exists.

``run_workers`` holds the port with SO_REUSEPORT (``reserved_port``), forks ``settings.workers``
processes that each run one server on it (the composition root's ``run_one``, ``engine.app``),
forwards SIGTERM, SIGINT and SIGHUP to them, and returns 0 when every worker exits 0. gRPC Python
supports ``fork`` only before any gRPC object exists (grpc/examples/python/multiprocessing), so
this module creates none: what runs in a worker is passed in. With ``metrics_port`` the workers
write prometheus-client's multiprocess files to a fresh private directory and the parent serves
their sum (``serve_metrics``, passed in), removing the directory when the workers have stopped.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, Protocol

import structlog

from engine.settings import Settings

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

__all__ = ["on_signals", "reserved_port", "run_workers"]

_log = structlog.get_logger("verdict.server")  # the name the start-up and stop events have always had


class RunOne(Protocol):
    """One server process until stopped; its exit code (``engine.app._run_one``)."""

    def __call__(self, settings: Settings, *, reuse_port: bool, stop: threading.Event, worker: int | None = None) -> int: ...


ServeMetrics = Callable[[Settings, "CollectorRegistry", Any], Any]  # (settings, registry, log) -> exporter


def on_signals(handler: Callable[[int], None]) -> None:
    """Call ``handler(signum)`` on SIGTERM and SIGINT (from the main thread)."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: handler(signum))


@contextlib.contextmanager
def reserved_port(host: str, port: int) -> Iterator[int]:
    """Hold ``host:port`` (a free one when 0) with SO_REUSEPORT so that workers can share it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host.strip("[]"), port))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def run_workers(settings: Settings, run_one: RunOne, serve_metrics: ServeMetrics) -> int:
    """Fork ``settings.workers`` server processes on one port, each running ``run_one``; forward
    signals; 0 if all exit 0.

    With ``metrics_port`` the workers keep their metrics in a fresh private directory and this
    parent serves their sum (``serve_metrics``); the directory is removed at the end.
    """
    if settings.metrics_port is None:
        return _fork_workers(settings, None, run_one, serve_metrics)
    from engine.metrics import enable_multiprocess

    directory = tempfile.mkdtemp(prefix="verdict-metrics-")  # mode 0700, empty: no stale worker files
    try:
        enable_multiprocess(directory)
        return _fork_workers(settings, directory, run_one, serve_metrics)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _fork_workers(settings: Settings, metrics_dir: str | None, run_one: RunOne, serve_metrics: ServeMetrics) -> int:
    with reserved_port(settings.host, settings.port) as port:
        shared = settings.model_copy(update={"port": port})
        children: list[int] = []
        for index in range(settings.workers):
            pid = os.fork()
            if pid == 0:  # child: no gRPC object exists yet in this process
                code = 1
                try:
                    structlog.contextvars.bind_contextvars(worker=index)
                    stop = threading.Event()
                    on_signals(lambda signum: stop.set())  # noqa: B023 (a forked child runs one iteration: this `stop` is its own)
                    code = run_one(shared, reuse_port=True, stop=stop, worker=index)
                finally:
                    os._exit(code)
            children.append(pid)
        _log.info("workers_started", port=port, workers=len(children), pids=children)
        exporter = None
        if metrics_dir is not None:  # after forking: the children inherit no HTTP thread
            from engine.metrics import multiprocess_registry

            try:
                exporter = serve_metrics(settings, multiprocess_registry(metrics_dir), _log.bind(pid=os.getpid()))
            except OSError:
                for child in children:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(child, signal.SIGTERM)

        def forward(signum: int) -> None:
            for child in children:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(child, signum)

        on_signals(forward)
        signal.signal(signal.SIGHUP, lambda signum, frame: forward(signum))  # each worker reloads
        codes = [os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) for child in children]
        if exporter is not None:
            exporter.shutdown()
        elif metrics_dir is not None:
            codes.append(1)  # /metrics was asked for and could not be served
    _log.info("workers_stopped", exit_codes=codes)
    return 0 if all(code == 0 for code in codes) else 1
