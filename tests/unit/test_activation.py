"""Per-flow activation: a broken flow keeps its last good version (or is unavailable) while the others go live."""

import pytest

from engine.errors import FlowUnavailable
from engine.policy.activation import check
from engine.policy.loader import load
from engine.runtime.reload import Reloader
from engine.runtime.service import Decider

from .policy_roots import demo_root, write

OK = {"amount": 10, "age": 30, "income": 100}
BIG = {"amount": 5000, "age": 30, "income": 100}

OTHER_FLOW = """\
flow: other
version: "{version}"
input:
  fields:
    score: {{type: number, required: true, min: 0, max: 1}}
rulesets: [other.main]
default: {{action: APPROVE}}
reasons:
  HIGH: Score is high
"""

OTHER_RULES = """\
ruleset: other.main
rules:
  - id: O1
    when: score >= {cut}
    action: DECLINE
    reason: HIGH
"""

OTHER_TESTS = """\
cases:
  - name: a high score is declined
    input: {score: 0.95}
    expect: {action: DECLINE, fired: [O1]}
  - name: a low score is approved
    input: {score: 0.1}
    expect: {action: APPROVE}
"""


def two_flows(tmp_path, *, versions=("1",)):
    """Flow `demo` (rules/main.yaml) and flow `other` (rules/other.yaml), each with passing tests."""
    root = demo_root(tmp_path)
    write(root, "rules/other.yaml", OTHER_RULES.format(cut=0.9))
    for version in versions:
        write(root, f"policies/other/{version}/flow.yaml", OTHER_FLOW.format(version=version))
        write(root, f"policies/other/{version}/tests/cases.yaml", OTHER_TESTS)
    write(root, "policies/other/routing.yaml", f'live: "{versions[0]}"\n')
    return root


def break_demo(root):
    """A typo in demo's rule file (an expression that does not parse)."""
    path = root / "rules/main.yaml"
    path.write_text(path.read_text().replace("when: age < 18", "when: age << 18"))


def test_a_clean_root_activates_every_flow():
    """With no error anywhere the check is ok and the state is the loader's own (same revision)."""
    from .policy_roots import PROJECT

    outcome = check(PROJECT)
    assert outcome.ok and outcome.problems == () and outcome.tests_run > 0
    assert {f.state for f in outcome.flows.values()} == {"ok"}
    assert outcome.policies.revision == load(PROJECT).policies.revision == outcome.candidate


def test_a_typo_in_one_flow_does_not_block_a_change_to_another(tmp_path):
    """demo gets a typo and other a new cut-off at once: other goes live, demo keeps its last good version."""
    root = two_flows(tmp_path)
    decider = Decider(check(root).policies)
    reloader = Reloader(root, decider)
    break_demo(root)
    (root / "rules/other.yaml").write_text(OTHER_RULES.format(cut=0.5))
    (root / "policies/other/1/tests/cases.yaml").write_text(OTHER_TESTS.replace("0.95", "0.6"))
    status = reloader.reload()
    assert not status.ok and status.result == "refused"
    states = {f.name: f.state for f in status.flows}
    assert states == {"demo": "stale", "other": "ok"}
    (problem,) = {f.name: f for f in status.flows}["demo"].problems
    assert (problem.path, problem.rule, problem.code, problem.flow) == ("rules/main.yaml", "R2", "expression_syntax", "demo")
    assert decider.decide("other", {"score": 0.6}).outcome.action.name == "DECLINE"  # the new cut-off serves
    assert decider.decide("demo", {**OK, "age": 16}).outcome.action.name == "DECLINE"  # the last good R2 serves
    assert status.message.startswith("refused for demo (keeps its last good version); activated other: rules/main.yaml:")
    assert decider.metrics.get("flow_ok", flow="demo") == 0 and decider.metrics.get("flow_ok", flow="other") == 1
    assert decider.metrics.get("reload_ok") == 0


def test_a_test_written_ahead_of_its_rule_blocks_only_its_flow(tmp_path):
    """A test expecting a rule that does not exist yet holds back demo only; a routing rollback of other goes live."""
    root = two_flows(tmp_path, versions=("1", "2"))
    decider = Decider(check(root).policies)
    reloader = Reloader(root, decider)
    with (root / "policies/demo/1/tests/cases.yaml").open("a") as f:
        f.write("  - name: velocity burst\n    input: {amount: 10, age: 30, income: 100}\n    expect: {fired: [R9]}\n")
    (root / "policies/other/routing.yaml").write_text('live: "2"\n')
    status = reloader.reload()
    assert {f.name: f.state for f in status.flows} == {"demo": "stale", "other": "ok"}
    assert [p.code for p in status.problems] == ["unknown_test_rule"]
    assert len(status.failures) == 1 and "velocity burst" in status.failures[0]
    assert decider.policies.flows["other"].live == "2"


