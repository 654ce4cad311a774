"""What ``verdict serve`` opens from its settings: the decision log and the idempotency cache.

``open_audit(settings, worker=None)`` opens (and recovers) the log — the directory
``settings.audit`` (``DIR/worker-<i>`` for worker ``i`` of ``--workers N``) or PostgreSQL
``settings.audit_dsn`` — and rebuilds the idempotency cache from the records of the last window.
The returned ``Audit`` gives the Decider its sink and idempotency collaborator; ``bind`` tells the
sink where the loaded flows are (for their masking rules); ``close`` flushes and closes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from engine.audit.errors import AuditError
from engine.audit.keyfile import load_or_create_key
from engine.audit.private_files import private_dir
from engine.audit.record import decision_from_record, parse_time
from engine.audit.segments import FileStore
from engine.audit.sink import AuditSink
from engine.audit.source import LogSource, open_source
from engine.audit.writer import GroupCommitWriter, Store
from engine.extras import require
from engine.runtime.idempotency import Fingerprinter, IdempotencyCache
from engine.runtime.privacy import HashKey
from engine.settings import Settings
from engine.types import Decision

__all__ = ["Audit", "hash_key", "open_audit", "preload_entries"]

_log = structlog.get_logger("verdict.audit")


@dataclass
class Audit:
    """The decision log and idempotency cache of one server process (either may be off)."""

    sink: AuditSink | None
    idempotency: IdempotencyCache | None
    location: str

    def close(self) -> None:
        """Write what is queued and close the log."""
        if self.sink is not None:
            self.sink.close()
            stats = self.sink.writer.stats
            _log.info("audit_closed", location=self.location, records=stats.records, batches=stats.batches)


def preload_entries(
    records: Iterator[dict[str, Any]], key_id: str, now: float
) -> Iterator[tuple[str, str, Decision, float]]:
    """(request id, fingerprint, decision, age) of logged answers that a retry may get again."""
    for data in records:
        if not data.get("request_id") or data.get("route") == "shadow" or data.get("key_id") != key_id:
            continue
        fp = data.get("fp")
        if not fp:
            continue
        try:
            yield data["request_id"], str(fp), decision_from_record(data), now - parse_time(data["ts"])
        except (KeyError, TypeError, ValueError):
            continue


def _store(settings: Settings, worker: int | None) -> tuple[Store | None, str]:
    if settings.audit_dsn:
        require("postgres", "a decision log in PostgreSQL")
        from engine.audit.postgres import PgStore, redact_dsn

        return PgStore(settings.audit_dsn), redact_dsn(settings.audit_dsn)
    directory = settings.audit_dir
    if directory is None:
        return None, "off"
    if worker is not None:
        directory = directory / f"worker-{worker}"
    return FileStore(Path(directory), max_segment_bytes=settings.audit_segment_bytes), str(directory)


def _rebuild(idem: IdempotencyCache, source_location: str, key: HashKey, clock: Callable[[], float]) -> int:
    now = clock()
    source: LogSource = open_source(source_location)
    try:
        return idem.preload(preload_entries(source.recent(now - idem.window), key.key_id, now))
    finally:
        source.close()


def hash_key(settings: Settings, directory: Path | None = None) -> HashKey:
    """``VERDICT_AUDIT_HASH_KEY``; else the key kept in ``directory`` (default: the log directory;
    created once); else (PostgreSQL or no log) a random key for this process."""
    if settings.audit_hash_key is not None:
        return HashKey.from_setting(settings.audit_hash_key.get_secret_value())
    directory = settings.audit_dir if directory is None else directory
    if directory is None:
        return HashKey.from_setting(None)
    private_dir(directory)
    key, created = load_or_create_key(directory)
    if created:
        _log.info("audit_hash_key_created", path=str(directory / "hash.key"), key_id=key.key_id)
    return key


def open_audit(settings: Settings, *, worker: int | None = None, clock: Callable[[], float] = time.time) -> Audit:
    """Open the decision log and the idempotency cache as ``settings`` say; raises AuditError."""
    key = hash_key(settings)
    fingerprint = Fingerprinter(key)
    idem = None
    if settings.idempotency_window_seconds > 0:
        idem = IdempotencyCache(
            fingerprint, window_seconds=settings.idempotency_window_seconds, max_entries=settings.idempotency_max_entries,
            max_bytes=settings.idempotency_max_bytes,
        )
    store, location = _store(settings, worker)
    if store is None:
        _log.warning("audit_off", idempotency_window_seconds=settings.idempotency_window_seconds)
        return Audit(None, idem, location)
    writer = GroupCommitWriter(store)
    sink = AuditSink(writer, key, fingerprint)
    if key.ephemeral:
        _log.warning(
            "audit_hash_key_ephemeral",
            detail="VERDICT_AUDIT_HASH_KEY is not set and the log is in PostgreSQL: keyed hashes and "
            "fingerprints differ after a restart, and a retry after a restart is decided again",
        )
    recovery = getattr(store, "recovery", None)
    rebuilt = 0
    if idem is not None:
        try:
            rebuilt = _rebuild(idem, settings.audit_dsn or location, key, clock)
        except AuditError as exc:  # the log is open and verified at its tail; retries just decide again
            _log.warning("idempotency_rebuild_failed", error=str(exc))
    chain = writer.chain
    _log.info(
        "audit_open",
        location=location,
        next_seq=chain.seq,
        last_hash=chain.prev,
        trimmed_bytes=recovery.trimmed_bytes if recovery else 0,
        idempotency_entries=rebuilt,
        key_id=key.key_id,
    )
    return Audit(sink, idem, location)
