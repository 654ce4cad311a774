"""engine.state: series windows, buckets, lateness, distinct counts, plans and stores."""

from __future__ import annotations

import random
import threading
from pathlib import Path

import pytest

from engine.errors import InvalidInput
from engine.policy.loader import load_policies
from engine.runtime.service import Decider
from engine.state.hll import HLL_ERROR, HyperLogLog
from engine.state.series import RAW_BOUND, Series
from engine.state.sqlite import SqliteStore
from engine.state.store import MemoryStore

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
NUMERIC = (True,)


def _series(times: list[float], values: list[float] | None = None, resolution: float = 60.0) -> Series:
    s = Series()
    for i, t in enumerate(times):
        assert s.add(t, ((values[i] if values else 1.0),), NUMERIC, resolution, 10**9)
    return s


def test_empty_history_gives_zero_counts_and_missing_averages():
    """With no history count/sum/distinct are 0 and avg/min/max/first/last/time-since are missing."""
    s = Series()
    got = {k: s.aggregate(k, 0, T0 - 3600, T0) for k in ("count", "sum", "distinct", "avg", "min", "max", "first_seen", "last_seen", "time_since_last")}
    assert got == {"count": 0, "sum": 0.0, "distinct": 0, "avg": None, "min": None, "max": None,
                   "first_seen": None, "last_seen": None, "time_since_last": None}


def test_window_counts_events_after_its_start_up_to_its_end():
    """A window (t - w, t] counts the events inside it only: none older, none later than t."""
    s = _series([T0 - 7200, T0 - 3600, T0 - 3599, T0 - 1, T0, T0 + 1], [1, 2, 3, 4, 5, 6])
    assert s.aggregate("count", 0, T0 - 3600, T0) == 3
    assert s.aggregate("sum", 0, T0 - 3600, T0) == 12.0
    assert s.aggregate("avg", 0, T0 - 3600, T0) == 4.0
    assert (s.aggregate("min", 0, T0 - 3600, T0), s.aggregate("max", 0, T0 - 3600, T0)) == (3.0, 5.0)
    assert s.aggregate("time_since_last", 0, T0 - 3600, T0 - 0.5) == 0.5
    assert s.aggregate("first_seen", 0, T0 - 3600, T0) == T0 - 3599


def test_out_of_order_events_within_lateness_land_in_their_window_and_later_ones_are_refused():
    """An event up to `lateness` behind the key's latest is placed by its own time; one later than that is refused."""
    s = Series()
    assert s.add(T0, (1.0,), NUMERIC, 60, 600)
    assert s.add(T0 - 500, (1.0,), NUMERIC, 60, 600)
    assert not s.add(T0 - 700, (1.0,), NUMERIC, 60, 600)
    assert s.aggregate("count", 0, T0 - 600, T0 - 100) == 1
    assert s.aggregate("count", 0, T0 - 3600, T0) == 2


def test_buckets_keep_memory_bounded_and_counts_exact_at_bucket_edges():
    """Past RAW_BOUND events the oldest are bucketed: the exact events never exceed the bound, and a window
    starting on a bucket boundary counts exactly what the raw events would."""
    times = [T0 - 86400 + 30 * i for i in range(2000)]
    values = [float(i % 17) for i in range(2000)]
    s = _series(times, values, resolution=60)
    assert len(s.raw) <= RAW_BOUND and s.buckets
    since = T0 - 86400 + 60 * 100 - 0.5  # just before a bucket start: whole buckets only
    inside = [(t, v) for t, v in zip(times, values, strict=True) if since < t <= T0]
    assert s.aggregate("count", 0, since, T0) == len(inside)
    assert s.aggregate("sum", 0, since, T0) == pytest.approx(sum(v for _, v in inside))
    assert s.aggregate("max", 0, since, T0) == max(v for _, v in inside)
    assert Series.load(s.dump()).aggregate("sum", 0, since, T0) == s.aggregate("sum", 0, since, T0)


def test_distinct_is_exact_up_to_its_bound_then_within_the_sketch_error():
    """Distinct items are exact while a bucket holds few; 20,000 items counted through HyperLogLog
    stay within 4 standard errors (HLL_ERROR) of the truth."""
    s = Series()
    for i in range(50):
        s.add(T0 + i, (float(i % 7),), NUMERIC, 60, 10**9)
    assert s.aggregate("distinct", 0, T0 - 1, T0 + 100) == 7
    rng = random.Random(7)
    sketch = HyperLogLog.of(rng.getrandbits(64) for _ in range(20_000))
    assert abs(sketch.count() - 20_000) / 20_000 < 4 * HLL_ERROR


def test_idle_keys_expire_after_their_retention():
    """expire() forgets events and buckets wholly before the retention bound (the TTL of idle keys)."""
    s = _series([T0 - 10_000 + i for i in range(400)])
    s.expire(T0 + 1, 60)
    assert s.empty


def _decider(store: object) -> Decider:
    return Decider(load_policies(ROOT), state=store)  # type: ignore[arg-type]


PAYMENT = {
    "amount": 20.0, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE", "card_country": "DE",
    "card_present": True, "entry_mode": "chip", "hour": 14, "customer_id": "C1", "device_id": "D1",
    "card_number": "4111111111111111", "account_age_days": 400,
}


