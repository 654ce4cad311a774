"""The authorization file: who may Decide which flow and call which admin method; errors with lines."""

from __future__ import annotations

import pytest

from engine.authz import ADMIN_PERMISSIONS, load_authz, parse_authz
from engine.errors import PermissionDenied, PolicyError

EXAMPLE = """\
callers:
  lending-app:
    decide: [credit_application]
  payments:
    decide: [card_payment, credit_application]
  ops:
    decide: ["*"]
    admin: [status, list_flows]
  auditor:
    admin: [status]
"""


def test_callers_may_decide_exactly_their_flows():
    """A caller may Decide the flows listed for it, '*' means every flow, anything else is denied."""
    policy = parse_authz(EXAMPLE)
    assert policy.may_decide("lending-app", "credit_application")
    assert not policy.may_decide("lending-app", "card_payment")
    assert policy.may_decide("payments", "card_payment") and policy.may_decide("payments", "credit_application")
    assert policy.may_decide("ops", "card_payment") and policy.may_decide("ops", "a_flow_added_later")
    assert not policy.may_decide("auditor", "credit_application")
    assert not policy.may_decide("stranger", "credit_application")


def test_admin_permissions_are_granted_one_by_one():
    """Admin methods need their own permission; deciding rights (even '*') do not include them."""
    policy = parse_authz(EXAMPLE)
    assert policy.may_admin("ops", "status") and policy.may_admin("ops", "list_flows")
    assert not policy.may_admin("ops", "reload")
    assert policy.may_admin("auditor", "status") and not policy.may_admin("auditor", "list_flows")
    assert not policy.may_admin("lending-app", "status")
    assert not policy.may_admin("stranger", "status")
    assert set(ADMIN_PERMISSIONS) == {"status", "list_flows", "reload", "lists:write", "cases_read", "cases_decide", "outcomes_write", "record_events"}
    assert not policy.may_admin("ops", "record_events")  # recording events (engine.state) is granted on its own too


def test_outcome_labels_need_their_own_permission():
    """outcomes_write is granted by name only: reading and deciding cases do not include it, and it includes neither."""
    policy = parse_authz("callers:\n  labeller:\n    admin: [outcomes_write]\n  desk:\n    decide: ['*']\n    admin: [cases_read, cases_decide]\n")
    assert policy.may_admin("labeller", "outcomes_write")
    assert not policy.may_admin("desk", "outcomes_write")
    assert not policy.may_admin("labeller", "cases_read") and not policy.may_admin("labeller", "cases_decide")


def test_list_changes_need_their_own_permission():
    """lists:write is granted by name only: no other grant (not even every flow and status) includes it."""
    policy = parse_authz("callers:\n  fraud-ops:\n    admin: ['lists:write']\n  ops:\n    decide: ['*']\n    admin: [status, reload]\n")
    assert policy.may_admin("fraud-ops", "lists:write")
    assert not policy.may_admin("ops", "lists:write")


def test_a_denial_names_caller_and_flow_but_not_what_others_may_do():
    """PermissionDenied names the caller and the flow asked for, and no other caller or flow."""
    policy = parse_authz(EXAMPLE)
    with pytest.raises(PermissionDenied) as err:
        policy.check_decide("lending-app", "card_payment")
    message = str(err.value)
    assert "lending-app" in message and "card_payment" in message
    for other in ("payments", "ops", "auditor", "credit_application"):
        assert other not in message
    with pytest.raises(PermissionDenied, match=r"may not call GetStatus \(needs admin permission 'status'\)"):
        policy.check_admin("lending-app", "status", "GetStatus")


def test_a_denial_quotes_an_overlong_flow_name_cut_short():
    """A client-chosen flow name of 100 KB is cut to 256 characters in the denial (bounded reply)."""
    with pytest.raises(PermissionDenied) as err:
        parse_authz(EXAMPLE).check_decide("lending-app", "x" * 100_000)
    assert len(str(err.value)) < 400


def test_every_problem_is_reported_with_its_line():
    """An unknown key, an unknown admin permission and a wrong type are all reported, each with its line."""
    text = """\
callers:
  a:
    decide: [credit_application]
    admin: [status, shutdown]
  b:
    decid: [card_payment]
  c:
    decide: credit_application
"""
    with pytest.raises(PolicyError) as err:
        parse_authz(text, "authz.yaml")
    problems = {(p.line, p.code) for p in err.value.problems}
    assert (4, "authz_schema") in problems  # 'shutdown' is not an admin permission
    assert (6, "authz_schema") in problems  # 'decid' is not a key
    assert (8, "authz_schema") in problems  # a string is not a list
    assert all(p.path == "authz.yaml" for p in err.value.problems)


def test_a_yaml_slip_and_a_missing_file_are_problems_not_crashes(tmp_path):
    """Broken YAML gives a yaml_syntax problem with its line; an unreadable file names the path."""
    with pytest.raises(PolicyError) as err:
        parse_authz("callers:\n  a: [\n")
    assert err.value.problems[0].code == "yaml_syntax"
    with pytest.raises(PolicyError) as err:
        load_authz(tmp_path / "missing.yaml")
    assert err.value.problems[0].code == "authz_unreadable" and "missing.yaml" in err.value.problems[0].path


def test_an_empty_callers_table_denies_everything():
    """A file with no callers allows nobody anything (deny by default)."""
    policy = parse_authz("callers: {}\n")
    assert policy.callers == []
    assert not policy.may_decide("ops", "credit_application") and not policy.may_admin("ops", "status")


def test_flows_the_file_names_but_the_server_lacks_are_found():
    """A misspelt flow in a grant is reported per caller (the server logs it at start), '*' never is."""
    policy = parse_authz(EXAMPLE + "  typo:\n    decide: [credit_aplication, card_payment]\n")
    assert policy.unknown_flows(["credit_application", "card_payment"]) == {"typo": ["credit_aplication"]}
    assert parse_authz(EXAMPLE).unknown_flows(["credit_application", "card_payment"]) == {}
