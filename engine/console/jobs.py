"""Backtests run by the console: one worker thread and a bounded queue, so pages stay responsive.

A backtest decides a whole history file with one version or more (``engine.batch.backtest``,
the code behind ``verdict backtest``): seconds to minutes of CPU. The console runs at most one at
a time in a worker thread and queues at most ``max_pending`` more; a further request is refused
(``Busy``, HTTP 429) rather than queued without bound. Pages poll a job's state (htmx). Finished
jobs are kept in memory, the newest ``keep``; they are gone after a restart (the report can be
downloaded as JSON).
"""

from __future__ import annotations

import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["BacktestJobs", "Busy", "Job", "JobSpec"]


class Busy(RuntimeError):
    """The queue is full: try again when a running backtest has finished."""


@dataclass(frozen=True)
class JobSpec:
    """What to run: a ``backtest`` (a history file decided by ``versions``, the baseline first) or a
    ``replay`` (the decision log's decisions of ``flow`` made from ``since`` to ``until`` re-decided by
    ``versions[0]``), and where the outcomes are."""

    flow: str
    versions: tuple[str, ...]
    source: Path
    outcome_column: str | None = None
    outcomes: Mapping[str, bool] | None = None
    id_column: str | None = None
    kind: str = "backtest"
    since: str = ""  # ISO 8601 UTC prefixes, as the decision search takes them ("" = open)
    until: str = ""


@dataclass
class Job:
    """A backtest and its state: queued, running, done or failed."""

    id: str
    spec: JobSpec
    by: str
    state: str = "queued"
    submitted: float = field(default_factory=time.time)
    finished: float = 0.0
    rows: int = 0
    error: str = ""
    report: dict[str, Any] | None = None
    text: str = ""


class BacktestJobs:
    """Runs `run(spec, progress) -> (dict report, text report)` for each submitted spec, one at a time."""

    def __init__(self, run: Callable[[JobSpec, Callable[[int], None]], tuple[dict[str, Any], str]], *,
                 max_pending: int = 2, keep: int = 20) -> None:
        self._run = run
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verdict-backtest")
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self.max_pending, self.keep = max_pending, keep

    def submit(self, spec: JobSpec, by: str) -> Job:
        """Queue a backtest; raises Busy when one runs and ``max_pending`` wait already."""
        with self._lock:
            waiting = sum(j.state in ("queued", "running") for j in self._jobs.values())
            if waiting > self.max_pending:
                raise Busy(f"{waiting} backtests are queued or running (at most {self.max_pending + 1}); try again when one has finished")
            job = Job(uuid.uuid4().hex[:12], spec, by)
            self._jobs[job.id] = job
            while len(self._jobs) > self.keep + self.max_pending + 1:
                oldest = next(iter(self._jobs))
                if self._jobs[oldest].state in ("queued", "running"):
                    break
                self._jobs.pop(oldest)
        self._pool.submit(self._work, job)
        return job

    def _work(self, job: Job) -> None:
        job.state = "running"

        def progress(rows: int) -> None:
            job.rows = rows

        try:
            job.report, job.text = self._run(job.spec, progress)
            job.state = "done"
        except Exception as exc:  # noqa: BLE001 - a failed backtest is shown on its page, the worker goes on
            job.error = f"{type(exc).__name__}: {exc}"
            job.state = "failed"
            traceback.print_exc()
        job.finished = time.time()

    def get(self, job_id: str) -> Job | None:
        return self._jobs.get(job_id)

    def all(self) -> list[Job]:
        """Every kept job, newest first."""
        with self._lock:
            return list(reversed(self._jobs.values()))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
