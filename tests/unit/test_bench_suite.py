"""Pieces of the benchmark suite: percentiles, the median of rounds, the manifest, targets, the zen translation."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.suite.inprocess import Pinned, prepare_flow
from benchmarks.suite.inputs import flow_inputs
from benchmarks.suite.manifest import CASE_NAMES, Ref, Target, load_manifest
from benchmarks.suite.report import evaluate_targets
from benchmarks.suite.stats import median_of_rounds, percentile, summarize
from benchmarks.suite.zen_rules import ZenRules, agreement, flow_rules, zen_condition
from engine.expr import parse
from engine.expr.check import Symbol
from engine.runtime.service import load_decider

ROOT = Path(__file__).resolve().parents[2]


def test_nearest_rank_percentiles():
    """p50/p99/p99.9 are nearest-rank over the sorted samples, reported in microseconds."""
    samples = list(range(1000, 1001000, 1000))  # 1..1000 µs
    s = summarize(samples)
    assert (s["p50_us"], s["p99_us"], s["p999_us"], s["n"]) == (500.0, 990.0, 999.0, 1000)
    assert percentile([5.0], 0.999) == 5.0


def test_median_of_rounds_is_per_statistic():
    """Each statistic is the median over rounds; per-round p50s are kept."""
    rounds = [{"p50_us": p, "p99_us": 10 * p, "p999_us": 20 * p, "mean_us": p, "n": 10, "rps": 100 * p} for p in (3.0, 1.0, 2.0)]
    m = median_of_rounds(rounds)
    assert (m["p50_us"], m["p99_us"], m["rps"], m["n"], m["rounds"]) == (2.0, 20.0, 200.0, 30, 3)
    assert m["round_p50_us"] == [3.0, 1.0, 2.0]


def test_manifest_names_every_case_and_target_once():
    """The bundled manifest validates, lists every fixed case name, and its targets refer to listed cases."""
    manifest = load_manifest(ROOT / "benchmarks" / "manifest.yaml")
    assert [c.name for c in manifest.cases] == list(CASE_NAMES)
    assert {"full", "quick"} <= set(manifest.profiles)
    listed = {c.name for c in manifest.cases}
    assert all(t.numerator.case in listed and t.denominator.case in listed for t in manifest.targets)


def test_targets_compare_matching_rows():
    """A target divides the statistic of the matching rows and checks its bound; a missing row is 'not run'."""
    cases = [
        {"name": "grpc_decide", "p50_us": 360.0, "concurrency": 1, "workers": 1},
        {"name": "grpc_echo", "p50_us": 300.0, "concurrency": 1, "workers": 1},
        {"name": "grpc_echo", "p50_us": 999.0, "concurrency": 8, "workers": 1},
    ]
    ref = lambda case, c: Ref(case=case, stat="p50_us", concurrency=c, workers=1)  # noqa: E731
    met, missed, absent = evaluate_targets(
        [Target(name="a", numerator=ref("grpc_decide", 1), denominator=ref("grpc_echo", 1), max=1.2),
         Target(name="b", numerator=ref("grpc_decide", 1), denominator=ref("grpc_echo", 1), max=1.1),
         Target(name="c", numerator=ref("grpc_decide", 32), denominator=ref("grpc_echo", 32), min=0.9)],
        cases,
    )
    assert (met["ratio"], met["met"]) == (1.2, True)
    assert missed["met"] is False
    assert (absent["ratio"], absent["met"]) == (None, None)


def test_zen_condition_keeps_missing_value_semantics():
    """Optional operands are guarded and negations pushed down: a test over a missing value is false either way."""
    env = {"x": Symbol("number", True), "y": Symbol("number", False), "s": Symbol("string", True)}
    assert zen_condition(parse("x > 3"), env) == "(x != null and x > 3)"
    assert zen_condition(parse("not (x > 3)"), env) == "(x != null and x <= 3)"
    assert zen_condition(parse("y / x > 1"), env) == "(x != null and x != 0 and (y / x) > 1)"
    assert zen_condition(parse("s not in ['a']"), env) == "(s != null and s not in ['a'])"
    assert zen_condition(parse("is_null(x)"), env) == "(not (x != null))"


@pytest.mark.parametrize("flow,version", [("credit_application", "1"), ("credit_application", "2"), ("card_payment", "1")])
def test_zen_decision_table_agrees_with_our_rules(flow: str, version: str):
    """On 1,000 real inputs the generated zen-engine table fires exactly our rules (so gives the same actions)."""
    decider = load_decider(ROOT)
    try:
        inputs = flow_inputs(ROOT, flow, 1000)
        bench = prepare_flow(Pinned(decider, version), inputs)
        zen_rules = ZenRules(flow_rules(ROOT, flow, version))
        checked = agreement(zen_rules, bench.fired_ids, bench.prepared)
        assert checked["agree"], checked["examples"]
        assert checked["inputs"] == 1000
        assert sum(1 for v in bench.prepared if bench.fired_ids(v)) > 50  # rules do fire on these inputs
    finally:
        decider.close()