def test_a_server_started_on_a_broken_flow_serves_the_others(tmp_path):
    """At start (no previous state) a broken flow is unavailable: its requests raise FlowUnavailable naming the problem."""
    root = two_flows(tmp_path)
    break_demo(root)
    outcome = check(root)
    assert {n: f.state for n, f in outcome.flows.items()} == {"demo": "unavailable", "other": "ok"}
    decider = Decider(outcome.policies)
    assert decider.decide("other", {"score": 0.95}).outcome.action.name == "DECLINE"
    with pytest.raises(FlowUnavailable) as caught:
        decider.decide("demo", OK)
    assert "rules/main.yaml:" in str(caught.value) and "expression_syntax" in str(caught.value)


def test_no_loadable_flow_gives_no_state(tmp_path):
    """When every flow is broken there is nothing to serve (the server then exits 1)."""
    root = demo_root(tmp_path)
    break_demo(root)
    outcome = check(root)
    assert outcome.policies is None and outcome.flows["demo"].state == "unavailable"


def test_an_error_no_flow_can_be_tied_to_holds_back_every_flow(tmp_path):
    """A rule file whose ruleset cannot be read (YAML broken before `ruleset:`) could be any flow's: all keep their last good version."""
    root = two_flows(tmp_path)
    decider = Decider(check(root).policies)
    write(root, "rules/mystery.yaml", "rules: [\n")
    status = Reloader(root, decider).reload()
    assert {f.name: f.state for f in status.flows} == {"demo": "stale", "other": "stale"}
    assert [p.code for p in status.problems] == ["yaml_syntax"]


def test_a_broken_rule_file_of_an_unused_ruleset_holds_back_nothing_but_fails_the_check(tmp_path):
    """A file that provably no flow applies keeps every flow live; the reload is still reported as failed."""
    root = two_flows(tmp_path)
    write(root, "rules/spare.yaml", "ruleset: spare.one\nrules:\n  - id: S1\n    whenn: amount > 1\n    action: REVIEW\n    reason: BIG\n")
    outcome = check(root)
    assert {f.state for f in outcome.flows.values()} == {"ok"} and not outcome.ok
    assert {p.code for p in outcome.problems} == {"schema"}


@pytest.mark.parametrize(
    ("rule", "code"),
    [
        ("amount > 200000", "unreachable_rule"),  # above the schema's max of 100000
        ("age < 18", "duplicate_condition"),  # the same condition as R2
        ("customer_id == 'c-1'", "cleaning_mismatch"),  # customer_id is declared case: upper below
    ],
)
def test_lint_errors_block_activation_like_load_errors(tmp_path, rule, code):
    """A rule that can never fire, a duplicated condition and a cleaning mismatch keep the flow on its last good version."""
    root = two_flows(tmp_path)
    flow = root / "policies/demo/1/flow.yaml"
    flow.write_text(flow.read_text().replace("customer_id: {type: string, max_length: 64}", "customer_id: {type: string, max_length: 64, case: upper}"))
    decider = Decider(check(root).policies)
    good = decider.policies.flows["demo"]
    with (root / "rules/main.yaml").open("a") as f:
        f.write(f"  - id: R9\n    when: {rule}\n    action: DECLINE\n    reason: BIG\n")
    status = Reloader(root, decider).reload()
    assert {f.name: f.state for f in status.flows} == {"demo": "stale", "other": "ok"}
    assert code in {p.code for p in status.problems}
    assert decider.policies.flows["demo"] is good


def test_lint_warnings_are_reported_and_do_not_block(tmp_path):
    """An unused reason code is a warning: the flow goes live and the reload lists the warning."""
    root = two_flows(tmp_path)
    decider = Decider(check(root).policies)
    flow = root / "policies/demo/1/flow.yaml"
    flow.write_text(flow.read_text().replace("  NO_INCOME: Income missing\n", "  NO_INCOME: Income missing\n  SPARE: Never given\n"))
    status = Reloader(root, decider).reload()
    assert status.ok and [w.code for w in status.warnings] == ["unused_reason"]
    assert {f.name: [w.code for w in f.warnings] for f in status.flows} == {"demo": ["unused_reason"], "other": []}
    assert "1 lint warning" in status.message
    from engine.commands.status import failed, format_status
    from engine.grpc.policy_status import status_to_response

    response = status_to_response(decider.policies, decider.metrics.snapshot(), _reloader_after(root, decider, status))
    text = format_status(response)
    assert "warning: [unused_reason] reason code SPARE" in text and not failed(response)


def _reloader_after(root, decider, status):
    """A reloader whose last attempt is `status` (for the status RPC)."""
    reloader = Reloader(root, decider)
    reloader.last, reloader.flows = status, status.flows
    return reloader


