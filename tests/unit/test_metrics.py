"""Tests of engine.metrics: the Prometheus families, what the Decider counts, and the status map."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from engine.grpc.servicer import DecisionServicer
from engine.grpc.wire import DecideCall, Malformed
from engine.metrics import FAMILIES, Metrics, serve_metrics
from engine.policy.loader import load_policies
from engine.runtime.idempotency import Fingerprinter, IdempotencyCache
from engine.runtime.privacy import HashKey
from engine.runtime.service import Decider

from .grpc_fakes import AbortError, FakeContext

ROOT = Path(__file__).resolve().parents[2]
APPLICATION = {
    "seniority": 9, "home": "rent", "time": 60, "age": 30, "marital": "married", "records": False,
    "job": "freelance", "expenses": 73, "income": 129, "assets": 0, "debt": 0, "amount": 800, "price": 846,
}  # fmt: skip


class NullSink:
    """A decision log that keeps nothing (so that the log step is timed)."""

    def record(self, decision, raw_input, *, masker, delivery: str = "") -> None:
        pass


@pytest.fixture(scope="module")
def policies():
    return load_policies(ROOT)


def test_every_family_follows_the_prometheus_naming_conventions():
    """Names start verdict_, counters do not end in _total (the client adds it), durations are _seconds."""
    for family in FAMILIES:
        assert family.name.startswith("verdict_") and not family.name.endswith("_total")
        if "duration" in family.name or "lag" in family.name:
            assert family.name.endswith("_seconds")
        assert not {"request_id", "decision_id", "customer", "caller"} & set(family.labels)


def test_a_decision_counts_its_action_rules_reasons_scores_and_steps(policies):
    """One decision moves decisions_total by route and action, each fired rule, each reason code, the score and every step histogram."""
    metrics = Metrics()
    decider = Decider(policies, sink=NullSink(), metrics=metrics)
    decision = decider.decide("credit_application", dict(APPLICATION, seniority=0, income=20, amount=5000), version="1")
    decider.close()
    labels = {"flow": "credit_application", "version": "1"}
    assert metrics.get("verdict_decisions", **labels, route="pinned", action=decision.action.name) == 1
    assert decision.outcome.fired  # the example fires rules, so the rule counters are exercised
    for rule in decision.outcome.fired:
        assert metrics.get("verdict_rule_hits", **labels, rule=rule.id) == 1
    for reason in decision.outcome.reasons:
        assert metrics.get("verdict_reason_codes", **labels, code=reason.code) == 1
    for model in decision.models:
        assert metrics.get("verdict_model_score", model=model) == 1
    for step in ("validate", "features", "score", "rules", "explain", "log"):
        assert metrics.get("verdict_decision_step_duration_seconds", flow="credit_application", step=step) == 1, step
    assert metrics.get("verdict_decision_duration_seconds", flow="credit_application") == 1


def test_the_score_histogram_sums_the_scores(policies):
    """The model score histogram's sum is the sum of the scores the decisions carry (no rescaling)."""
    metrics = Metrics()
    decider = Decider(policies, metrics=metrics)
    scores = [decider.decide("credit_application", dict(APPLICATION, income=i), version="1").outcome.scores for i in (50, 129, 400)]
    decider.close()
    (model,) = decider.policies.flows["credit_application"].versions["1"].models
    total = metrics.registry.get_sample_value("verdict_model_score_sum", {"model": model.model.name})
    assert total == pytest.approx(sum(s[model.output] for s in scores))


def test_an_idempotent_retry_counts_as_a_replay_not_a_decision(policies):
    """The second call with the same request id is answered from the window: replays 1, decisions still 1."""
    metrics = Metrics()
    idem = IdempotencyCache(Fingerprinter(HashKey(b"metrics-test-key")))
    decider = Decider(policies, idempotency=idem, metrics=metrics)
    first = decider.decide("credit_application", APPLICATION, version="1", request_id="r-1")
    again = decider.decide("credit_application", APPLICATION, version="1", request_id="r-1")
    decider.close()
    assert first.decision_id == again.decision_id
    assert metrics.get("verdict_idempotent_replays", flow="credit_application") == 1
    assert metrics.get("verdict_decisions", flow="credit_application", version="1", route="pinned", action=first.action.name) == 1


