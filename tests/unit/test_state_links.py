"""Shared links one hop further (aggregate: linked): the same counts in every store, bounded reads."""

from __future__ import annotations

import pytest

from engine.state.hll import HLL_ERROR
from engine.state.plan import LINK_FANOUT
from engine.state.series import DISTINCT_BOUND
from engine.state.spec import StateFeatureSpec
from engine.state.sqlite import SqliteStore
from engine.state.store import MemoryStore
from engine.types import Action

from .state_links import EXPECTED, PAYMENT, T0, run_steps
from .test_state_core import _decider


def test_linked_customers_count_one_hop_in_the_memory_store():
    """In process: customers sharing a device are linked, two hops and links past the window are not."""
    assert run_steps(MemoryStore(b"k" * 32)) == EXPECTED


def test_linked_customers_count_one_hop_in_the_sqlite_store(tmp_path):
    """The embedded SQLite store gives the same counts as the in-process one."""
    store = SqliteStore(tmp_path / "s.db")
    assert run_steps(store) == EXPECTED
    store.close()


def test_linked_counts_past_the_distinct_bound_within_the_sketch_error():
    """A device shared by 600 customers in one hour bucket: the next customer reads about 600 (HLL)."""
    d = _decider(MemoryStore(b"k" * 32))
    n = 600
    assert n > 2 * DISTINCT_BOUND
    for i in range(n):
        d.decide("card_payment", {**PAYMENT, "customer_id": f"M{i}", "device_id": "SHARED", "event_time": T0 + i}, version="2")
    got = d.decide("card_payment", {**PAYMENT, "customer_id": "NEW", "device_id": "SHARED", "event_time": T0 + n}, version="2")
    assert abs(got.state["linked_customers_7d"] - n) <= 4 * HLL_ERROR * n


def test_a_customer_with_many_devices_follows_at_most_the_fanout_bound():
    """A customer on 100 devices, each shared with one other customer: only LINK_FANOUT are followed."""
    d = _decider(MemoryStore(b"k" * 32))
    for i in range(100):
        d.decide("card_payment", {**PAYMENT, "customer_id": f"O{i}", "device_id": f"D{i}", "event_time": T0 + 2 * i}, version="2")
        d.decide("card_payment", {**PAYMENT, "customer_id": "HUB", "device_id": f"D{i}", "event_time": T0 + 2 * i + 1}, version="2")
    got = d.decide("card_payment", {**PAYMENT, "customer_id": "HUB", "device_id": "D99", "event_time": T0 + 300}, version="2")
    assert got.state["linked_customers_7d"] == LINK_FANOUT


def test_a_device_sharing_ring_is_sent_to_review():
    """The fourth customer on one device is linked to three others: REVIEW for SHARED_DEVICE_RING."""
    d = _decider(MemoryStore(b"k" * 32))
    for i in range(3):
        first = d.decide("card_payment", {**PAYMENT, "customer_id": f"R{i}", "device_id": "RING", "event_time": T0 + i}, version="2")
        assert "SHARED_DEVICE_RING" not in [r.code for r in first.reasons]
    got = d.decide("card_payment", {**PAYMENT, "customer_id": "R3", "device_id": "RING", "event_time": T0 + 3}, version="2")
    assert got.state["linked_customers_7d"] == 3
    assert got.action == Action.REVIEW and [r.code for r in got.reasons] == ["SHARED_DEVICE_RING"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"aggregate": "linked", "key": ["customer_id", "card_number"], "field": "device_id", "window": "7d"}, "one key field"),
        ({"aggregate": "linked", "key": "customer_id", "field": "customer_id", "window": "7d"}, "different field"),
        ({"aggregate": "linked", "key": "customer_id", "window": "7d"}, "needs a 'field'"),
    ],
)
def test_a_malformed_linked_feature_is_refused_with_its_reason(spec, message):
    """linked takes one key field and a different shared field; anything else is a schema error."""
    with pytest.raises(ValueError, match=message):
        StateFeatureSpec.model_validate(spec)
