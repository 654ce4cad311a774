"""Dispositions into the decision log: each final answer becomes a ``disposition`` record.

Analysts decide in the case store (CLI, console, ``CaseService.DecideCase``), possibly in another
process than the server that owns the log's chain. The server's ``DispositionRelay`` thread reads
the dispositions not yet logged (``CaseStore.unlogged``), appends each to its decision log (chained
like every record; ``engine.audit.record.disposition_payload``) and marks them logged.

At least once: a relay claims the dispositions it is about to log for a lease of 60 s
(``CaseStore.unlogged``), so replicas sharing a PostgreSQL store do not log the same one; a crash
between the append and the mark logs it again once the lease runs out. A reader takes the first
record of a decision id. With ``verdict serve --workers N`` only worker 0 relays.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import structlog

from engine.audit.record import disposition_payload
from engine.audit.writer import GroupCommitWriter, Meta
from engine.cases.store import CaseStore

__all__ = ["DispositionRelay", "relay_once"]

_log = structlog.get_logger("verdict.cases")


def relay_once(store: CaseStore, writer: GroupCommitWriter, *, clock: Callable[[], float] = time.time, limit: int = 500) -> int:
    """Append the dispositions not yet logged (at most ``limit``); how many were logged.

    Raises ``AuditUnavailable`` when the log refuses (nothing is marked then) and
    ``CaseStoreError`` when the store fails.
    """
    events = store.unlogged(limit, now=clock())
    for event in events:
        ts = clock()
        body = disposition_payload(
            case_seq=event.seq, decision_id=event.decision_id, request_id=event.request_id, flow=event.flow,
            version=event.version, disposition=event.disposition.value, note=event.note, actor=event.actor,
            decided_at=event.decided_at, ts=ts,
        )
        writer.append(body, Meta(ts, event.flow, event.decision_id, event.request_id, "disposition"))
        store.mark_logged([event.seq])
    return len(events)


class DispositionRelay:
    """Runs ``relay_once`` every ``interval`` seconds on its own thread until ``stop``."""

    def __init__(self, store: CaseStore, writer: GroupCommitWriter, *, interval: float = 0.2) -> None:
        self.store = store
        self.writer = writer
        self.interval = interval
        self.logged = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="verdict-disposition-relay", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._pass()
        self._pass()  # what was decided up to the stop is logged before the log closes

    def _pass(self) -> None:
        try:
            self.logged += relay_once(self.store, self.writer)
        except Exception as exc:  # noqa: BLE001 - logged and retried on the next pass
            _log.error("disposition_relay_failed", store=self.store.location, error=str(exc))

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
