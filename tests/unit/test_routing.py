"""Tests of champion-challenger routing and shadow evaluation."""

import threading
from collections.abc import Mapping
from typing import Any

import pytest

from engine.loader import load, load_policies
from engine.routing import Challenger, bucket, key_text
from engine.service import Decider
from engine.types import Decision

from .policy_roots import demo_root, write

BASE = {"amount": 5000, "age": 30, "income": 100}


def routed_root(tmp_path, routing: str, *, limit2: int | None = None):
    """demo versions 1, 2 and 3; version 2 reviews from 9000 (not 1000) when `limit2` is set."""
    root = demo_root(tmp_path, versions=("1", "2", "3"), tests=False)
    if limit2 is not None:
        write(root, "rules/main2.yaml", (root / "rules/main.yaml").read_text().replace("demo.main", "demo.main2").replace("amount > 1000", f"amount > {limit2}"))
        flow = root / "policies/demo/2/flow.yaml"
        flow.write_text(flow.read_text().replace("rulesets: [demo.main]", "rulesets: [demo.main2]"))
    write(root, "policies/demo/routing.yaml", routing)
    return root


class ListSink:
    """A DecisionSink keeping every decision (thread-safe)."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []
        self._lock = threading.Lock()

    def record(self, decision: Decision, raw_input: Mapping[str, Any]) -> None:
        with self._lock:
            self.decisions.append(decision)


def test_key_text_is_the_same_however_the_caller_encodes_it():
    """123 and 123.0 (Struct numbers) and ' abc ' and 'abc' route alike; lists do not route."""
    assert key_text(123) == key_text(123.0) == "123"
    assert key_text(" abc ") == "abc"
    assert key_text(True) == "true"
    assert key_text(None) is None and key_text("") is None and key_text([1]) is None and key_text(float("nan")) is None


def test_bucket_is_stable_and_in_range():
    """The bucket is a pure function of flow, key and value, in [0, 1)."""
    values = [bucket("f", "customer_id", f"C{i}") for i in range(1000)]
    assert all(0 <= v < 1 for v in values)
    assert values == [bucket("f", "customer_id", f"C{i}") for i in range(1000)]
    assert bucket("f", "customer_id", "C1") != bucket("g", "customer_id", "C1")


@pytest.mark.parametrize("share", [0.1, 0.5])
def test_challenger_share_is_within_two_percent_over_10000_keys(tmp_path, share):
    """Over 10,000 distinct customers the challenger's share lands within ±2% of its target."""
    root = routed_root(tmp_path, f'live: "1"\nchallenger: {{version: "2", share: {share}, key: customer_id}}\n')
    decider = Decider(load_policies(root))
    routes = [decider.resolve("demo", "", {**BASE, "customer_id": f"C{i:07d}"})[1] for i in range(10_000)]
    assert abs(routes.count("challenger") / 10_000 - share) <= 0.02
    assert set(routes) == {"live", "challenger"}


def test_raising_the_share_only_adds_customers_to_the_challenger():
    """Every customer of a 20% challenger stays with it at 30%; numeric ids route like their text."""
    small, large = Challenger("3", 0.2, "customer_id"), Challenger("3", 0.3, "customer_id")
    ids = range(10_000)
    at_20 = {i for i in ids if small.takes("f", {"customer_id": float(i)})}  # a Struct carries numbers as floats
    at_30 = {i for i in ids if large.takes("f", {"customer_id": str(i)})}
    assert at_20 < at_30
    assert abs(len(at_20) / 10_000 - 0.2) <= 0.02 and abs(len(at_30) / 10_000 - 0.3) <= 0.02


def test_one_customer_always_sees_the_same_version(tmp_path):
    """Every request of a customer goes to the same version, and the decision says which route."""
    root = routed_root(tmp_path, 'live: "1"\nchallenger: {version: "2", share: 0.5, key: customer_id}\n', limit2=9000)
    decider = Decider(load_policies(root))
    for i in range(50):
        first = decider.decide("demo", {**BASE, "customer_id": f"K{i}"})
        again = [decider.decide("demo", {**BASE, "customer_id": f"K{i}"}) for _ in range(3)]
        assert {(d.version, d.route) for d in again} == {(first.version, first.route)}
        assert (first.version, first.route) in {("1", "live"), ("2", "challenger")}
        assert first.action.name == ("REVIEW" if first.version == "1" else "APPROVE")  # the versions differ


def test_pinned_version_overrides_routing_and_no_key_means_live(tmp_path):
    """A pinned version wins over the challenger; a request without the key gets the live version."""
    root = routed_root(tmp_path, 'live: "1"\nchallenger: {version: "2", share: 1.0, key: customer_id}\n')
    decider = Decider(load_policies(root))
    assert decider.decide("demo", {**BASE, "customer_id": "A"}).route == "challenger"
    pinned = decider.decide("demo", {**BASE, "customer_id": "A"}, version="3")
    assert (pinned.version, pinned.route) == ("3", "pinned")
    assert (decider.decide("demo", BASE).version, decider.decide("demo", BASE).route) == ("1", "live")
    assert decider.live_version("demo") == "1"