def test_errors_are_counted_by_grpc_status_code(policies):
    """A malformed call and an unknown flow are counted under INVALID_ARGUMENT and NOT_FOUND."""
    metrics = Metrics()
    servicer = DecisionServicer(Decider(policies, metrics=metrics))
    for call in (Malformed("is not a Struct", "input", "type"), DecideCall("no_such_flow", "", "", {})):
        with pytest.raises(AbortError):
            servicer.Decide(call, FakeContext())
    assert metrics.get("verdict_errors", method="Decide", code=grpc.StatusCode.INVALID_ARGUMENT.name) == 1
    assert metrics.get("verdict_errors", method="Decide", code=grpc.StatusCode.NOT_FOUND.name) == 1


def test_the_status_map_keeps_the_short_names():
    """snapshot() lists reloads and shadow counters under their short names, histograms as _count/_sum."""
    metrics = Metrics()
    metrics.inc("reloads", result="ok", trigger="start")
    metrics.set("reload_last_good_unixtime", 1_795_970_000.0)
    metrics.observe("verdict_decision_log_commit_seconds", 0.002)
    snapshot = metrics.snapshot()
    assert snapshot["reloads{result=ok,trigger=start}"] == 1
    assert snapshot["reload_last_good_unixtime"] == 1_795_970_000.0
    assert snapshot["verdict_decision_log_commit_seconds_count"] == 1
    assert snapshot["verdict_decision_log_commit_seconds_sum"] == pytest.approx(0.002)


def test_a_wrong_label_set_is_a_programming_error():
    """Updating a family with labels it does not declare raises KeyError naming the expected labels."""
    with pytest.raises(KeyError, match="flow"):
        Metrics().inc("verdict_decisions", flow="f")


def test_the_endpoint_serves_the_exposition_format():
    """serve_metrics answers /metrics with every family in Prometheus text, parseable by the reference parser."""
    metrics = Metrics()
    metrics.inc("verdict_decisions", flow="f", version="1", route="live", action="APPROVE")
    server, port = serve_metrics(metrics.registry, 0)
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    finally:
        server.shutdown()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    (sample,) = [s for s in families["verdict_decisions"].samples if s.name == "verdict_decisions_total"]
    assert sample.value == 1 and sample.labels == {"flow": "f", "version": "1", "route": "live", "action": "APPROVE"}
    assert {f.name for f in FAMILIES} <= set(families)


def test_status_prints_whole_metrics_in_full():
    """`verdict status --metrics` prints a Unix time as 1795970000 (not 1.79597e+09), fractions to 6 digits, NaN as nan."""
    from engine.commands.status import metric_value

    assert metric_value(1_795_970_000.0) == "1795970000"
    assert metric_value(1_795_980_247.9374) == "1795980247.937"
    assert metric_value(0.0021345678) == "0.00213457"
    assert metric_value(float("nan")) == "nan" and metric_value(float("inf")) == "inf"


def test_a_flush_observes_many_values_as_observe_does_one_by_one():
    """Batched histogram updates give the same bucket counts and sum as Histogram.observe per value (bounds, +Inf, NaN)."""
    from prometheus_client import CollectorRegistry, Histogram

    from engine.metrics import LATENCY_BUCKETS, _observe_many

    amounts = [0.0, 0.0001, 0.00010001, 0.001, 0.0025, 2.5, 3.0, 1e9, -1.0, 0.02, 0.02, float("nan")]
    one, many = CollectorRegistry(), CollectorRegistry()
    h1 = Histogram("h", "h", ["flow"], registry=one, buckets=LATENCY_BUCKETS).labels("f")
    h2 = Histogram("h", "h", ["flow"], registry=many, buckets=LATENCY_BUCKETS).labels("f")
    for a in amounts:
        h1.observe(a)
    _observe_many(h2, amounts)

    def samples(registry):
        return {(s.name, tuple(sorted(s.labels.items()))): s.value for m in registry.collect() for s in m.samples
                if not s.name.endswith("_created")}

    expected, got = samples(one), samples(many)
    assert expected.keys() == got.keys()
    for key, value in expected.items():
        assert (value != value and got[key] != got[key]) or value == pytest.approx(got[key]), key
    assert got[("h_bucket", (("flow", "f"), ("le", "+Inf")))] == len(amounts) - 1  # the NaN is in no bucket
