"""Group commit: one writer thread makes batches of records durable with one fsync each.

``append(payload)`` queues a record and blocks until the batch holding it is durable (written and
fsynced to a segment file, or committed to PostgreSQL). While the writer thread waits for one
fsync, the next records queue up and go together in the next batch, so under load many decisions
share one fsync, and a lone request pays one.

The writer thread alone touches the chain and the store. If a write or fsync fails, every waiting
record and every later one fails with ``AuditUnavailable``: after a failed fsync nothing that was
written can be trusted to be on disk, so the log refuses to acknowledge anything more.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple, Protocol

import structlog

from engine.audit.errors import AuditUnavailable
from engine.audit.record import Chain

__all__ = ["GroupCommitWriter", "Meta", "Store", "WriterStats"]

_log = structlog.get_logger("verdict.audit")
MAX_BATCH = 4096


class Meta(NamedTuple):
    """What a store may index a record by (PostgreSQL columns); files ignore it."""

    ts: float
    flow: str
    decision_id: str
    request_id: str
    kind: str = "decision"  # the record's kind: "decision" or "disposition" (engine.audit.record)


class Store(Protocol):
    """Where sealed record lines go (segment files or a PostgreSQL table)."""

    retryable: bool  # after a failed append, may ``reopen`` start a new chain and go on?

    def open(self) -> Chain: ...

    def reopen(self) -> Chain: ...

    def append(self, lines: Sequence[bytes], metas: Sequence[Meta | None]) -> None: ...

    def should_rotate(self) -> bool: ...

    def rotate(self, chain: Chain) -> None: ...

    def close(self) -> None: ...

    def describe(self) -> str: ...


class _Pending:
    """One queued record: its payload, and a lock its caller blocks on until the batch is done."""

    __slots__ = ("error", "lock", "meta", "payload")

    def __init__(self, body: bytes, meta: Meta | None) -> None:
        self.payload = body
        self.meta = meta
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.lock.acquire()


class WriterStats:
    """Counters of the writer thread (read without locking; for logs and benchmarks)."""

    __slots__ = ("batches", "max_batch", "records")

    def __init__(self) -> None:
        self.records = 0
        self.batches = 0
        self.max_batch = 0


_STOP = object()


class GroupCommitWriter:
    """Serialises records into one hash chain and makes them durable in batches."""

    def __init__(self, store: Store, *, max_batch: int = MAX_BATCH) -> None:
        self._store = store
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._chain = store.open()
        self._failed: AuditUnavailable | None = None
        self._reopen = False
        self._closed = False
        self._close_lock = threading.Lock()
        self.stats = WriterStats()
        # Called after each durable batch with (records, seconds the write and fsync took); the
        # server points it at engine.metrics.Metrics.commit. Runs on the writer thread: keep it cheap.
        self.on_commit: Callable[[int, float], None] | None = None
        # Called after each durable batch with its sealed lines (engine.cases.CaseOpener.offer: a queue
        # put). Runs on the writer thread after durability: it must not block.
        self.on_durable: Callable[[Sequence[bytes]], None] | None = None
        self._thread = threading.Thread(target=self._run, name="verdict-audit-writer", daemon=True)
        self._thread.start()

    @property
    def store(self) -> Store:
        """Where the records go (read-only use: ``describe``, a PostgreSQL store's ``writer`` id)."""
        return self._store

    @property
    def chain(self) -> Chain:
        """A copy of the chain's tail (next seq, last hash)."""
        return self._chain.copy()

    def append(self, body: bytes, meta: Meta | None = None) -> None:
        """Queue one record payload; return once it is durable, else raise AuditUnavailable."""
        if self._failed is not None:
            raise self._failed
        if self._closed:
            raise AuditUnavailable("the decision log is closed")
        item = _Pending(body, meta)
        self._queue.put(item)
        item.lock.acquire()  # released by the writer thread when the batch is durable or failed
        if item.error is not None:
            raise AuditUnavailable(f"the decision could not be logged: {item.error}") from item.error

    def close(self) -> None:
        """Write everything queued, stop the thread, close the store."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self._store.close()
        while True:  # a record queued while closing is refused, never left waiting
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if isinstance(item, _Pending):
                item.error = AuditUnavailable("the decision log is closed")
                item.lock.release()

    def _run(self) -> None:
        get = self._queue.get
        get_nowait = self._queue.get_nowait
        while True:
            first = get()
            if first is _STOP:
                return
            batch: list[_Pending] = [first]  # type: ignore[list-item]
            stop = False
            while len(batch) < self._max_batch:
                try:
                    item = get_nowait()
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)  # type: ignore[arg-type]
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[_Pending]) -> None:
        """Persist ``batch`` and release its callers: always, whatever fails here (a caller is never
        left waiting), each with the error of its batch or None once its record is durable."""
        error: BaseException | None = self._failed
        try:
            if error is None:
                error = self._persist(batch)
        finally:
            for item in batch:
                item.error = error
                item.lock.release()

    def _persist(self, batch: list[_Pending]) -> BaseException | None:
        """Seal, write and fsync ``batch``; the failure that keeps it from being durable, or None."""
        try:
            if self._reopen:
                self._chain = self._store.reopen()
                self._reopen = False
            chain = self._chain.copy()
            lines = [chain.seal(item.payload) for item in batch]
            started = time.perf_counter()
            self._store.append(lines, [item.meta for item in batch])
            spent = time.perf_counter() - started
        except Exception as exc:  # noqa: BLE001 - any failure to persist fails the batch
            if self._store.retryable:  # nothing half-written can stay: a new chain follows
                self._reopen = True
            else:  # a failed fsync leaves the file's state unknown: acknowledge nothing more
                self._failed = AuditUnavailable(f"the decision log at {self._store.describe()} failed: {exc}")
            with contextlib.suppress(Exception):  # a broken log stream must not hide the failure itself
                _log.error("audit_write_failed", store=self._store.describe(), error=str(exc), records=len(batch))
            return exc
        self._chain = chain
        stats = self.stats
        stats.records += len(batch)
        stats.batches += 1
        stats.max_batch = max(stats.max_batch, len(batch))
        with contextlib.suppress(Exception):  # metrics and rotation are after durability: they never fail the batch
            if self.on_commit is not None:
                self.on_commit(len(batch), spent)
            if self.on_durable is not None:
                self.on_durable(lines)
            self._maybe_rotate()
        return None

    def _maybe_rotate(self) -> None:
        if not self._store.should_rotate():
            return
        chain = self._chain.copy()
        try:
            self._store.rotate(chain)
        except Exception as exc:  # noqa: BLE001 - the batch is durable; later ones fail
            self._failed = AuditUnavailable(f"the decision log at {self._store.describe()} could not rotate: {exc}")
            _log.error("audit_rotate_failed", store=self._store.describe(), error=str(exc))
            return
        self._chain = chain
        _log.info("audit_segment_started", store=self._store.describe(), seq=chain.seq)
