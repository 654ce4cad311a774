"""Keeping a server's list view current: poll the store's generation, swap in a new snapshot.

A change made by any process (``verdict lists add`` from a shell, the ``ListService`` RPC on
another worker of ``--workers N``) commits to the SQLite file and increments its generation. Each
server process polls the generation every ``interval`` seconds (one indexed read) and, when it
moved, reads every unexpired entry into a new ``ListSnapshot`` and swaps it into the view (one
reference assignment: a decision sees the old or the new snapshot, never a mix). A change made
through this process's own RPC is swapped in before the RPC answers.

Bounded staleness: a change is visible to every process of the server at most ``interval`` plus
one snapshot build after its commit (0.25 s by default; the test ``test_lists_server`` proves
< 1 s). Expiry needs no refresh: a look-up compares ``expires_at`` with the clock.
"""

from __future__ import annotations

import os
import threading

import structlog

from engine.custom_lists.snapshot import ListView
from engine.custom_lists.store import ListStore

__all__ = ["DEFAULT_INTERVAL", "ListRefresher"]

DEFAULT_INTERVAL = 0.25  # seconds between polls of the store's generation
_log = structlog.get_logger("verdict.lists")


class ListRefresher:
    """Polls ``store`` and keeps ``view`` at its latest generation, in a daemon thread."""

    def __init__(self, store: ListStore, view: ListView, *, interval: float = DEFAULT_INTERVAL) -> None:
        self.store = store
        self.view = view
        self.interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def refresh(self, force: bool = False) -> bool:
        """Swap in a new snapshot when the store changed (or ``force``); whether it did."""
        with self._lock:
            if not force and self.store.generation() == self.view.snapshot.generation:
                return False
            snapshot = self.store.snapshot()
            self.view.swap(snapshot)
        _log.info("lists_refreshed", pid=os.getpid(), generation=snapshot.generation, sizes=snapshot.sizes())
        return True

    def start(self) -> None:
        """Load the lists now, then poll in the background until ``stop``."""
        self.refresh(force=True)
        self._thread = threading.Thread(target=self._run, name="verdict-lists", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.refresh()
            except Exception as exc:  # noqa: BLE001 - a failed poll keeps the last snapshot and tries again
                _log.warning("lists_refresh_failed", error=f"{type(exc).__name__}: {exc}")

    def stop(self) -> None:
        """Stop polling (the view keeps its last snapshot) and close the store."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.store.close()
