"""Tests of idempotent retries: same request id -> same decision; another request -> conflict."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from engine.errors import IdempotencyConflict, InvalidInput
from engine.policy.loader import load_policies
from engine.runtime.idempotency import Fingerprinter, IdempotencyCache, canonical_json
from engine.runtime.privacy import HashKey
from engine.runtime.service import Decider

from .audit_helpers import make_decision

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = {
    "seniority": 9, "home": "rent", "time": 60, "age": 30, "marital": "married", "records": False,
    "job": "freelance", "expenses": 73, "income": 129, "assets": 0, "debt": 0, "amount": 800, "price": 846,
}  # fmt: skip


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def policies():
    return load_policies(ROOT)


def cache(clock: Clock | None = None, **kw) -> IdempotencyCache:
    return IdempotencyCache(Fingerprinter(HashKey(b"k")), clock=clock or Clock(), **kw)


def test_canonical_json_treats_ints_as_floats_and_sorts_keys():
    """5 and 5.0 are the same request, and key order does not matter."""
    assert canonical_json({"b": 5, "a": [1, True]}) == canonical_json({"a": [1.0, True], "b": 5.0})
    assert canonical_json({"a": 1}) != canonical_json({"a": "1"})


def test_fingerprint_depends_on_key_flow_version_and_input():
    """Fingerprints differ when the key, flow, requested version or input differ."""
    f1, f2 = Fingerprinter(HashKey(b"one")), Fingerprinter(HashKey(b"two"))
    base = f1("f", "", {"a": 1.0})
    assert base == f1("f", "", {"a": 1})
    assert len({base, f2("f", "", {"a": 1.0}), f1("g", "", {"a": 1.0}), f1("f", "2", {"a": 1.0}), f1("f", "", {"a": 2.0})}) == 5


def test_retry_returns_the_stored_decision_even_after_a_new_version_goes_live(policies):
    """The second call with the same request id returns the first decision, same id, not re-decided."""
    idem = cache()
    decider = Decider(policies, idempotency=idem)
    first = decider.decide("credit_application", APPLICATION, request_id="r-1")
    decider.swap(policies)  # a reload (e.g. a new live version) in between changes nothing for the retry
    again = decider.decide("credit_application", dict(APPLICATION), request_id="r-1")
    assert again.decision_id == first.decision_id and again.outcome.action == first.outcome.action
    assert again.reasons == first.reasons
    other = decider.decide("credit_application", APPLICATION, request_id="r-2")
    assert other.decision_id != first.decision_id


def test_reused_request_id_with_another_input_is_a_conflict(policies):
    """Same request id, different input (or flow/version) -> IdempotencyConflict naming the id."""
    decider = Decider(policies, idempotency=cache())
    decider.decide("credit_application", APPLICATION, request_id="r-1")
    with pytest.raises(IdempotencyConflict, match="r-1"):
        decider.decide("credit_application", {**APPLICATION, "amount": 900}, request_id="r-1")
    with pytest.raises(IdempotencyConflict):
        decider.decide("credit_application", APPLICATION, version="1", request_id="r-1")


def test_no_request_id_means_no_idempotency(policies):
    """Requests without a request id are always decided afresh."""
    decider = Decider(policies, idempotency=cache())
    a = decider.decide("credit_application", APPLICATION)
    b = decider.decide("credit_application", APPLICATION)
    assert a.decision_id != b.decision_id


def test_failed_request_is_not_remembered(policies):
    """An invalid request leaves no entry: the corrected retry with the same id is decided."""
    idem = cache()
    decider = Decider(policies, idempotency=idem)
    with pytest.raises(InvalidInput):
        decider.decide("credit_application", {**APPLICATION, "age": -5}, request_id="r-1")
    assert len(idem) == 0
    assert decider.decide("credit_application", APPLICATION, request_id="r-1").request_id == "r-1"


def test_window_expiry():
    """After the window the request id is free again (a new decision)."""
    clock = Clock()
    idem = cache(clock, window_seconds=60)
    calls = []

    def decide():
        calls.append(1)
        return make_decision(len(calls))

    first = idem.once("r", "f", "", {"a": 1.0}, decide)
    clock.now += 59
    assert idem.once("r", "f", "", {"a": 1.0}, decide) is first
    clock.now += 2
    assert idem.once("r", "f", "", {"a": 2.0}, decide).decision_id != first.decision_id
    assert len(calls) == 2


def test_memory_is_bounded_by_max_entries():
    """Past max_entries the oldest ids are forgotten first."""
    idem = cache(max_entries=3)
    for i in range(5):
        idem.once(f"r{i}", "f", "", {}, lambda i=i: make_decision(i))
    assert len(idem) == 3
    assert idem.once("r0", "f", "", {"x": 1.0}, lambda: make_decision(99)).decision_id == "d000099"


def test_concurrent_duplicates_get_one_decision():
    """Calls racing with one request id all get the decision of the single call that decided."""
    idem = cache()
    started = threading.Event()
    calls = []

    def slow_decide():
        calls.append(1)
        started.set()
        time.sleep(0.05)
        return make_decision(7)

    results = []
    threads = [threading.Thread(target=lambda: results.append(idem.once("r", "f", "", {"a": 1.0}, slow_decide))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert {r.decision_id for r in results} == {"d000007"} and len(results) == 8


def test_preload_restores_recent_decisions():
    """Entries preloaded from the log answer retries; ones older than the window are skipped."""
    fp = Fingerprinter(HashKey(b"k"))
    idem = IdempotencyCache(fp, window_seconds=60, clock=Clock())
    n = idem.preload(
        [
            ("old", fp("f", "", {"a": 1.0}), make_decision(1), 61.0),
            ("new", fp("f", "", {"a": 1.0}), make_decision(2), 10.0),
        ]
    )
    assert n == 1
    assert idem.once("new", "f", "", {"a": 1}, lambda: make_decision(3)).decision_id == "d000002"
    with pytest.raises(IdempotencyConflict):
        idem.once("new", "f", "", {"a": 2.0}, lambda: make_decision(3))


def test_stored_decision_drops_feature_values(policies):
    """What is kept for retries holds no evaluated feature values (no raw input kept in memory)."""
    decider = Decider(policies, idempotency=cache())
    decider.decide("credit_application", APPLICATION, request_id="r-1")
    again = decider.decide("credit_application", APPLICATION, request_id="r-1")
    assert dict(again.outcome.features) == {}


def test_request_ids_are_scoped_per_caller(policies):
    """The same request id from two callers is two requests: neither gets, blocks or conflicts with the other's."""
    decider = Decider(policies, idempotency=cache())
    alice = decider.decide("credit_application", APPLICATION, request_id="r-1", caller="alice")
    bob = decider.decide("credit_application", {**APPLICATION, "amount": 900}, request_id="r-1", caller="bob")
    assert bob.decision_id != alice.decision_id  # bob's id was not claimed by alice first
    assert (alice.caller, bob.caller) == ("alice", "bob")
    again = decider.decide("credit_application", APPLICATION, request_id="r-1", caller="alice")
    assert again.decision_id == alice.decision_id  # alice's retry still gets alice's decision
    anonymous = decider.decide("credit_application", APPLICATION, request_id="r-1")
    assert anonymous.decision_id not in (alice.decision_id, bob.decision_id)
    with pytest.raises(IdempotencyConflict):
        decider.decide("credit_application", {**APPLICATION, "amount": 901}, request_id="r-1", caller="bob")


def test_preload_scopes_each_logged_decision_to_its_caller():
    """A decision logged for alice answers alice's retry after a restart, not bob's request with the same id."""
    import dataclasses

    fp = Fingerprinter(HashKey(b"k"))
    idem = IdempotencyCache(fp, window_seconds=60, clock=Clock())
    logged = dataclasses.replace(make_decision(1), caller="alice")
    assert idem.preload([("r", fp("f", "", {"a": 1.0}), logged, 5.0)]) == 1
    assert idem.once("r", "f", "", {"a": 1.0}, lambda: make_decision(2), caller="alice").decision_id == "d000001"
    assert idem.once("r", "f", "", {"a": 1.0}, lambda: make_decision(3), caller="bob").decision_id == "d000003"
