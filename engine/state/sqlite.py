"""The embedded state store: one SQLite file in WAL mode, shared by every worker of a server.

Each transaction is ``BEGIN IMMEDIATE`` (the write lock, taken before reading), a read of the
keys' series, the caller's step, the write of the changed series and ``COMMIT``: so a decision's
read and its record are atomic across threads and across ``verdict serve --workers N``
processes, and counts are exact. A decision is answered only after its ``COMMIT``.

Durability: WAL with ``synchronous=NORMAL``; the WAL is copied into the file by a thread of its
own every ``CHECKPOINT_SECONDS`` (not by the commit that fills it, so no decision waits on a
checkpoint's fsyncs). A committed transaction is in the WAL file before
``COMMIT`` returns, so a crash of the process (``kill -9``) loses nothing acknowledged; a power
loss or kernel crash may lose the last transactions before the next checkpoint (SQLite's own
statement of WAL + NORMAL: https://www.sqlite.org/pragma.html#pragma_synchronous). Those
decisions are still in the decision log, which is fsynced before each reply.

Reads: each process keeps the series it last read or wrote, parsed (up to ``CACHE_SERIES``, least
recently used out), and uses them while no other connection has committed to the file: each
transaction reads ``PRAGMA data_version`` once it holds the write lock, and a change (another
worker of ``--workers N``, another process) empties the cache, so reads stay exact across
processes; with one process a decision reads nothing from the file. A transaction that fails
drops the series it touched from the cache.

Traps: one connection per process, shared by its threads under the process's lock; a connection
must not cross a ``fork`` (open the store after forking, as ``verdict serve --workers`` does: each
worker opens its own). ``busy_timeout``
makes a worker wait for another's write lock instead of failing with "database is locked".
Idle keys are swept every ``SWEEP_EVERY`` transactions: rows whose newest event is older than
their stream's retention (the longest window plus the lateness) are deleted.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from engine.errors import StateUnavailable
from engine.sqlite_wal import connect_wal
from engine.state.intent import Intended
from engine.state.plan import Slot
from engine.state.series import Series
from engine.state.store import Abandoned, Expand, MemoryStore, StateStore, Step

__all__ = ["CACHE_SERIES", "SWEEP_EVERY", "SqliteStore", "open_store"]

T = TypeVar("T")
SWEEP_EVERY = 10_000  # transactions between two sweeps of expired keys
CHECKPOINT_SECONDS = 1.0  # between two checkpoints of the WAL into the file, off the decision path
CACHE_SERIES = 100_000  # series a process keeps parsed (least recently used first out): ~1-2 KB each
BUSY_TIMEOUT_MS = 10_000
_SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    sig TEXT NOT NULL,
    key TEXT NOT NULL,
    high REAL NOT NULL,
    expires REAL NOT NULL,
    data TEXT NOT NULL,
    PRIMARY KEY (sig, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS series_expires ON series (expires);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value BLOB NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('salt', randomblob(32));
"""


