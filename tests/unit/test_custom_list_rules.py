"""`x in list('name')` in rules: parsing, lint (unknown list, kind mismatch), evaluation, durable refusal."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.custom_lists.snapshot import Entry, ListSnapshot
from engine.expr.check import ExprTypeError, Symbol, check, list_symbol
from engine.expr.syntax import ExprSyntaxError, parse
from engine.expr.vocabulary import show
from engine.policy.lint import lint
from engine.policy.loader import load

from .policy_roots import write

FLOW = """\
flow: shop
version: "1"
input:
  fields:
    amount: {type: number, required: true, min: 0, max: 100000}
    device_id: {type: string, max_length: 64, identifies: device}
    email: {type: string, max_length: 200, identifies: email}
    note: {type: string, max_length: 64}
rulesets: [shop.main]
default: {action: APPROVE}
reasons:
  BLOCKED_DEVICE: Device is blocked
  BLOCKED_DOMAIN: E-mail domain is blocked
"""
RULES = """\
ruleset: shop.main
{engine}rules:
  - id: L1
    when: {when}
    action: DECLINE
    reason: BLOCKED_DEVICE
  - id: L2
    when: email in list('blocked_email_domains')
    action: DECLINE
    reason: BLOCKED_DOMAIN
"""
DECLARED = """\
lists:
  blocked_devices: {kind: device, role: block}
  blocked_email_domains: {kind: email_domain, role: block}
"""
ENV = {
    "device_id": Symbol("string", True, identifies="device"),
    "email": Symbol("string", True, identifies="email"),
    "note": Symbol("string", True),
    "list:blocked_devices": list_symbol("device"),
}


def _root(tmp_path: Path, when: str = "device_id in list('blocked_devices')", engine: str = "") -> Path:
    write(tmp_path, "policies/shop/1/flow.yaml", FLOW)
    write(tmp_path, "policies/shop/routing.yaml", 'live: "1"\n')
    write(tmp_path, "policies/custom_lists.yaml", DECLARED)
    write(tmp_path, "rules/main.yaml", RULES.format(when=when, engine=engine))
    return tmp_path


def test_in_list_parses_to_a_membership_call_and_prints_back():
    """'in list(...)' and 'not in list(...)' parse, and the lint's text shows them as written."""
    assert show(parse("device_id in list('blocked_devices')")) == "device_id in list('blocked_devices')"
    assert show(parse("device_id not in list('blocked_devices')")) == "device_id not in list('blocked_devices')"
    with pytest.raises(ExprSyntaxError, match="may only follow 'in'"):
        parse("list('blocked_devices')")
    with pytest.raises(ExprSyntaxError, match="in quotes"):
        parse("device_id in list(blocked_devices)")


def test_the_checker_refuses_unknown_lists_and_kind_mismatches():
    """An unknown list gets a did-you-mean; a device list on an e-mail field or an undeclared field is refused."""
    with pytest.raises(ExprTypeError) as caught:
        check(parse("device_id in list('blocked_device')"), ENV)
    assert caught.value.code == "unknown_list" and caught.value.hint == "did you mean 'blocked_devices'?"
    with pytest.raises(ExprTypeError) as caught:
        check(parse("email in list('blocked_devices')"), ENV)
    assert caught.value.code == "list_kind_mismatch" and "which identifies: email" in caught.value.message
    with pytest.raises(ExprTypeError) as caught:
        check(parse("note in list('blocked_devices')"), ENV)
    assert caught.value.code == "list_kind_mismatch" and caught.value.hint == "declare it with identifies: device"
    assert check(parse("device_id not in list('blocked_devices')"), ENV).nullable


def test_lint_reports_an_unknown_list_with_file_line_and_hint(tmp_path):
    """lint names the rule file, the line, the unknown list and the closest declared name."""
    report = lint(_root(tmp_path, when="device_id in list('blocked_device')"))
    found = [p for p in report.problems if p.code == "unknown_list"]
    assert len(found) == 1 and found[0].path == "rules/main.yaml" and found[0].line == 4
    assert found[0].hint == "did you mean 'blocked_devices'?" and found[0].severity == "error"