def test_a_routing_only_change_changes_the_revision(tmp_path):
    """Changing only routing.yaml changes the flow's routing revision and the state revision."""
    root = two_flows(tmp_path, versions=("1", "2"))
    before = check(root).policies
    (root / "policies/other/routing.yaml").write_text('live: "2"\n')
    after = check(root).policies
    assert after.revision != before.revision
    assert after.flows["other"].routing_revision != before.flows["other"].routing_revision
    assert after.flows["demo"].routing_revision == before.flows["demo"].routing_revision != ""


def test_a_removed_flow_stops_serving(tmp_path):
    """Deleting a flow's directory is a valid change: the reload drops it."""
    import shutil

    root = two_flows(tmp_path)
    decider = Decider(check(root).policies)
    shutil.rmtree(root / "policies/other")
    (root / "rules/other.yaml").unlink()
    status = Reloader(root, decider).reload()
    assert status.ok and set(decider.policies.flows) == {"demo"}


def test_a_mixed_state_is_hashed_like_the_loader_hashes_a_clean_one(tmp_path):
    """The revision of a partly held-back state uses the loader's formula, so a clean root gets the same revision either way."""
    from engine.policy.activation import _state_revision

    root = two_flows(tmp_path, versions=("1", "2"))
    policies = check(root).policies
    assert _state_revision(policies.flows) == policies.revision


def test_a_compiler_crash_in_one_flow_holds_back_only_that_flow(tmp_path, monkeypatch):
    """compile_flow raising for demo is a compile_failed problem of demo's flow file; other still loads."""
    import engine.policy.loader

    real = engine.policy.loader.compile_flow

    def crash_on_demo(src, *args):
        if src.file.flow == "demo":
            raise RecursionError("maximum recursion depth exceeded")
        return real(src, *args)

    monkeypatch.setattr(engine.policy.loader, "compile_flow", crash_on_demo)
    outcome = check(two_flows(tmp_path))
    assert {n: f.state for n, f in outcome.flows.items()} == {"demo": "unavailable", "other": "ok"}
    (problem,) = outcome.flows["demo"].problems
    assert (problem.path, problem.code) == ("policies/demo/1/flow.yaml", "compile_failed") and "RecursionError" in problem.message


BAD_REVIEW = "queue: demo-desk\nsla_minutes:\n  normal: 0\n"


def test_lint_reports_a_bad_review_file_with_its_line(tmp_path, capsys):
    """`verdict lint` finds the review.yaml problem the server refuses at start, as policies/<flow>/review.yaml:line, and exits 1."""
    from engine.cli import main

    root = two_flows(tmp_path)
    write(root, "policies/demo/review.yaml", BAD_REVIEW)
    assert main(["lint", "--root", str(root)]) == 1
    out = capsys.readouterr().out
    assert "policies/demo/review.yaml:3" in out and "sla_minutes.normal" in out
    write(root, "policies/demo/review.yaml", "queue: demo-desk\n")
    assert main(["lint", "--root", str(root)]) == 0


def test_a_bad_review_file_on_reload_is_reported_and_holds_back_no_flow(tmp_path):
    """A reload with a bad review.yaml is refused in status naming file and line, while every flow keeps serving what is on disk."""
    root = two_flows(tmp_path)
    decider = Decider(check(root).policies)
    reloader = Reloader(root, decider)
    write(root, "policies/demo/review.yaml", BAD_REVIEW)
    (root / "rules/other.yaml").write_text(OTHER_RULES.format(cut=0.5))
    (root / "policies/other/1/tests/cases.yaml").write_text(OTHER_TESTS.replace("0.95", "0.6"))
    status = reloader.reload()
    assert not status.ok and status.result == "refused"
    assert [(p.path, p.line) for p in status.problems] == [("policies/demo/review.yaml", 3)]
    assert {f.name: f.state for f in status.flows} == {"demo": "ok", "other": "ok"}
    assert decider.decide("other", {"score": 0.6}).outcome.action.name == "DECLINE"  # the other change went live


def test_the_review_queue_keeps_its_last_good_config_on_a_bad_reload(tmp_path):
    """Review.reload_config swaps in a good review.yaml and keeps it when the file turns bad, returning the problems."""
    from engine.cases import CaseOpener, ReviewConfig, open_store
    from engine.cases.wiring import Review

    root = two_flows(tmp_path)
    store = open_store(tmp_path / "cases.db")
    review = Review(store, CaseOpener(store, "c", ReviewConfig({})), None)
    write(root, "policies/demo/review.yaml", "queue: demo-desk\n")
    assert review.reload_config(root) == []
    assert review.opener.config.for_flow("demo").queue == "demo-desk"
    write(root, "policies/demo/review.yaml", BAD_REVIEW)
    problems = review.reload_config(root)
    assert [(p.path, p.line) for p in problems] == [("policies/demo/review.yaml", 3)]
    assert review.opener.config.for_flow("demo").queue == "demo-desk"
    store.close()