def test_a_decision_reads_features_as_of_just_before_itself():
    """Each decision sees the decisions before it (point in time), never itself or a later one."""
    d = _decider(MemoryStore(b"k" * 32))
    counts = [d.decide("card_payment", {**PAYMENT, "event_time": T0 + 60 * i}, version="2").state["txn_count_1h"] for i in range(4)]
    assert counts == [0, 1, 2, 3]
    earlier = d.decide("card_payment", {**PAYMENT, "event_time": T0 + 30}, version="2").state
    assert earlier["txn_count_1h"] == 1  # out of order (within lateness): only the one before it


def test_callers_cannot_send_stateful_features():
    """A request carrying a feature the server computes is refused naming it (INVALID_ARGUMENT)."""
    d = _decider(MemoryStore())
    with pytest.raises(InvalidInput) as err:
        d.decide("card_payment", {**PAYMENT, "txn_count_1h": 0}, version="2")
    assert "txn_count_1h" in str(err.value)


def test_distinct_cards_per_device_are_counted_without_storing_card_numbers(tmp_path):
    """Three cards on one device give cards_per_device_24h 3; the state file holds no card number."""
    store = SqliteStore(tmp_path / "s.db")
    d = _decider(store)
    for i, pan in enumerate(["4111111111111111", "5500000000000004", "340000000000009", "4111111111111111"]):
        state = d.decide("card_payment", {**PAYMENT, "customer_id": f"C{i}", "card_number": pan, "event_time": T0 + i}, version="2").state
    assert state["cards_per_device_24h"] == 3 and state["customers_per_device_7d"] == 3
    store.close()
    data = (tmp_path / "s.db").read_bytes() + b"".join(p.read_bytes() for p in tmp_path.glob("s.db-wal"))
    assert b"4111111111111111" not in data and b"C1" not in data and b"D1" not in data


def test_sqlite_store_counts_exactly_under_concurrent_threads(tmp_path):
    """Eight threads deciding 25 payments each for one customer leave a count of exactly 200."""
    store = SqliteStore(tmp_path / "s.db")
    d = _decider(store)

    def pay(k: int) -> None:
        for i in range(25):
            d.decide("card_payment", {**PAYMENT, "event_time": T0 + k * 25 + i}, version="2")

    threads = [threading.Thread(target=pay, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    last = d.decide("card_payment", {**PAYMENT, "event_time": T0 + 1000}, version="2").state
    assert last["txn_count_1h"] == 200


def test_a_state_file_held_locked_is_unavailable_and_nothing_is_recorded(tmp_path):
    """While another connection holds the write lock past the busy timeout, a decision fails as the store's
    failure (version 2's state budget: on_miss error, StepFailed, gRPC UNAVAILABLE), and once the lock is
    gone the history shows nothing of it."""
    import sqlite3

    import grpc

    from engine.errors import StepFailed
    from engine.grpc.status import status_for

    store = SqliteStore(tmp_path / "s.db", busy_ms=50)
    d = _decider(store)
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(StepFailed, match="StateUnavailable") as err:
        d.decide("card_payment", {**PAYMENT, "event_time": T0}, version="2")
    assert status_for(err.value)[0] == grpc.StatusCode.UNAVAILABLE
    holder.execute("ROLLBACK")
    assert d.decide("card_payment", {**PAYMENT, "event_time": T0 + 1}, version="2").state["txn_count_1h"] == 0


def test_an_unreachable_redis_is_unavailable_not_a_crash():
    """A Redis store on a port where nothing listens raises StateUnavailable naming the address."""
    from engine.errors import StateUnavailable
    from engine.state.redis_store import RedisStore

    with pytest.raises(StateUnavailable, match=r"127\.0\.0\.1:1\b"):
        RedisStore("redis://127.0.0.1:1/0")


def test_two_sqlite_stores_on_one_file_see_each_others_payments(tmp_path):
    """Two stores on one file (two ``--workers`` processes, each with its cache of parsed series) alternating
    payments of one customer count every one: a commit by the other empties the cache (data_version)."""
    a, b = SqliteStore(tmp_path / "s.db"), SqliteStore(tmp_path / "s.db")
    da, db = _decider(a), _decider(b)
    seen = [(da if i % 2 == 0 else db).decide("card_payment", {**PAYMENT, "event_time": T0 + i}, version="2").state["txn_count_1h"]
            for i in range(8)]
    assert seen == list(range(8))
    a.close()
    b.close()


def test_a_failed_sqlite_transaction_leaves_no_changed_series_in_the_cache(tmp_path):
    """A step that changes series in place and then raises rolls back, and the next read comes from the file,
    not from the cached objects it changed: the count is unchanged."""
    store = SqliteStore(tmp_path / "s.db")
    d = _decider(store)
    d.decide("card_payment", {**PAYMENT, "event_time": T0}, version="2")
    plan = d.policies.flows["card_payment"].versions["2"].state
    slots = plan.slots(PAYMENT, store.salt)

    def record_then_fail(series):  # type: ignore[no-untyped-def]
        plan.record(series, slots, PAYMENT, T0 + 1, store.salt)
        raise RuntimeError("after the record, before the commit")

    with pytest.raises(RuntimeError):
        store.transact([s for s in slots if s is not None], record_then_fail)
    assert d.decide("card_payment", {**PAYMENT, "event_time": T0 + 2}, version="2").state["txn_count_1h"] == 1
    store.close()
