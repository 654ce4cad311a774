"""The bulk path of benchmarks/state_scale.py leaves the series one-by-one decisions leave (memory, SQLite)."""

from __future__ import annotations

from typing import Any

from benchmarks.state_scale import card_plan, customer, decide_once, history, populate
from engine.state.plan import StatePlan
from engine.state.sqlite import SqliteStore
from engine.state.store import MemoryStore

NOW = 1_800_000_000.0  # event times: the 28 days before it


def one_by_one(plan: StatePlan, n: int, first: int = 0) -> MemoryStore:
    """A store populated by one decision per payment, in event-time order (what serving does)."""
    store = MemoryStore(b"r" * 32)
    for at, values in history(first, first + n, NOW):
        decide_once(store, plan, values, at)
    return store


def probe(store: Any, plan: StatePlan, n: int, first: int = 0) -> list[dict[str, Any]]:
    """card_payment 3's features for a new payment of each customer on its own device, then on a device
    never seen (its linked customers then come only through the devices the customer used before)."""
    return [
        decide_once(store, plan, {"customer_id": customer(i), "device_id": device, "card_number": f"4{i:015d}", "amount": 10.0}, NOW + 1)
        for i in range(first, first + n)
        for device in (f"D{i:08d}", f"X{i:08d}")
    ]


def assert_has_history(features: list[dict[str, Any]]) -> None:
    """The probe read real history: every customer has payments, some share a device with another."""
    assert all(f["amount_avg_30d"] is not None for f in features)
    assert sum(f["linked_customers_7d"] for f in features[1::2]) > 0  # on the new device: through past devices only


def test_bulk_memory_store_answers_as_one_by_one_decisions():
    """Batches of 6 customers in one transaction each give every customer the features one-by-one decisions give."""
    plan = card_plan()
    bulk = MemoryStore(b"b" * 32)
    written = populate(bulk, plan, 40, NOW, size=6)
    assert written == len(history(0, 40, NOW))
    expected = probe(one_by_one(plan, 40), plan, 40)
    assert_has_history(expected)
    assert probe(bulk, plan, 40) == expected


def test_bulk_sqlite_store_answers_as_one_by_one_decisions(tmp_path):
    """The SQLite store populated by large write transactions, read back from its file, matches one-by-one decisions."""
    plan = card_plan()
    store = SqliteStore(tmp_path / "bulk.db")
    store.retention.update({s.sig: s.retention for s in plan.streams})
    populate(store, plan, 40, NOW, size=10)
    store.close()
    reopened = SqliteStore(tmp_path / "bulk.db")  # nothing from the writer's cache: the rows as stored
    try:
        assert probe(reopened, plan, 40) == probe(one_by_one(plan, 40), plan, 40)
    finally:
        reopened.close()