def test_lint_reports_a_kind_mismatch(tmp_path):
    """A device list read with an e-mail field is an error of that rule."""
    report = lint(_root(tmp_path, when="email in list('blocked_devices')"))
    assert [(p.code, p.rule) for p in report.problems if p.severity == "error"] == [("list_kind_mismatch", "L1")]


def test_durable_rules_refuse_custom_lists_clearly(tmp_path):
    """A rule file with engine: durable cannot read a list; the error says why and what to do."""
    result = load(_root(tmp_path, engine="engine: durable\n"))
    messages = [p.message for p in result.errors]
    assert any("durable-rules cannot read custom lists" in m for m in messages), messages


@pytest.mark.parametrize(
    ("values", "blocked_devices", "fired"),
    [
        ({"amount": 1, "device_id": "D-1"}, ["D-1"], ["L1"]),
        ({"amount": 1, "device_id": "D-2"}, ["D-1"], []),
        ({"amount": 1}, ["D-1"], []),  # a missing device id is in no list
        ({"amount": 1, "email": "Eve@Fraud.Example."}, [], ["L2"]),
    ],
)
def test_rules_read_the_snapshot_of_the_moment(tmp_path, values, blocked_devices, fired):
    """A compiled flow's list rules fire exactly for members of the view's current snapshot."""
    result = load(_root(tmp_path))
    assert result.errors == []
    flow = result.compiled[("shop", "1")]
    view = result.custom_lists
    assert view is not None and flow.custom_lists is view
    entries = [Entry("blocked_devices", d) for d in blocked_devices] + [Entry("blocked_email_domains", "fraud.example")]
    view.swap(ListSnapshot(entries, view.kinds))
    assert [f.id for f in flow.evaluate(values).fired] == fired


def test_not_in_a_list_is_false_for_a_missing_value(tmp_path):
    """'x not in list(...)' holds for a value outside the list and not for a missing one (as every test)."""
    flow = load(_root(tmp_path, when="device_id not in list('blocked_devices')")).compiled[("shop", "1")]
    assert [f.id for f in flow.evaluate({"amount": 1, "device_id": "D-3"}).fired] == ["L1"]
    assert [f.id for f in flow.evaluate({"amount": 1}).fired] == []


def test_the_satisfiability_check_knows_a_list_test_needs_a_value(tmp_path):
    """A list test joined with is_null of the same field never holds: lint reports the rule unreachable."""
    report = lint(_root(tmp_path, when="device_id in list('blocked_devices') and is_null(device_id)"))
    found = [p for p in report.problems if p.code == "unreachable_rule"]
    assert [p.rule for p in found] == ["L1"] and "device_id in list('blocked_devices')" in found[0].message
    assert lint(_root(tmp_path, when="device_id not in list('blocked_devices') or is_null(device_id)")).ok


def test_policy_test_cases_run_with_their_own_lists_only(tmp_path):
    """A case's lists: entries decide it (the store is never read); an undeclared list fails the case, naming it."""
    from engine.policy.policytest import run_root

    root = _root(tmp_path)
    write(root, "policies/shop/1/tests/cases.yaml", """\
cases:
  - name: blocked device
    input: {amount: 1, device_id: D-1}
    lists: {blocked_devices: [D-1]}
    expect: {action: DECLINE, fired: [L1]}
  - name: the same device with empty lists
    input: {amount: 1, device_id: D-1}
    expect: {action: APPROVE}
  - name: a list nobody declared
    input: {amount: 1, device_id: D-1}
    lists: {blocked_device: [D-1]}
    expect: {action: DECLINE}
""")
    report = run_root(root)
    results = {r.name: r for r in report.results}
    assert results["blocked device"].passed and results["the same device with empty lists"].passed
    failed = results["a list nobody declared"]
    assert not failed.passed and "'blocked_device' is not declared" in failed.failures[0]
