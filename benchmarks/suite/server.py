"""A ``verdict serve`` process for the gRPC cases: started, waited for, stopped.

The server runs exactly as an operator starts it (``python -m engine.cli serve``), with
``--workers N`` (forked before any gRPC object, sharing the port through SO_REUSEPORT), on a free
loopback port, with the decision log off (its cost is measured by benchmarks/audit_log.py) and
request-id idempotency off. Ready means every worker logged ``serving``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import TracebackType

__all__ = ["ConfigServerProcess", "PlainEchoProcess", "ServeProcess", "ServerStartError"]


class ServerStartError(RuntimeError):
    """The server did not become ready."""


class ServeProcess:
    """``with ServeProcess(root, workers=2) as s: s.target, s.pids``."""

    def __init__(
        self, root: Path, *, workers: int = 1, workdir: Path, project: Path, timeout: float = 180.0,
        threads: int | None = None, extra: tuple[str, ...] = (),
    ) -> None:
        self.root = root
        self.extra = extra  # more ``verdict serve`` options (e.g. ``--state redis://...``)
        self.workers = workers
        self.threads = threads  # --threads (None: verdict serve's default)
        self.workdir = workdir
        self.project = project
        self.timeout = timeout
        self.port: int | None = None
        self.pids: list[int] = []
        self._ready = threading.Event()
        self._failed: str | None = None
        self._lines: list[str] = []
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        for raw in self._proc.stderr:
            line = raw.decode(errors="replace").strip()
            if len(self._lines) < 200:
                self._lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            name = event.get("event")
            if name == "serving":
                self.port = int(event["port"])
                self.pids.append(int(event["pid"]))
                if len(self.pids) >= self.workers:
                    self._ready.set()
            elif name in ("bind_failed", "policy_load_failed", "audit_open_failed"):
                self._failed = line
                self._ready.set()
        self._ready.set()  # the process ended

    def command(self) -> list[str]:
        """The server's command line."""
        return [
            sys.executable, "-m", "engine.cli", "serve", "--host", "127.0.0.1", "--port", "0",
            "--root", str(self.root), "--workers", str(self.workers), "--audit", "off",
            "--idempotency-window", "0", "--log-format", "json", "--log-level", "info", *self.extra,
            *(["--threads", str(self.threads)] if self.threads is not None else []),
        ]

    def __enter__(self) -> ServeProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        env = dict(os.environ, PYTHONPATH=str(self.project))
        self._proc = subprocess.Popen(cmd, cwd=self.workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(self.timeout) or self._failed or len(self.pids) < self.workers:
            self.stop()
            tail = "\n".join(self._lines[-20:])
            raise ServerStartError(f"{' '.join(cmd[2:5])} (workers {self.workers}) did not become ready:\n{tail}")
        return self

    def stop(self) -> None:
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


class PlainEchoProcess(ServeProcess):
    """The stock grpcio echo server of ``grpc_echo_plain`` (benchmarks/suite/plain_echo.py), one process."""

    def __init__(self, *, workdir: Path, project: Path, timeout: float = 60.0) -> None:
        super().__init__(Path("."), workers=1, workdir=workdir, project=project, timeout=timeout)

    def command(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks.suite.plain_echo"]


class ConfigServerProcess(ServeProcess):
    """A candidate server configuration (benchmarks/suite/config_server.py): ``mode`` sync or aio, one process."""

    def __init__(self, root: Path, *, mode: str, threads: int, workdir: Path, project: Path, timeout: float = 180.0) -> None:
        super().__init__(root, workers=1, workdir=workdir, project=project, timeout=timeout, threads=threads)
        self.mode = mode

    def command(self) -> list[str]:
        return [sys.executable, "-m", "benchmarks.suite.config_server", self.mode, str(self.threads), str(self.root)]
