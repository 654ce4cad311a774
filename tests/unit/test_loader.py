"""Tests of policy loading: compiled flows, and every problem reported at once with file and line."""

import shutil
import textwrap
from pathlib import Path

import pytest

from engine.errors import InvalidInput, PolicyError
from engine.policy.loader import load, load_policies
from engine.types import Action

FLOW = """\
flow: demo
version: "1"
input:
  fields:
    amount: {type: number, required: true, min: 0}
    income: {type: number}
    country: {type: category, values: [GB, FR, DE]}
derived:
  ratio: amount / income
rulesets: [demo.main]
default: {action: APPROVE}
reasons:
  BIG: Amount is big
  RATIO: Amount is high for the income
  SANCTIONED: Country is blocked
  NO_INCOME: Income missing
"""

RULES = """\
ruleset: demo.main
rules:
  - id: R1
    when: amount > 1000
    action: REVIEW
    reason: BIG
    priority: 10
  - id: R2
    when: ratio > 5
    action: DECLINE
    reason: RATIO
    priority: 20
  - id: R3
    when: country in ['DE']
    action: DECLINE
    reason: SANCTIONED
    priority: 90
  - id: R4
    when: is_null(income)
    action: REVIEW
    reason: NO_INCOME
    priority: 30
"""


def make_root(tmp_path: Path, flow: str = FLOW, rules: str = RULES) -> Path:
    (tmp_path / "policies/demo/1").mkdir(parents=True)
    (tmp_path / "rules").mkdir()
    (tmp_path / "policies/demo/1/flow.yaml").write_text(flow)
    (tmp_path / "rules/main.yaml").write_text(rules)
    return tmp_path


def test_loads_and_decides(tmp_path):
    """A valid root compiles; every rule that holds fires; the most severe action wins."""
    policies = load_policies(make_root(tmp_path))
    flow = policies.flows["demo"].versions["1"]
    out = flow.evaluate({"amount": 2000.0, "income": 100.0, "country": "DE"})
    assert out.action == Action.DECLINE
    assert [r.id for r in out.fired] == ["R3", "R2", "R1"]  # severity, then priority
    assert [r.code for r in out.reasons] == ["SANCTIONED", "RATIO", "BIG"]
    out = flow.evaluate({"amount": 10.0})
    assert out.action == Action.REVIEW and [r.code for r in out.reasons] == ["NO_INCOME"]
    out = flow.evaluate({"amount": 10.0, "income": 10.0})
    assert out.action == Action.APPROVE and out.reasons == () and out.fired == ()


def test_rule_order_never_changes_the_outcome(tmp_path):
    """Reversing the rules in the file gives the same outcome."""
    a = load_policies(make_root(tmp_path / "a")).flows["demo"].versions["1"]
    blocks = RULES.split("  - id:")
    reversed_rules = blocks[0] + "".join("  - id:" + b for b in reversed(blocks[1:]))
    b = load_policies(make_root(tmp_path / "b", rules=reversed_rules)).flows["demo"].versions["1"]
    for raw in [{"amount": 2000.0, "income": 100.0, "country": "DE"}, {"amount": 5.0}, {"amount": 600.0, "income": 100.0}]:
        oa, ob = a.evaluate(dict(raw)), b.evaluate(dict(raw))
        assert (oa.action, oa.reasons, oa.fired) == (ob.action, ob.reasons, ob.fired)


def test_bad_input_raises_invalid_input(tmp_path):
    """Evaluation validates first."""
    flow = load_policies(make_root(tmp_path)).flows["demo"].versions["1"]
    with pytest.raises(InvalidInput) as info:
        flow.evaluate({"amount": -1, "country": "US"})
    assert {e.field for e in info.value.errors} == {"amount", "country"}