def test_routing_file_errors_are_located(tmp_path):
    """Unknown versions, a challenger or shadow that is live, and an unknown key are errors with lines."""
    root = routed_root(
        tmp_path,
        'live: "1"\nchallenger: {version: "1", share: 0.2, key: client}\nshadow: ["1", "9"]\n',
    )
    found = {(p.code, p.line) for p in load(root).errors}
    assert found == {("challenger_is_live", 2), ("unknown_routing_key", 2), ("shadow_is_live", 3), ("unknown_version", 3)}
    root2 = routed_root(tmp_path / "b", 'live: "1"\nchallenger: {version: "2", share: 1.5, key: customer_id}\n')
    assert [p.code for p in load(root2).errors] == ["schema"]


def test_shadow_outcomes_are_recorded_for_every_request(tmp_path):
    """Each request's shadow versions are decided off-path and recorded with route 'shadow', never returned."""
    root = routed_root(tmp_path, 'live: "1"\nshadow: ["2", "3"]\n', limit2=9000)
    sink = ListSink()
    decider = Decider(load_policies(root), sink=sink)
    returned = [decider.decide("demo", {**BASE, "customer_id": f"C{i}"}, request_id=f"r{i}") for i in range(300)]
    assert decider.drain_shadows()
    assert all(d.route == "live" and d.version == "1" for d in returned)
    shadows = [d for d in sink.decisions if d.route == "shadow"]
    assert len(shadows) == 600
    assert {(d.request_id, d.version) for d in shadows} == {(f"r{i}", v) for i in range(300) for v in ("2", "3")}
    assert all(d.action.name == "APPROVE" for d in shadows if d.version == "2")  # version 2 reviews from 9000
    assert decider.metrics.get("shadow_disagree", flow="demo", version="2") == 300
    assert decider.metrics.get("shadow_agree", flow="demo", version="3") == 300
    decider.close()


def test_shadow_outcomes_are_recorded_for_every_request_from_concurrent_callers(tmp_path):
    """8 threads x 250 requests with a challenger and two shadows: each request has exactly one
    shadow record per shadow version that did not decide it, and the counters agree."""
    root = routed_root(tmp_path, 'live: "1"\nchallenger: {version: "3", share: 0.3, key: customer_id}\nshadow: ["2", "3"]\n')
    sink = ListSink()
    decider = Decider(load_policies(root), sink=sink, shadow_queue=5000)  # big enough: nothing may be dropped
    answered: dict[str, str] = {}
    lock = threading.Lock()

    def caller(n: int) -> None:
        for i in range(250):
            d = decider.decide("demo", {**BASE, "customer_id": f"K{n}-{i}"}, request_id=f"t{n}-{i}")
            with lock:
                answered[d.request_id] = d.version

    threads = [threading.Thread(target=caller, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert decider.drain_shadows()
    assert len(answered) == 2000 and set(answered.values()) == {"1", "3"}
    shadows = sorted((d.request_id, d.version) for d in sink.decisions if d.route == "shadow")
    expected = sorted((rid, v) for rid, decided in answered.items() for v in ("2", "3") if v != decided)
    assert shadows == expected  # every request, each shadow once, never the version that decided
    counted = sum(v for k, v in decider.metrics.snapshot().items() if k.startswith("shadow_decisions"))
    assert counted == len(expected) and decider.metrics.get("shadow_dropped", flow="demo") == 0
    decider.close()


def test_the_deciding_version_is_not_shadowed_again(tmp_path):
    """A request the challenger decides is not evaluated again as the challenger's shadow."""
    root = routed_root(tmp_path, 'live: "1"\nchallenger: {version: "2", share: 1.0, key: customer_id}\nshadow: ["2"]\n')
    sink = ListSink()
    decider = Decider(load_policies(root), sink=sink)
    decider.decide("demo", {**BASE, "customer_id": "A"})  # challenger decides: no shadow
    decider.decide("demo", BASE)  # live decides: version 2 shadows
    assert decider.drain_shadows()
    assert [(d.version, d.route) for d in sink.decisions] == [("2", "challenger"), ("1", "live"), ("2", "shadow")]


def test_a_full_shadow_queue_drops_and_counts_without_blocking(tmp_path):
    """With the worker stuck and the queue full, callers still get answers; drops are counted."""
    root = routed_root(tmp_path, 'live: "1"\nshadow: ["2"]\n')
    release = threading.Event()

    class StuckSink(ListSink):
        def record(self, decision, raw_input):
            if decision.route == "shadow":
                release.wait(10)
            super().record(decision, raw_input)

    decider = Decider(load_policies(root), sink=StuckSink(), shadow_queue=2)
    answers = [decider.decide("demo", BASE) for _ in range(20)]
    assert len(answers) == 20
    dropped = decider.metrics.get("shadow_dropped", flow="demo")
    assert 17 <= dropped <= 18  # one task in the worker, two queued
    release.set()
    assert decider.drain_shadows()
    decider.close()


def test_a_failing_shadow_never_reaches_the_caller(tmp_path):
    """A shadow version that refuses the input is counted and logged; the caller's decision stands."""
    root = routed_root(tmp_path, 'live: "1"\nshadow: ["2"]\n')
    flow2 = root / "policies/demo/2/flow.yaml"
    flow2.write_text(flow2.read_text().replace("customer_id: {type: string, max_length: 64}", "customer_id: {type: string, max_length: 2}"))
    decider = Decider(load_policies(root))
    assert decider.decide("demo", {**BASE, "customer_id": "C-123456"}).action.name == "REVIEW"
    assert decider.drain_shadows()
    assert decider.metrics.get("shadow_errors", flow="demo", version="2") == 1
