"""Tests of champion-challenger routing and shadow evaluation."""

import dataclasses
import shutil
import threading
from collections.abc import Mapping
from typing import Any

import pytest

from engine.datasets import read_card_payments
from engine.policy.documents import ROOT_DIRS
from engine.policy.loader import load, load_policies
from engine.runtime.privacy import Masker
from engine.runtime.routing import Challenger, bucket, key_text
from engine.runtime.service import Decider
from engine.types import Decision

from .policy_roots import PROJECT, demo_root, write

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

    def record(self, decision: Decision, raw_input: Mapping[str, Any], *, masker: Masker) -> None:
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
        def record(self, decision, raw_input, *, masker):
            if decision.route == "shadow":
                release.wait(10)
            super().record(decision, raw_input, masker=masker)

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


def case_variants_root(tmp_path):
    """The case routing-key-case-variants (its run.sh): a copy of the bundled root where card_payment
    version 2 is a copy of version 1, the challenger for 50% of customers by customer_id, and both
    versions declare customer_id {type: string, case: upper}."""
    root = tmp_path / "root"
    for part in ROOT_DIRS:
        shutil.copytree(PROJECT / part, root / part)
    card = root / "policies" / "card_payment"
    shutil.rmtree(card / "2", ignore_errors=True)  # the bundled (stateful) version 2 gives way to the case's copy of 1
    shutil.copytree(card / "1", card / "2")
    (card / "2" / "release.lock").unlink(missing_ok=True)
    flow2 = card / "2" / "flow.yaml"
    flow2.write_text(flow2.read_text().replace('version: "1"', 'version: "2"', 1))
    for v in ("1", "2"):
        flow = card / v / "flow.yaml"
        text = flow.read_text()
        old = "customer_id: {type: string, required: true, max_length: 64}"
        assert old in text
        flow.write_text(text.replace(old, "customer_id: {type: string, required: true, max_length: 64, case: upper}"))
    (card / "routing.yaml").write_text('live: "1"\nchallenger: {version: "2", share: 0.5, key: customer_id}\n')
    return root


def test_case_variants_of_one_customer_go_to_one_version_at_every_share(tmp_path):
    """C00043, c00043, ' C00043 ' and 'C00043\\xa0' (one customer to the flow) route to one version at shares 0.1-0.9."""
    policies = load_policies(case_variants_root(tmp_path))
    challenger = policies.flows["card_payment"].challenger
    assert challenger is not None
    base = read_card_payments(PROJECT / "data" / "card_payments.csv", limit=1)[0]
    ids = ("C00042", "C00043", "C00045", "C01234")
    raw_split = False  # the fault: routing on the raw text splits some of these customers
    for share in (0.1, 0.3, 0.5, 0.7, 0.9):
        decider = Decider(dataclasses.replace(policies, flows={**policies.flows, "card_payment": dataclasses.replace(policies.flows["card_payment"], challenger=dataclasses.replace(challenger, share=share))}))
        for cid in ids:
            variants = (cid, cid.lower(), f" {cid} ", f"{cid}\xa0", f"\t{cid.lower()}  ")
            versions = {decider.decide("card_payment", {**base, "customer_id": v}).version for v in variants}
            assert len(versions) == 1, (share, cid, versions)
            raw_split |= len({bucket("card_payment", "customer_id", key_text(v)) < share for v in variants}) > 1
        decider.close()
    assert raw_split


