"""What ``verdict serve`` opens for the review queue: the store, the case opener, the relay.

``open_review(settings, audit, worker)`` opens the store at ``settings.cases_location``, hooks a
``CaseOpener`` to the decision log's writer (cases open from durable records, off the request
path), starts it with the catch-up of its chain (a file log: the records past the store's cursor;
a PostgreSQL log starts a new chain per process, so its catch-up is the new chain only — see
docs/review-queue.md), and starts the ``DispositionRelay`` (lone server or worker 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from engine.cases.config import load_review_config
from engine.cases.opener import CaseOpener, chain_lines
from engine.cases.relay import DispositionRelay
from engine.cases.store import SqlCaseStore, open_store
from engine.settings import Settings

if TYPE_CHECKING:
    from engine.audit.wiring import Audit

__all__ = ["Review", "open_review"]

_log = structlog.get_logger("verdict.cases")


@dataclass
class Review:
    """The review queue of one server process."""

    store: SqlCaseStore
    opener: CaseOpener | None
    relay: DispositionRelay | None

    def close(self) -> None:
        """Stop the relay (after its last pass) and the opener (after its queue), close the store.

        Call it before the decision log closes: the relay's last pass appends to it."""
        if self.relay is not None:
            self.relay.stop()
        if self.opener is not None:
            self.opener.stop()
        self.store.close()


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
    directory = settings.audit_dir
    if directory is not None:
        chain_dir = Path(directory) / f"worker-{worker}" if worker is not None else Path(directory)
        chain = str(chain_dir.resolve())
        backlog = chain_lines(chain_dir, store.cursor(chain))
    else:
        chain = f"postgresql:{audit.location}:{id(sink)}"
        backlog = None
    opener = CaseOpener(store, chain, config)
    sink.writer.on_durable = opener.offer  # before the catch-up reads: nothing written between is lost
    opener.start(backlog)
    relay = None
    if worker is None or worker == 0:
        relay = DispositionRelay(store, sink.writer)
        relay.start()
    _log.info("review_queue_open", store=store.location, chain=chain, relay=relay is not None)
    return Review(store, opener, relay)
