"""What ``verdict serve`` opens for the review queue: the store, the case opener, the relay.

``open_review(settings, audit, worker)`` opens the store at ``settings.cases_location``, hooks a
``CaseOpener`` to the decision log's writer (cases open from durable records, off the request
path), starts it with the catch-up (a file log: its own chain past the store's cursor; PostgreSQL, where
every process writes its own chain: every chain past its cursor, so a crashed process's records are
opened by the next process to start), and starts the ``DispositionRelay`` (lone server or worker 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from engine.audit.writer import GroupCommitWriter
from engine.cases.config import ReviewConfig, load_review_config
from engine.cases.opener import Backlog, CaseOpener, chain_lines
from engine.cases.relay import DispositionRelay
from engine.cases.store import SqlCaseStore, open_store
from engine.errors import PolicyError, Problem
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.audit.wiring import Audit

__all__ = ["PG_CHAIN", "Review", "open_review"]

PG_CHAIN = "postgresql:"  # + writer id: the name of a PostgreSQL chain in the case store's cursors

_log = structlog.get_logger("verdict.cases")


@dataclass
class Review:
    """The review queue of one server process."""

    store: SqlCaseStore
    opener: CaseOpener | None
    relay: DispositionRelay | None

    def reload_config(self, root: Path) -> list[Problem]:
        """Re-read the ``review.yaml`` files under ``root`` (a hot reload): a good set replaces the
        opener's config (cases opened from then on use it); a bad one changes nothing and its
        problems are returned (the reload reports them, through ``verdict lint``'s checks)."""
        try:
            config = load_review_config(root)
        except PolicyError as exc:
            return list(exc.problems)
        if self.opener is not None:
            self.opener.config = config
        return []

    def close(self) -> None:
        """Stop the relay (after its last pass) and the opener (after its queue), close the store.

        Call it before the decision log closes: the relay's last pass appends to it."""
        if self.relay is not None:
            self.relay.stop()
        if self.opener is not None:
            self.opener.stop()
        self.store.close()


def _opener(
    settings: Settings, audit: Audit, writer: GroupCommitWriter, store: SqlCaseStore, config: ReviewConfig, worker: int | None
) -> tuple[CaseOpener, Backlog]:
    """The opener hooked to ``writer`` (before the catch-up reads: nothing written between is lost)
    and its catch-up: a file log's own chain past the cursor; in PostgreSQL, every chain's."""
    directory = settings.audit_dir
    if directory is not None:
        chain_dir = Path(directory) / f"worker-{worker}" if worker is not None else Path(directory)
        chain = str(chain_dir.resolve())
        opener = CaseOpener(store, chain, config)
        writer.on_durable = opener.offer
        return opener, [(chain, chain_lines(chain_dir, store.cursor(chain)))]
    from engine.audit.postgres import PgStore

    pg = writer.store
    assert isinstance(pg, PgStore)
    opener = CaseOpener(store, PG_CHAIN + pg.writer, config)
    writer.on_durable = lambda lines: opener.offer(lines, PG_CHAIN + pg.writer)  # the id changes when a failed batch restarts the chain
    return opener, _pg_backlog(pg.dsn, store)


def _pg_backlog(dsn: str, store: SqlCaseStore) -> Iterator[tuple[str, Iterator[bytes]]]:
    """Each PostgreSQL chain's lines past the store's cursor (read lazily on the opener's thread)."""
    from engine.audit.postgres import PgSource

    source = PgSource(dsn)
    try:
        for writer in source.writers():
            chain = PG_CHAIN + writer
            yield chain, source.lines_after(writer, store.cursor(chain))
    finally:
        source.close()


def open_review(settings: Settings, audit: Audit, *, worker: int | None = None) -> Review | None:
    """The review queue as ``settings`` say, or None when off; raises ``CaseStoreError`` or
    ``PolicyError`` (a bad ``review.yaml``, every problem listed)."""
    location = settings.cases_location
    if location is None:
        return None
    config = load_review_config(settings.root)
    store = open_store(location)
    sink = audit.sink
    if sink is None:  # no log: nothing opens cases here, but the store serves CaseService
        return Review(store, None, None)
    opener, backlog = _opener(settings, audit, sink.writer, store, config, worker)
    opener.start(backlog)
    relay = None
    if worker is None or worker == 0:
        relay = DispositionRelay(store, sink.writer)
        relay.start()
    _log.info("review_queue_open", store=store.location, chain=opener.chain, relay=relay is not None)
    return Review(store, opener, relay)