def test_10000_customer_ids_in_lower_case_route_like_upper_case(tmp_path):
    """At a 10% share none of 10,000 ids switches version when sent in lower case (raw text: 1,721 did)."""
    challenger = load_policies(case_variants_root(tmp_path)).flows["card_payment"].challenger
    assert challenger is not None
    at_10 = dataclasses.replace(challenger, share=0.1)
    ids = [f"C{i:05d}" for i in range(10_000)]
    switched = sum(at_10.takes("card_payment", {"customer_id": c}) != at_10.takes("card_payment", {"customer_id": c.lower()}) for c in ids)
    assert switched == 0
    raw = sum((bucket("card_payment", "customer_id", c) < 0.1) != (bucket("card_payment", "customer_id", c.lower()) < 0.1) for c in ids)
    assert raw > 1000  # what routing on the raw text did (the case measured 1,721): the check above can fail
    taken = sum(at_10.takes("card_payment", {"customer_id": c}) for c in ids)
    assert abs(taken / 10_000 - 0.1) <= 0.02


def test_category_key_routes_on_its_allowed_spelling_and_refused_keys_go_live(tmp_path):
    """A category key routes as its canonical spelling; a key the live schema refuses gets the live version."""
    root = routed_root(tmp_path, 'live: "1"\nchallenger: {version: "2", share: 0.5, key: country}\n')
    decider = Decider(load_policies(root))
    for value in ("GB", "FR", "DE"):
        routes = {decider.resolve("demo", "", {**BASE, "country": v})[0].version for v in (value, value.lower(), f" {value.lower()} ")}
        assert len(routes) == 1
    assert decider.resolve("demo", "", {**BASE, "country": "XX"})[1] == "live"  # not an allowed value: live refuses it
    assert decider.resolve("demo", "", {**BASE, "country": 12})[1] == "live"


def test_key_cleaned_differently_by_the_challenger_is_a_warning_and_live_cleaning_routes(tmp_path):
    """When only the challenger upper-cases the key, lint warns and routing follows the live version's cleaning."""
    root = routed_root(tmp_path, 'live: "1"\nchallenger: {version: "2", share: 0.5, key: customer_id}\n')
    flow2 = root / "policies/demo/2/flow.yaml"
    flow2.write_text(flow2.read_text().replace("customer_id: {type: string, max_length: 64}", "customer_id: {type: string, max_length: 64, case: upper}"))
    result = load(root)
    assert [(p.code, p.severity, p.line) for p in result.problems] == [("routing_key_cleaning_differs", "warning", 2)]
    challenger = result.policies.flows["demo"].challenger
    # the live version (1) keeps case: "k7" and "K7" are two customers to it, and routing treats them so
    pairs = [(challenger.takes("demo", {"customer_id": f"k{i}"}), bucket("demo", "customer_id", f"k{i}") < 0.5) for i in range(200)]
    assert all(a == b for a, b in pairs)


def test_routing_checks_are_pure_and_resolution_is_one_function():
    """check_routing reports an unknown live and a shadow equal to live from the file's content alone; resolve pins, else routes live."""
    from pathlib import Path

    from engine.policy.schema import RoutingFile
    from engine.runtime.routing import check_routing, resolve, version_key

    assert sorted(["10", "2", "v10", "v2"], key=version_key) == ["2", "10", "v2", "v10"]
    problems: list = []
    parsed = RoutingFile.model_validate({"live": "3", "shadow": ["1"]})
    routing = check_routing(parsed, "policies/demo/routing.yaml", lambda loc: 7, "abc", ["1", "2"], {}, problems, set())
    assert (routing.live, routing.shadow, routing.revision) == ("3", ("1",), "abc")
    assert [(p.code, p.line) for p in problems] == [("unknown_version", 7)]
    problems.clear()
    check_routing(RoutingFile.model_validate({"live": "1", "shadow": ["1"]}), "r.yaml", lambda loc: 2, "", ["1"], {}, problems, set())
    assert [p.code for p in problems] == ["shadow_is_live"]
    policies = load_policies(Path(__file__).resolve().parents[2])
    flow = policies.flow_names()[0]
    entry = policies.flows[flow]
    assert resolve(policies, flow, "", None) == (entry.versions[entry.live], "live")
    pinned = sorted(entry.versions, key=version_key)[0]
    assert resolve(policies, flow, pinned, None) == (entry.versions[pinned], "pinned")
