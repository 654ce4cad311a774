"""Open an SQLite file in WAL mode when other processes may open it at the same moment.

The review queue (engine/cases), the custom lists (engine/custom_lists) and the state store
(engine/state/sqlite.py) each keep an SQLite file that every ``verdict serve --workers N`` process
opens at start. Switching a file into WAL mode needs a moment of exclusive access, and SQLite can
answer that ``PRAGMA journal_mode=WAL`` with "database is locked" at once, without waiting the busy
timeout, while another process holds the file (https://www.sqlite.org/wal.html, "Activating And
Configuring WAL Mode"; seen here as a worker exiting with ``lists_open_failed: database is locked``).
``connect_wal`` retries that switch until the same timeout the connection uses for every other lock.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

__all__ = ["connect_wal"]


def connect_wal(
    path: Path | str, *, timeout: float, synchronous: str = "FULL", check_same_thread: bool = False
) -> sqlite3.Connection:
    """A connection to ``path`` in autocommit mode, WAL journal, ``synchronous`` (FULL or NORMAL) and a
    busy timeout of ``timeout`` seconds.

    Raises ``sqlite3.Error`` as ``sqlite3.connect`` does, and ``sqlite3.OperationalError`` when the file
    stays locked for ``timeout`` seconds.
    """
    if synchronous not in ("FULL", "NORMAL"):
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=check_same_thread)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() >= deadline:
                    raise
                time.sleep(0.02)
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
    except BaseException:
        conn.close()
        raise
    return conn
