"""The retry cache is bounded by bytes: entry sizes are estimated at or above their measured size, and long ids are refused."""

from __future__ import annotations

import gc
import tracemalloc
from pathlib import Path

import pytest

from engine.datasets import read_card_payments, read_credit_applications
from engine.errors import InvalidInput
from engine.limits import MAX_REQUEST_ID_CHARS
from engine.policy.loader import load_policies
from engine.runtime.idempotency import Fingerprinter, IdempotencyCache, entry_bytes
from engine.runtime.privacy import HashKey
from engine.runtime.service import Decider

from .audit_helpers import make_decision

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def policies():
    return load_policies(ROOT)


def _cache(**kw) -> IdempotencyCache:
    return IdempotencyCache(Fingerprinter(HashKey(b"k")), **kw)


@pytest.mark.parametrize(
    ("flow", "version", "rows"),
    [("credit_application", "", lambda: read_credit_applications(ROOT / "data" / "credit_data.csv", 1500)),
     ("card_payment", "1", lambda: read_card_payments(ROOT / "data" / "card_payments.csv", 1500))],  # version 1's inputs
)
def test_estimated_entry_bytes_cover_the_measured_memory(policies, flow, version, rows):
    """For real decisions of both flows, the cache's byte estimate is at or above tracemalloc's measure (and within 3x)."""
    idem = _cache(max_entries=10**6, max_bytes=1 << 40)
    decider = Decider(policies, idempotency=idem)
    inputs = rows()
    for i, row in enumerate(inputs[:100]):  # warm caches outside the measure
        decider.decide(flow, row, version=version, request_id=f"warm-{i}")
    before_bytes = idem.bytes
    gc.collect()
    tracemalloc.start()
    start = tracemalloc.get_traced_memory()[0]
    for i, row in enumerate(inputs[100:]):
        decider.decide(flow, row, version=version, request_id=f"{flow}-{i:08d}-0123456789abcdef01234567")
    # A server drains the metrics and drift queues every second (engine.metrics, engine.monitor.live);
    # drain them here so that what is measured is the cache's memory alone.
    decider.metrics.flush()
    decider.drift.refresh()
    gc.collect()
    measured = tracemalloc.get_traced_memory()[0] - start
    tracemalloc.stop()
    estimated = idem.bytes - before_bytes
    assert measured <= estimated <= 3 * measured, (measured, estimated)


def test_the_byte_budget_forgets_the_oldest_entries():
    """Past max_bytes the oldest ids are forgotten first, and the held bytes never exceed the budget."""
    decision = make_decision(2)
    one = entry_bytes("id-000", decision)
    idem = _cache(max_bytes=3 * one + one // 2)
    for i in range(10):
        idem.once(f"id-{i:03d}", "f", "", {"a": float(i)}, lambda: decision)
        assert idem.bytes <= idem.max_bytes
    assert len(idem) == 3
    assert [request_id for _caller, request_id in idem._entries] == ["id-007", "id-008", "id-009"]


def test_preload_skips_ids_longer_than_the_limit():
    """A logged record with an over-long request id is not loaded into the cache."""
    decision = make_decision(2)
    idem = _cache()
    loaded = idem.preload([("r" * (MAX_REQUEST_ID_CHARS + 1), "fp", decision, 1.0), ("ok", "fp", decision, 1.0)])
    assert loaded == 1 and len(idem) == 1 and idem.bytes == entry_bytes("ok", decision)


def test_a_long_request_id_never_reaches_the_cache(policies):
    """The service refuses a request_id over MAX_REQUEST_ID_CHARS (naming it and the limit) before remembering it."""
    idem = _cache()
    decider = Decider(policies, idempotency=idem)
    with pytest.raises(InvalidInput) as info:
        decider.decide("credit_application", {}, request_id="r" * 60_000)
    (error,) = info.value.errors
    assert (error.field, error.code) == ("request_id", "too_long") and str(MAX_REQUEST_ID_CHARS) in error.message
    assert len(idem) == 0 and idem.bytes == 0
