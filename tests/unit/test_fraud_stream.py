"""The seeded event-stream generator: deterministic, in event-time order, well-formed, with its attack patterns."""

from __future__ import annotations

from collections import defaultdict

import pytest

from engine.runtime.pan import luhn_valid
from engine.training.fraud_stream import EVENT_FIELDS, LABELS, STREAM_START, StreamParams, generate_stream

SMALL = StreamParams(seed=3, customers=300, days=10, bursts=12, card_tests=4, rings=4)


@pytest.fixture(scope="module")
def events() -> list[dict]:
    """A small seeded stream: 300 customers over 10 days."""
    return generate_stream(SMALL)


def test_deterministic_for_a_seed() -> None:
    """The same parameters give the same events; another seed gives other events."""
    small = StreamParams(seed=5, customers=40, days=3, bursts=2, card_tests=1, rings=1)
    assert generate_stream(small) == generate_stream(small)
    assert generate_stream(small) != generate_stream(StreamParams(seed=6, customers=40, days=3, bursts=2, card_tests=1, rings=1))


def test_events_are_in_event_time_order_within_the_stream(events: list[dict]) -> None:
    """Event times never go back and stay within [start, start + days)."""
    times = [e["event_time"] for e in events]
    assert times == sorted(times)
    assert times[0] >= STREAM_START and times[-1] < STREAM_START + SMALL.days * 86400


def test_fields_and_domains(events: list[dict]) -> None:
    """Exactly the documented fields; hour is the UTC hour of event_time; card numbers pass the Luhn check."""
    assert all(tuple(e) == (*EVENT_FIELDS, *LABELS) for e in events)
    assert all(e["hour"] == int(e["event_time"] % 86400 // 3600) for e in events)
    assert all(luhn_valid(e["card_number"]) for e in events if e["card_number"] is not None)
    assert all(e["amount"] >= 0.5 and e["account_age_days"] >= 0 for e in events)
    assert {e["is_fraud"] for e in events} == {0, 1}


def test_missing_value_rules(events: list[dict]) -> None:
    """ip_country is missing for card-present, distance exactly for card-not-present, cvv exactly for card-present."""
    assert all(e["ip_country"] is None for e in events if e["card_present"])
    assert all((e["distance_from_home_km"] is None) == (not e["card_present"]) for e in events)
    assert all((e["cvv_match"] is None) == e["card_present"] for e in events)
    assert any(e["device_id"] is None for e in events) and any(e["card_number"] is None for e in events)


def test_labels_follow_the_patterns(events: list[dict]) -> None:
    """Every attack pattern is labelled fraud, ordinary payments legitimate, friendly fraud fraud."""
    by_pattern = defaultdict(set)
    for e in events:
        by_pattern[e["pattern"]].add(e["is_fraud"])
    assert by_pattern["legit"] == {0}
    assert {p for p, labels in by_pattern.items() if labels == {1}} >= {"stolen_card", "card_testing", "device_ring"}


def test_stolen_card_bursts_are_many_payments_in_two_hours_on_one_card(events: list[dict]) -> None:
    """A stolen-card burst: 3 or more payments of one victim's card within two hours."""
    bursts = defaultdict(list)
    for e in events:
        if e["pattern"] in ("stolen_card", "counterfeit", "lost_card"):
            bursts[e["customer_id"]].append(e["event_time"])
    assert bursts
    assert max(max(t) - min(t) for t in bursts.values()) <= 2 * 3600 * 2  # at most two bursts on one victim
    assert max(len(t) for t in bursts.values()) >= 3


def test_card_testing_tries_many_cards_from_one_device(events: list[dict]) -> None:
    """A card-testing run uses one device for 8 or more distinct cards, with small amounts."""
    cards = defaultdict(set)
    for e in events:
        if e["pattern"] == "card_testing":
            assert e["amount"] <= 12.0 and not e["card_present"]
            if e["device_id"] is not None and e["card_number"] is not None:
                cards[e["device_id"]].add(e["card_number"])
    assert cards and max(len(c) for c in cards.values()) >= 8


def test_rings_share_devices_between_customers(events: list[dict]) -> None:
    """A device-sharing ring: one device used by four or more distinct customers."""
    customers = defaultdict(set)
    for e in events:
        if e["pattern"] == "device_ring" and e["device_id"] is not None:
            customers[e["device_id"]].add(e["customer_id"])
    assert customers and max(len(c) for c in customers.values()) >= 4


@pytest.mark.parametrize("bad", [{"customers": 5}, {"days": 1}, {"payments_per_day": 0.0}, {"rings": -1}, {"friendly_rate": 1.0}])
def test_parameters_out_of_range_are_refused(bad: dict) -> None:
    """A parameter outside its documented range raises ValueError."""
    with pytest.raises(ValueError):
        StreamParams(**bad)