class SqliteStore:
    """Series as rows of one SQLite file (see the module docstring); ``retention`` by signature."""

    inline = True  # its waits are for its own locks (this process's turn, the file's write lock), bounded by ``wait``

    def __init__(self, path: Path, *, busy_ms: int = BUSY_TIMEOUT_MS, cache: int = CACHE_SERIES) -> None:
        self.path = Path(path)
        self._busy_ms = busy_ms
        self._busy_now = busy_ms  # the connection's busy_timeout (lowered to a budget's wait per transaction)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn: sqlite3.Connection | None = None
        # The threads of one process take turns on a lock that wakes the next at once, instead of
        # SQLite's busy handler, which sleeps up to 100 ms between retries and lets a waiter starve
        # (a 250 ms state budget missed 17 of 200 decisions of 8 threads without it; with it, none).
        # One connection serves them all, used only under this lock.
        self._turn = threading.Lock()
        self._count = 0
        # The series this process read or wrote last, valid while no other connection commits
        # (PRAGMA data_version, read under the write lock; the module docstring); None: no row.
        self._cache: OrderedDict[Slot, Series] = OrderedDict()
        self._cache_size = cache
        self._data_version = -1
        self.retention: dict[str, float] = {}  # stream signature -> seconds (set by the plans that use it)
        conn = self._connect()
        # one transaction: workers starting together create the schema and the salt once
        conn.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        # The key of the keyed hashes of keys and items: random, made once with the file, kept in it
        self.salt: bytes = bytes(conn.execute("SELECT value FROM meta WHERE name = 'salt'").fetchone()[0])
        self._stop = threading.Event()
        self._checkpointer = threading.Thread(target=self._checkpoints, name="verdict-state-checkpoint", daemon=True)
        self._checkpointer.start()

    def _checkpoints(self) -> None:
        """Copy the WAL into the file every ``CHECKPOINT_SECONDS`` on a connection of its own (PASSIVE:
        never waits for nor blocks a decision), so no decision's ``COMMIT`` runs a checkpoint and its
        fsyncs (they made the mean COMMIT 208 us against a median of 39 us)."""
        conn = connect_wal(self.path, timeout=1.0, synchronous="NORMAL", check_same_thread=True)
        try:
            while not self._stop.wait(CHECKPOINT_SECONDS):
                with contextlib.suppress(sqlite3.Error):  # busy or locked: the next round does it
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            conn.close()

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect_wal(self.path, timeout=self._busy_ms / 1000, synchronous="NORMAL", check_same_thread=False)
            self._conn.execute("PRAGMA wal_autocheckpoint = 0")  # the checkpointer thread does it (``_checkpoints``)
            self._busy_now = self._busy_ms
        return self._conn

    def transact(
        self, slots: Sequence[Slot], step: Step[T], expand: Expand | None = None, intent: Intended | None = None,
        wait: float | None = None,
    ) -> T:
        """Run ``step`` on the slots' series in one write transaction (``intent`` is not needed: the step
        records under the lock); raises StateUnavailable when the file stays locked past the busy
        timeout or cannot be written (nothing is recorded then), and ``Abandoned`` (nothing read)
        when ``wait`` seconds pass before this process's turn and the file's write lock are had."""
        if wait is None:
            with self._turn:
                return self._transact(slots, step, expand, None)
        end = time.monotonic() + max(wait, 0.0)
        if not self._turn.acquire(timeout=max(wait, 0.0)):
            raise Abandoned(f"the state store's turn was not had within {wait:.3f} s")
        try:
            return self._transact(slots, step, expand, end)
        finally:
            self._turn.release()

    def _transact(self, slots: Sequence[Slot], step: Step[T], expand: Expand | None, end: float | None) -> T:
        conn = self._begin(end)
        found: dict[Slot, Series] = {}
        try:
            version = conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._data_version:  # another connection (worker, process) committed: re-read
                self._cache.clear()
                self._data_version = version
            self._fetch(conn, slots, found)
            if expand is not None:
                self._fetch(conn, expand(found), found)
            result, changed = step(found)
            for slot in changed:
                self._save(conn, slot, found[slot])
            conn.execute("COMMIT")
        except BaseException as exc:
            for slot in found:  # the step may have changed them in place: not what the file holds
                self._cache.pop(slot, None)
            if conn.in_transaction:  # SQLite has already rolled back on some errors (a full disk: SQLITE_FULL)
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.OperationalError):
                raise StateUnavailable(f"the state file {self.path.name} is unavailable: {exc}") from exc
            raise
        cache = self._cache
        for slot, series in found.items():
            cache[slot] = series
            cache.move_to_end(slot)
        while len(cache) > self._cache_size:
            cache.popitem(last=False)
        self._count += 1
        if self._count % SWEEP_EVERY == 0:
            self.sweep()
        return result

    def _begin(self, end: float | None) -> sqlite3.Connection:
        """``BEGIN IMMEDIATE`` (the write lock) waiting at most the busy timeout, or until ``end`` (monotonic)."""
        conn = self._connect()
        left = None if end is None else max(1, int((end - time.monotonic()) * 1000))
        busy = self._busy_ms if left is None else min(self._busy_ms, left)
        if self._busy_now != busy:
            conn.execute(f"PRAGMA busy_timeout = {busy}")  # an int: nothing from outside in the text
            self._busy_now = busy
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:  # "database is locked" past busy_timeout, a read-only or full disk
            if left is not None and left < self._busy_ms and "locked" in str(exc):  # the wait, not the busy timeout, ran out
                raise Abandoned(f"the state file {self.path.name} stayed locked past the wait: {exc}") from exc
            raise StateUnavailable(f"the state file {self.path.name} is unavailable: {exc}") from exc
        return conn

    def _fetch(self, conn: sqlite3.Connection, slots: Sequence[Slot], found: dict[Slot, Series]) -> None:
        """Add the series of ``slots`` to ``found`` (an absent one as an empty ``Series``): from the cache,
        the rest from the file."""
        missing = []
        for slot in slots:
            cached = self._cache.get(slot)
            if cached is not None:
                found[slot] = cached
            elif slot not in found:
                missing.append(slot)
        for slot in missing:  # one primary-key look-up each (a row-value IN over VALUES scanned: 570 us)
            row = conn.execute("SELECT data FROM series WHERE sig = ? AND key = ?", slot).fetchone()
            found[slot] = Series.load(json.loads(row[0])) if row is not None else Series()

    def _save(self, conn: sqlite3.Connection, slot: Slot, series: Series) -> None:
        if series.empty:
            conn.execute("DELETE FROM series WHERE sig = ? AND key = ?", slot)
            return
        expires = series.high + self.retention.get(slot[0], 90 * 86400.0)
        conn.execute(
            "INSERT INTO series (sig, key, high, expires, data) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (sig, key) DO UPDATE SET high = excluded.high, expires = excluded.expires, data = excluded.data",
            (*slot, series.high, expires, json.dumps(series.dump(), separators=(",", ":"))),
        )

    def sweep(self, now: float | None = None) -> int:
        """Delete the keys idle past their retention (as of ``now``, default the clock); returns how many."""
        conn = self._connect()
        cur = conn.execute("DELETE FROM series WHERE expires < ?", (time.time() if now is None else now,))
        self._cache.clear()
        return cur.rowcount

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT count(*) FROM series").fetchone()[0])

    def close(self) -> None:
        self._stop.set()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._cache.clear()
        self._data_version = -1


def open_store(setting: str) -> StateStore:
    """The state store a server's ``state`` setting names: ``memory``, ``redis://HOST:PORT/DB``
    (engine.state.redis_store; the ``redis`` extra) or an SQLite file path. A Redis that does not answer
    yet is not an error here (its flows take their ``state`` fallback until it does); an SQLite file
    that cannot be opened raises StateUnavailable."""
    if setting.strip().lower() == "memory":
        return MemoryStore(os.urandom(32))
    if setting.startswith(("redis://", "rediss://", "unix://")):
        from engine.state.redis_store import RedisStore

        return RedisStore(setting, lazy=True)  # a server starts without Redis (its ``unreachable`` says why)
    return SqliteStore(Path(setting))
