"""connect_wal: WAL mode on a file another process holds locked at the moment it opens."""

from __future__ import annotations

import sqlite3
import threading
import time

import pytest

from engine.sqlite_wal import connect_wal


def _hold_exclusive(path, seconds: float, ready: threading.Event) -> None:
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(seconds)
    conn.execute("COMMIT")
    conn.close()


def _locked_elsewhere(path, seconds: float) -> threading.Thread:
    """An existing file at ``path`` that another connection holds exclusively for ``seconds`` (join the thread)."""
    sqlite3.connect(str(path)).close()
    ready = threading.Event()
    holder = threading.Thread(target=_hold_exclusive, args=(path, seconds, ready))
    holder.start()
    ready.wait(5)
    return holder


def test_waits_for_a_lock_held_elsewhere_then_opens_in_wal(tmp_path):
    """A file held exclusively for 0.3 s: the connection waits, then is in WAL mode with the asked synchronous level."""
    path = tmp_path / "x.db"
    holder = _locked_elsewhere(path, 0.3)
    conn = connect_wal(path, timeout=5.0, synchronous="NORMAL")
    holder.join()
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    conn.close()


def test_a_lock_held_past_the_timeout_is_an_operational_error(tmp_path):
    """Held for longer than the timeout: sqlite3.OperationalError naming the lock, no connection left open."""
    path = tmp_path / "x.db"
    holder = _locked_elsewhere(path, 1.0)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        connect_wal(path, timeout=0.2)
    holder.join()


def test_workers_opening_a_new_file_together_all_get_wal(tmp_path):
    """Eight threads opening one new file at once (as --workers do at start): every one gets a WAL connection."""
    path = tmp_path / "new.db"
    modes: list[str] = []
    errors: list[BaseException] = []

    def open_one() -> None:
        try:
            conn = connect_wal(path, timeout=5.0)
            conn.execute("CREATE TABLE IF NOT EXISTS t (x)")
            modes.append(conn.execute("PRAGMA journal_mode").fetchone()[0])
            conn.close()
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and modes == ["wal"] * 8


def test_synchronous_must_be_full_or_normal(tmp_path):
    """Any other synchronous level is refused before a file is opened."""
    with pytest.raises(ValueError, match="FULL or NORMAL"):
        connect_wal(tmp_path / "x.db", timeout=1.0, synchronous="OFF")
    assert not (tmp_path / "x.db").exists()
