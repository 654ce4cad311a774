"""Safe hot reload: load, compile and self-test a new policy state; swap it in only if all pass.

A ``Reloader`` watches a policy root (``policies/``, ``rules/``, ``model_artifacts/``) by polling
file sizes and modification times, and reloads on SIGHUP or on request. A reload:

1. loads and compiles everything (every problem with file and line; model files are verified
   against their sha256; released versions against their locks);
2. runs every policy test (``verdict test``) against the new state;
3. only if both pass, swaps the new state into the ``Decider`` atomically.

Otherwise the last good state keeps serving, the problems are logged (structlog, event
``reload_refused``, each with its file and line) and kept for the status RPC, and the metrics
``reloads{result=refused}`` and ``reload_ok`` (0) say so. Health is never touched: a server that
serves a good state stays SERVING. Reloads are serialized; requests never wait for one.
"""

from __future__ import annotations

import hashlib
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from engine.errors import Problem
from engine.loader import load
from engine.metrics import Metrics
from engine.policytest import run_root
from engine.service import Decider

__all__ = ["ReloadStatus", "Reloader", "fingerprint"]

_log = structlog.get_logger("verdict.reload")
WATCHED = ("policies", "rules", "model_artifacts")


def fingerprint(root: Path) -> str:
    """A hash of the path, size and modification time of every file under the watched directories."""
    h = hashlib.sha256()
    for name in WATCHED:
        base = root / name
        if not base.is_dir():
            continue
        for path in sorted(base.rglob("*")):
            try:
                st = path.stat()
            except OSError:  # removed while walking: the next poll sees the settled tree
                continue
            if path.is_file():
                h.update(f"{path.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\n".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class ReloadStatus:
    """The outcome of one reload attempt."""

    ok: bool
    trigger: str  # "start", "watch", "sighup" or "request"
    at: float  # unix time the attempt finished
    revision: str  # the candidate state's revision ("" when it did not load)
    serving: str  # the revision serving after the attempt
    problems: tuple[Problem, ...] = ()
    tests_run: int = 0
    tests_failed: int = 0
    duration_ms: float = 0.0
    message: str = ""
    failures: tuple[str, ...] = field(default=())  # failed test cases, "file:line flow version :: name"


class Reloader:
    """Reloads a Decider's policies from a root when files change, on SIGHUP, or on request."""

    def __init__(
        self,
        root: Path,
        decider: Decider,
        *,
        interval: float = 0.5,
        metrics: Metrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root).resolve()
        self._decider = decider
        self.interval = interval
        self.metrics = metrics if metrics is not None else decider.metrics
        self._clock = clock
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pending: str | None = None
        self._thread: threading.Thread | None = None
        self._seen = fingerprint(self.root)  # the tree the serving state (or the last attempt) was read from
        self.last: ReloadStatus | None = None
        self.serving_since = clock()  # when the serving state was activated

    @property
    def serving_revision(self) -> str:
        return self._decider.policies.revision if self._decider.ready else ""

    def reload(self, trigger: str = "request") -> ReloadStatus:
        """Load, compile and self-test the root; swap it in if all pass. Never raises for bad files."""
        with self._lock:
            started = time.perf_counter()
            self._seen = fingerprint(self.root)
            result = load(self.root)
            problems = tuple(result.errors)
            tests_run = tests_failed = 0
            failures: tuple[str, ...] = ()
            candidate = result.policies
            if candidate is not None:
                report = run_root(self.root, policies=candidate)
                tests_run, tests_failed = len(report.results), len(report.failed)
                failures = tuple(f"{r.suite}:{r.line} {r.id}: {'; '.join(r.failures)}" for r in report.failed)
                problems += tuple(p for p in report.problems if p.severity == "error")
            ok = candidate is not None and not problems and not tests_failed
            if ok:
                self._decider.swap(candidate)
            status = ReloadStatus(
                ok=ok,
                trigger=trigger,
                at=self._clock(),
                revision=candidate.revision if candidate is not None else "",
                serving=self.serving_revision,
                problems=problems,
                tests_run=tests_run,
                tests_failed=tests_failed,
                duration_ms=(time.perf_counter() - started) * 1000.0,
                message=_summary(ok, problems, tests_run, tests_failed),
                failures=failures,
            )
            self.last = status
            self._account(status)
            return status

    def _account(self, status: ReloadStatus) -> None:
        self.metrics.inc("reloads", result="ok" if status.ok else "refused", trigger=status.trigger)
        self.metrics.set("reload_ok", 1 if status.ok else 0)
        if status.ok:
            self.serving_since = status.at
            self.metrics.set("reload_last_good_unixtime", status.at)
            _log.info("reload_ok", trigger=status.trigger, revision=status.revision, tests=status.tests_run, ms=round(status.duration_ms, 1))
        else:
            _log.error(
                "reload_refused",
                trigger=status.trigger,
                serving=status.serving,
                reason=status.message,
                problems=[str(p) for p in status.problems],
                failed_tests=list(status.failures),
            )

    def check(self) -> ReloadStatus | None:
        """Reload if the watched files changed since the last attempt (and have settled)."""
        now = fingerprint(self.root)
        if now == self._seen:
            return None
        time.sleep(min(0.05, self.interval))  # let a writer finish a multi-file save
        if fingerprint(self.root) != now:
            return None  # still changing: the next poll will see it settled
        return self.reload("watch")

    def request(self, trigger: str = "request") -> None:
        """Ask the watcher thread to reload as soon as it can (safe from a signal handler)."""
        self._pending = trigger
        self._wake.set()

    def install_sighup(self) -> None:
        """Reload on SIGHUP (call from the main thread)."""
        signal.signal(signal.SIGHUP, lambda signum, frame: self.request("sighup"))

    def start(self, *, initial: bool = True) -> None:
        """Start the watcher thread (polls every `interval` seconds; 0 only serves requests/SIGHUP).

        With `initial`, the thread first reloads once (trigger "start"): that runs the policy tests
        against what is on disk, reports it in the status, and picks up anything saved between
        the server's first load and this call.
        """
        if self._thread is not None:
            return
        if initial:
            self.request("start")
        self._thread = threading.Thread(target=self._run, name="verdict-reload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            woke = self._wake.wait(self.interval if self.interval > 0 else None)
            if self._stop.is_set():
                return
            try:
                if woke:
                    self._wake.clear()
                    trigger, self._pending = self._pending or "request", None
                    self.reload(trigger)
                elif self.interval > 0:
                    self.check()
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any surprise
                self.metrics.inc("reloads", result="error", trigger="watch")
                _log.exception("reload_crashed", error=f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def _summary(ok: bool, problems: tuple[Problem, ...], tests_run: int, tests_failed: int) -> str:
    if ok:
        return f"activated; {tests_run} policy tests passed"
    if problems:
        first = problems[0]
        where = first.path + (f":{first.line}" if first.line else "")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"refused, the last good state keeps serving: {where}: [{first.code}] {first.message}{more}"
    return f"refused, the last good state keeps serving: {tests_failed} of {tests_run} policy tests failed"
