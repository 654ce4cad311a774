"""Opening cases from the decision log: off the request path, and none missed after a crash.

Decide never writes a case. The decision log's writer thread, after each durable batch, hands
the batch's sealed lines to ``CaseOpener.offer`` (a queue put, about a microsecond); the opener's
own thread parses the REVIEW decisions among them and opens their cases. So Decide's latency
carries no extra disk write: its one synchronous write is still the log's group commit.

**No REVIEW decision is missed.** A case is opened from the durable log record, never from the
request, and the store keeps, per log chain, the last record seq whose cases it opened — moved
in the same transaction as the cases (``CaseStore.open_cases``). On start, before anything else,
``catch_up`` reads the chain from that seq on and opens what is missing: whatever the process
died between (record durable, case not yet written) is opened then. Opening is idempotent (a
case's id is its decision id), so reading a record twice is harmless.

Which decisions open a case: action REVIEW, route live, pinned or challenger (``route`` of the
record; shadows never — their answer went to no one).
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from engine.audit.errors import AuditError
from engine.audit.follow import links
from engine.audit.record import parse_time
from engine.audit.segments import iter_lines, list_segments
from engine.cases.config import ReviewConfig
from engine.cases.model import Case, CaseState
from engine.cases.store import CaseStore

__all__ = ["Backlog", "CaseOpener", "case_from_record", "catch_up", "chain_lines"]

_log = structlog.get_logger("verdict.cases")
_REVIEW = b'"action":"REVIEW"'
_DROP = ("seq", "prev", "hash", "fp", "key_id")  # chain links and the retry fingerprint: not the case's


def case_from_record(record: Mapping[str, Any], config: ReviewConfig) -> Case | None:
    """The case a decision record opens, or None (not a REVIEW, a shadow, or not a decision).

    Pure: the queue, priority, SLA and links come from ``config``; the opening time is the
    decision's own time (``ts``), so a case opened late (catch-up) has the SLA it would have had.
    """
    if record.get("kind", "decision") != "decision" or record.get("action") != "REVIEW" or record.get("route") == "shadow":
        return None
    flow = str(record.get("flow", ""))
    queue_config = config.for_flow(flow)
    priority = queue_config.priority_of(record)
    opened = parse_time(str(record["ts"]))
    return Case(
        case_id=str(record["decision_id"]),
        decision_id=str(record["decision_id"]),
        request_id=str(record.get("request_id", "")),
        flow=flow,
        version=str(record.get("version", "")),
        route=str(record.get("route", "")),
        queue=queue_config.queue,
        priority=priority,
        state=CaseState.OPEN,
        opened_at=opened,
        due_at=opened + queue_config.sla_seconds(priority),
        record={k: v for k, v in record.items() if k not in _DROP},
        links=queue_config.links_of(record),
    )


def _cases_of(lines: Sequence[bytes], config: ReviewConfig) -> tuple[list[Case], int | None]:
    """The cases among sealed record lines, and the highest seq seen (None: no record)."""
    cases: list[Case] = []
    last: int | None = None
    for raw in lines:
        try:
            seq = links(raw)[0]
        except ValueError:
            continue
        last = seq if last is None else max(last, seq)
        if _REVIEW not in raw:  # cheap filter: most records are not REVIEWs
            continue
        try:
            case = case_from_record(json.loads(raw), config)
        except (ValueError, KeyError, TypeError):
            continue
        if case is not None:
            cases.append(case)
    return cases, last


def chain_lines(chain_dir: Path, after: int | None) -> Iterator[bytes]:
    """The complete record lines of the chain in ``chain_dir`` from seq ``after + 1`` on.

    Skips whole segments that end before it: a segment is read only when the next segment's
    header seq is above ``after`` (each segment starts with a header record carrying its seq).
    """
    segments = list_segments(chain_dir)
    start = 0
    if after is not None:
        for i in range(len(segments) - 1, -1, -1):
            first = _first_seq(segments[i][1])
            if first is not None and first <= after + 1:
                start = i
                break
    for _, path in segments[start:]:
        with contextlib.suppress(AuditError):  # a segment archived meanwhile: nothing to open from it
            for raw, complete in iter_lines(path):
                if not complete:
                    continue
                with contextlib.suppress(ValueError):
                    if after is None or links(raw)[0] > after:
                        yield raw


def _first_seq(path: Path) -> int | None:
    with contextlib.suppress(AuditError, ValueError):
        for raw, _ in iter_lines(path, chunk=1 << 16):
            return links(raw)[0]
    return None


def catch_up(store: CaseStore, chain: str, lines: Iterator[bytes], config: ReviewConfig, *, batch: int = 500) -> int:
    """Open the cases of ``lines`` (one chain's records after the store's cursor); how many were new."""
    added = 0
    pending: list[bytes] = []
    for raw in lines:
        pending.append(raw)
        if len(pending) >= batch:
            added += _open(store, chain, pending, config)
            pending = []
    if pending:
        added += _open(store, chain, pending, config)
    return added


def _open(store: CaseStore, chain: str, lines: Sequence[bytes], config: ReviewConfig) -> int:
    cases, last = _cases_of(lines, config)
    if last is None:
        return 0
    return store.open_cases(cases, chain=chain, seq=last)


_STOP = object()
Backlog = Iterable[tuple[str, Iterator[bytes]]]  # (chain, its record lines past the store's cursor)


class CaseOpener:
    """Opens cases from the lines the decision log's writer made durable, on its own thread.

    ``offer(lines, chain)`` is the writer's ``on_durable`` hook (``chain`` names the chain the lines
    continue: a file log's directory, ``postgresql:<writer id>``). ``start(backlog)`` first opens
    what each chain of the backlog holds past the store's cursor, then follows the offered batches.
    A failure of the store is logged and the batch retried with the next one (the cursor has not
    moved, so the next start's catch-up opens it at the latest).
    """

    def __init__(self, store: CaseStore, chain: str, config: ReviewConfig, *, on_error: Callable[[str], None] | None = None) -> None:
        self.store = store
        self.chain = chain  # the default chain of offered lines
        self.config = config
        self.opened = 0
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._on_error = on_error
        self._thread: threading.Thread | None = None
        self._idle = threading.Event()

    def offer(self, lines: Sequence[bytes], chain: str | None = None) -> None:
        """Queue durable record lines (called on the log writer's thread: never blocks)."""
        self._queue.put((chain or self.chain, list(lines)))

    def start(self, backlog: Backlog = ()) -> None:
        """Start the thread; it opens the ``backlog`` (the catch-up) before any offered batch."""
        self._thread = threading.Thread(target=self._run, args=(backlog,), name="verdict-case-opener", daemon=True)
        self._thread.start()

    def _run(self, backlog: Backlog) -> None:
        try:
            for chain, lines in backlog:
                self.opened += catch_up(self.store, chain, lines, self.config)
        except Exception as exc:  # noqa: BLE001 - logged; the next start catches up again
            self._fail(f"catch-up failed: {exc}")
        pending: dict[str, list[bytes]] = {}
        while True:
            if self._queue.empty():
                self._idle.set()
            item = self._queue.get()
            self._idle.clear()
            stop = item is _STOP
            while not stop:
                chain, lines = item  # type: ignore[misc]
                pending.setdefault(chain, []).extend(lines)
                if self._queue.empty() or sum(len(v) for v in pending.values()) >= 4096:
                    break
                item = self._queue.get()
                stop = item is _STOP
            for chain in list(pending):
                if self._try(chain, pending[chain]):
                    del pending[chain]
            if stop:
                return

    def _try(self, chain: str, lines: list[bytes]) -> bool:
        try:
            self.opened += _open(self.store, chain, lines, self.config)
        except Exception as exc:  # noqa: BLE001 - a store failure must not stop the opener
            self._fail(f"opening cases failed: {exc}")
            return len(lines) > 100_000  # bounded memory: past that, the next start's catch-up opens them
        return True

    def _fail(self, message: str) -> None:
        _log.error("case_open_failed", store=self.store.location, chain=self.chain, error=message)
        if self._on_error is not None:
            self._on_error(message)

    def wait_idle(self, timeout: float) -> bool:
        """True once every offered batch is processed (tests and graceful stop)."""
        return self._idle.wait(timeout)

    def stop(self) -> None:
        """Process what is queued, then stop."""
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join()
            self._thread = None