def test_every_problem_is_reported_with_file_line_and_rule(tmp_path):
    """Several mistakes in several files are all reported at once, each located precisely."""
    bad_rules = textwrap.dedent(
        """\
        ruleset: demo.main
        rules:
          - id: R1
            when: amout > 1000
            action: REVIEW
            reason: BIG
          - id: R2
            when: ratio >
            action: DECLINE
            reason: RATIO
          - id: R3
            when: country == 'US'
            action: DECLINE
            reason: UNKNOWN_CODE
          - id: R4
            when: amount > 1
            action: BLOCK
            reason: BIG
            colour: red
          - id: R1
            when: amount > 2
            action: REVIEW
            reason: BIG
        """
    )
    root = make_root(tmp_path, rules=bad_rules)
    result = load(root)
    assert result.policies is None
    found = {(p.path, p.line, p.rule, p.code) for p in result.problems}
    assert ("rules/main.yaml", 4, "R1", "unknown_field") in found
    assert ("rules/main.yaml", 8, "R2", "expression_syntax") in found
    assert ("rules/main.yaml", 12, "R3", "unknown_category") in found
    assert ("rules/main.yaml", 14, "R3", "unknown_reason") in found
    assert ("rules/main.yaml", 20, "R1", "duplicate_rule") in found
    assert any(p.line == 17 and p.rule == "R4" and p.code == "schema" for p in result.problems)
    assert any(p.line == 19 and p.rule == "R4" and "unknown key 'colour'" in p.message for p in result.problems)
    hint = next(p for p in result.problems if p.code == "unknown_field").hint
    assert hint == "did you mean 'amount'?"
    with pytest.raises(PolicyError) as info:
        load_policies(root)
    assert "problems found" in str(info.value)


def test_flow_file_problems(tmp_path):
    """Flow-level mistakes: unknown ruleset, derived cycle, name mismatch, YAML syntax."""
    flow = FLOW.replace("rulesets: [demo.main]", "rulesets: [demo.main, demo.missing]").replace(
        "  ratio: amount / income", "  ratio: amount / other\n  other: ratio * 2"
    )
    root = make_root(tmp_path, flow=flow)
    codes = {p.code for p in load(root).problems}
    assert {"unknown_ruleset", "derived_cycle"} <= codes

    (root / "policies/demo/1/flow.yaml").write_text(FLOW.replace('version: "1"', 'version: "2"'))
    assert "version_mismatch" in {p.code for p in load(root).problems}

    (root / "policies/demo/1/flow.yaml").write_text(FLOW + "  bad: [unclosed\n")
    problem = next(p for p in load(root).problems if p.code == "yaml_syntax")
    assert problem.path == "policies/demo/1/flow.yaml" and problem.line is not None


def test_routing_selects_live_version_and_revisions_differ(tmp_path):
    """routing.yaml picks the live version; each version has its own content revision."""
    root = make_root(tmp_path)
    shutil.copytree(root / "policies/demo/1", root / "policies/demo/2")
    v2 = (root / "policies/demo/2/flow.yaml").read_text().replace('version: "1"', 'version: "2"')
    (root / "policies/demo/2/flow.yaml").write_text(v2)
    assert load_policies(root).flows["demo"].live == "2"  # highest by default
    (root / "policies/demo/routing.yaml").write_text('live: "1"\n')
    policies = load_policies(root)
    assert policies.flows["demo"].live == "1"
    revs = {v: f.revision for v, f in policies.flows["demo"].versions.items()}
    assert revs["1"] != revs["2"] and all(len(r) == 64 for r in revs.values())
    (root / "policies/demo/routing.yaml").write_text('live: "9"\n')
    assert "unknown_version" in {p.code for p in load(root).problems}


def test_revision_changes_when_a_rule_file_changes(tmp_path):
    """The content revision covers the rule files, not only the flow file."""
    root = make_root(tmp_path)
    before = load_policies(root).flows["demo"].versions["1"].revision
    (root / "rules/main.yaml").write_text(RULES.replace("amount > 1000", "amount > 1001"))
    after = load_policies(root).flows["demo"].versions["1"].revision
    assert before != after


def test_compiled_flow_survives_source_removal(tmp_path):
    """Compile once: evaluation needs no file once loaded."""
    root = make_root(tmp_path)
    flow = load_policies(root).flows["demo"].versions["1"]
    shutil.rmtree(root / "rules")
    shutil.rmtree(root / "policies")
    assert flow.evaluate({"amount": 2000.0, "income": 1000.0}).action == Action.REVIEW
