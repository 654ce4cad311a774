"""A full SQLite state file is reported as StateUnavailable (gRPC UNAVAILABLE), not as a raw sqlite3 error."""

from __future__ import annotations

import pytest

from engine.errors import StateUnavailable
from engine.state.sqlite import SqliteStore


def test_full_state_file_raises_state_unavailable_and_keeps_serving(tmp_path):
    """When a write fails with 'database or disk is full' (SQLite rolls back itself), the store raises StateUnavailable and answers after."""
    store = SqliteStore(tmp_path / "full.db")
    store._connect().execute("PRAGMA max_page_count = 12")  # a file that cannot grow: what a full disk does

    def step(found: dict) -> tuple[None, list]:
        for series in found.values():
            for i in range(300):
                series.record(1e9 + i, (float(i),), [True], 60.0, 600.0, 1e6)
        return None, list(found)

    try:
        with pytest.raises(StateUnavailable, match="full"):
            store.transact([("sig", f"k{i}") for i in range(200)], step)
        assert store.transact([("sig", "k0")], lambda found: (len(found[("sig", "k0")].raw), [])) == 0
    finally:
        store.close()
