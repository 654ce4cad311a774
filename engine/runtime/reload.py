"""Safe hot reload, flow by flow: load, lint and self-test the root; swap in every flow that passes.

A ``Reloader`` watches a policy root (``policies/``, ``rules/``, ``model_artifacts/``, ``lists/``) by polling
file sizes and modification times, and reloads on SIGHUP or on request. A reload
(``engine.policy.activation.check``):

1. loads and compiles everything (every problem with file and line; model files are verified
   against their sha256; released versions against their locks) and lints it (``verdict lint``:
   its errors block like load errors, its warnings are reported);
2. runs every policy test (``verdict test``) against the new state;
3. swaps a state into the ``Decider`` atomically in which every flow without an error serves
   what is on disk, and every flow with one keeps its last good versions (or, at start, is not
   loaded and answers FAILED_PRECONDITION).

Any failure — a problem, a failing test, a lint error, or an exception raised while checking (event
``reload_crashed``; the state is then left untouched) — is reported the same ways: the log (events
``reload_refused`` / ``reload_crashed``, with every problem by file and line), the status RPC
(``ReloadStatus.ok`` False; each flow's state) and the metrics ``reloads{result=refused|error}``,
``reload_ok`` 0 and ``flow_ok{flow}`` 0 for each held-back flow. Reloads are serialized; requests
never wait for one. ``on_activation`` (if given) is called after every reload with its outcome
(the server sets each flow's health status from it).
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

from engine.custom_lists.snapshot import ListView
from engine.errors import Problem
from engine.metrics import Metrics
from engine.policy import activation
from engine.policy.activation import FlowHealth
from engine.policy.documents import ROOT_DIRS
from engine.runtime.service import Decider

__all__ = ["ReloadStatus", "Reloader", "fingerprint"]

_log = structlog.get_logger("verdict.reload")
WATCHED = ROOT_DIRS  # engine.policy.documents: every directory a decision reads


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

    ok: bool  # True only when nothing failed: every flow serves what is on disk
    trigger: str  # "start", "watch", "sighup" or "request"
    at: float  # unix time the attempt finished
    revision: str  # the candidate state's revision ("" when it did not all load)
    serving: str  # the revision serving after the attempt
    problems: tuple[Problem, ...] = ()  # every error (load, lint, test set-up), or the crash
    tests_run: int = 0
    tests_failed: int = 0
    duration_ms: float = 0.0
    message: str = ""
    failures: tuple[str, ...] = field(default=())  # failed test cases, "file:line flow version :: name"
    result: str = "ok"  # "ok", "refused" (something failed; the good flows were activated) or "error" (the check crashed)
    warnings: tuple[Problem, ...] = ()  # lint warnings
    flows: tuple[FlowHealth, ...] = ()  # each flow's state after the attempt (empty after a crash: see the previous one)


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
        on_activation: Callable[[ReloadStatus], None] | None = None,
        custom_lists: ListView | None = None,
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
        self.flows: tuple[FlowHealth, ...] = ()  # each flow's state after the last reload that did not crash
        self.serving_since = clock()  # when the serving state was activated
        self.on_activation = on_activation  # called with every ReloadStatus (the server updates health)
        self.custom_lists = custom_lists  # the view every load's flows read (a server's store refreshes it)

    @property
    def serving_revision(self) -> str:
        return self._decider.policies.revision if self._decider.ready else ""

    def reload(self, trigger: str = "request") -> ReloadStatus:
        """Load, lint and self-test the root; swap in every flow that passes. Never raises.

        A check that raises (a bug, not a bad file) leaves the serving state untouched and is
        reported as a failed reload (``result`` "error", problem code ``reload_crashed``).
        """
        with self._lock:
            started = time.perf_counter()
            self._seen = fingerprint(self.root)
            try:
                status = self._activate(trigger, started)
            except Exception as exc:  # noqa: BLE001 - a crash is a failed reload, reported everywhere
                _log.exception("reload_crashed", trigger=trigger, error=f"{type(exc).__name__}: {exc}")
                crash = Problem(str(self.root), f"the reload crashed: {type(exc).__name__}: {str(exc)[:300]}", "reload_crashed",
                                hint="a bug in Verdict: please report it with the server log; fix or revert the last change meanwhile")
                status = ReloadStatus(
                    ok=False, trigger=trigger, at=self._clock(), revision="", serving=self.serving_revision,
                    problems=(crash,), duration_ms=(time.perf_counter() - started) * 1000.0,
                    message=f"crashed, nothing changed: {crash.message}", result="error", flows=self.flows,
                )
            self.last = status
            if self.on_activation is not None:  # before the log line, so whoever reads the log sees health already set
                try:
                    self.on_activation(status)
                except Exception:  # noqa: BLE001 - reporting must not stop the reload from being accounted
                    _log.exception("reload_report_failed")
            self._account(status)
            return status

    def _activate(self, trigger: str, started: float) -> ReloadStatus:
        previous = self._decider.policies if self._decider.ready else None
        outcome = activation.check(self.root, previous, self.custom_lists)
        if outcome.policies is not None and (previous is None or outcome.policies.revision != previous.revision
                                             or outcome.policies.warnings != previous.warnings):
            if previous is None or outcome.policies.revision != previous.revision:
                self.serving_since = self._clock()  # "since" moves only when what serves changes
            self._decider.swap(outcome.policies)
        flows = tuple(outcome.flows[name] for name in sorted(outcome.flows))
        self.flows = flows
        return ReloadStatus(
            ok=outcome.ok,
            trigger=trigger,
            at=self._clock(),
            revision=outcome.candidate,
            serving=self.serving_revision,
            problems=outcome.problems,
            tests_run=outcome.tests_run,
            tests_failed=outcome.tests_failed,
            duration_ms=(time.perf_counter() - started) * 1000.0,
            message=_summary(outcome),
            failures=outcome.failures,
            result="ok" if outcome.ok else "refused",
            warnings=outcome.warnings,
            flows=flows,
        )

    def _account(self, status: ReloadStatus) -> None:
        self.metrics.inc("reloads", result=status.result, trigger=status.trigger)
        self.metrics.set("reload_ok", 1 if status.ok else 0)
        for flow in status.flows:
            self.metrics.set("flow_ok", 1 if flow.state == "ok" else 0, flow=flow.name)
        if status.ok:
            self.metrics.set("reload_last_good_unixtime", status.at)
            _log.info("reload_ok", trigger=status.trigger, revision=status.revision, tests=status.tests_run, ms=round(status.duration_ms, 1),
                      warnings=[str(p) for p in status.warnings])
            return
        if status.result == "error":
            return  # logged with its traceback as reload_crashed
        _log.error(
            "reload_refused",
            trigger=status.trigger,
            serving=status.serving,
            reason=status.message,
            held_back={f.name: f.state for f in status.flows if f.state != "ok"},
            problems=[str(p) for p in status.problems],
            failed_tests=list(status.failures),
            warnings=[str(p) for p in status.warnings],
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
            except Exception as exc:  # noqa: BLE001 - the watcher must outlive any surprise (reload itself never raises)
                self.metrics.inc("reloads", result="error", trigger="watch")
                self.metrics.set("reload_ok", 0)
                _log.exception("reload_crashed", error=f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop the watcher thread."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None


def _summary(outcome: activation.Activation) -> str:
    if outcome.ok:
        warned = f", {len(outcome.warnings)} lint warning{'s' if len(outcome.warnings) != 1 else ''}" if outcome.warnings else ""
        return f"activated; {outcome.tests_run} policy tests passed{warned}"
    held = outcome.held_back
    states = {name: f.state for name, f in outcome.flows.items()}
    live = sorted(name for name, state in states.items() if state == "ok")
    if held:
        keeps = ", ".join(f"{n} ({'keeps its last good version' if states[n] == 'stale' else 'not loaded'})" for n in held)
        head = f"refused for {keeps}" + (f"; activated {', '.join(live)}" if live else "")
    else:
        head = "refused"
    problems = outcome.problems
    if problems:
        first = problems[0]
        where = first.path + (f":{first.line}" if first.line else "")
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        return f"{head}: {where}: [{first.code}] {first.message}{more}"
    return f"{head}: {outcome.tests_failed} of {outcome.tests_run} policy tests failed"
