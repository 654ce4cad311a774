"""Tests of policy tests: discovery beside flows and rules, expectations, readable failures, exit codes."""

from pathlib import Path

from engine.cli import main
from engine.policy.policytest import format_report, run_root
from engine.policy.testcases import discover

from .policy_roots import demo_root, write


def test_all_cases_pass_on_a_correct_policy(tmp_path):
    """Every case of the demo tests passes, and every rule is fired by some case."""
    report = run_root(demo_root(tmp_path))
    assert report.ok, format_report(report)
    assert len(report.results) == 6
    assert report.uncovered == {} and report.untested == []


def test_a_changed_rule_fails_with_expected_and_actual(tmp_path):
    """A rule change that breaks a case fails it; the output shows expected vs actual and where."""
    report = run_root(demo_root(tmp_path, limit=9000))
    assert not report.ok
    (failed,) = report.failed
    assert failed.name == "big amount goes to review" and failed.line == 5
    text = format_report(report)
    assert "FAIL demo 1 :: big amount goes to review" in text
    assert "policies/demo/1/tests/cases.yaml:5" in text
    assert "action: expected REVIEW, got APPROVE" in text
    assert "reasons: expected [BIG], got []" in text
    assert "fired rules: none (the flow's default applied)" in text
    assert "5 passed, 1 failed" in text


def test_failure_lists_fired_rules_with_condition_and_source(tmp_path):
    """When rules fired, the failure lists each with its action, reason, condition and file:line."""
    demo_root(tmp_path)
    write(tmp_path, "policies/demo/1/tests/more.yaml", "cases:\n  - name: wrong\n    input: {amount: 5000, age: 16, income: 1}\n    expect: {action: REVIEW}\n")
    text = format_report(run_root(tmp_path, pattern="wrong"))
    assert "action: expected REVIEW, got DECLINE" in text
    assert "R2             DECLINE  YOUNG" in text and "age < 18  (rules/main.yaml:8)" in text
    assert "amount > 1000  (rules/main.yaml:3)" in text


def test_partial_matches(tmp_path):
    """contains / excludes / exactly, fired rules in any order, and score ranges are checked."""
    demo_root(tmp_path, tests=False)
    write(
        tmp_path,
        "policies/demo/1/tests/partial.yaml",
        """\
base: {amount: 5000, age: 16, income: 100}
cases:
  - name: contains and excludes
    input: {}
    expect:
      reasons: {contains: [YOUNG], excludes: [BLOCKED]}
      fired: [R1, R2]
  - name: exactly in order
    input: {}
    expect:
      reasons: {exactly: [BIG, YOUNG]}
  - name: fired names an unknown rule
    input: {}
    expect:
      fired: {contains: [R99]}
""",
    )
    report = run_root(tmp_path)
    by_name = {r.name: r for r in report.results}
    assert by_name["contains and excludes"].passed
    assert by_name["exactly in order"].failures == ("reasons: expected [BIG, YOUNG], got [YOUNG, BIG]",)
    assert any("R99" in f and "not a rule" in f for f in by_name["fired names an unknown rule"].failures)


def test_tests_beside_rules_run_against_every_version(tmp_path):
    """A test file under rules/**/tests names its flow and runs against every loaded version."""
    demo_root(tmp_path, versions=("1", "2"), tests=False)
    write(tmp_path, "rules/tests/main.yaml", "flow: demo\ncases:\n  - name: minors\n    input: {amount: 1, age: 3, income: 1}\n    expect: {fired: [R2]}\n")
    report = run_root(tmp_path)
    assert report.ok
    assert sorted((r.flow, r.version) for r in report.results) == [("demo", "1"), ("demo", "2")]


def test_test_file_schema_errors_have_lines(tmp_path):
    """A misspelt key in a test file is reported with its file and line, and the run fails."""
    demo_root(tmp_path)
    write(tmp_path, "policies/demo/1/tests/bad.yaml", "cases:\n  - name: x\n    input: {amount: 1, age: 30}\n    expect: {acton: APPROVE}\n")
    _suites, problems = discover(tmp_path)
    assert [(p.path, p.line, p.code) for p in problems] == [("policies/demo/1/tests/bad.yaml", 4, "schema")]
    assert not run_root(tmp_path).ok


def test_version_directory_and_declared_version_must_agree(tmp_path):
    """Tests under policies/demo/1 cannot claim to test version 2."""
    demo_root(tmp_path, versions=("1", "2"))
    write(tmp_path, "policies/demo/1/tests/other.yaml", 'version: "2"\ncases:\n  - name: x\n    expect: {action: APPROVE}\n')
    _, problems = discover(tmp_path)
    assert [p.code for p in problems] == ["test_version_mismatch"]


def test_uncovered_rules_are_reported(tmp_path):
    """Rules that no case fires are listed per version, with their file and line."""
    demo_root(tmp_path, tests=False)
    write(tmp_path, "policies/demo/1/tests/one.yaml", "cases:\n  - name: x\n    input: {amount: 5000, age: 30, income: 1}\n    expect: {fired: [R1]}\n")
    report = run_root(tmp_path)
    assert report.ok
    assert [r.id for r in report.uncovered[("demo", "1")]] == ["R2", "R3", "R4"]
    assert "3 rules no test fires" in format_report(report)


def test_cli_exit_codes(tmp_path, capsys):
    """verdict test: 0 when all pass, 1 on a failure, 1 when no test ran, 1 on load errors."""
    root = demo_root(tmp_path / "ok")
    assert main(["test", "--root", str(root)]) == 0
    assert main(["test", "--root", str(root), "-k", "no such case"]) == 1
    assert "no test ran" in capsys.readouterr().out
    assert main(["test", "--root", str(demo_root(tmp_path / "bad", limit=9000))]) == 1
    broken = demo_root(tmp_path / "broken")
    (broken / "rules/main.yaml").write_text((broken / "rules/main.yaml").read_text().replace("age < 18", "agee < 18"))
    assert main(["test", "--root", str(broken)]) == 1
    assert "unknown field 'agee'" in capsys.readouterr().out
    uncovered = demo_root(tmp_path / "uncovered", tests=False)
    write(uncovered, "policies/demo/1/tests/one.yaml", "cases:\n  - name: x\n    input: {amount: 1, age: 30, income: 1}\n    expect: {action: APPROVE}\n")
    assert main(["test", "--root", str(uncovered)]) == 0
    assert main(["test", "--root", str(uncovered), "--fail-uncovered"]) == 1


def test_load_problems_in_the_report_read_like_lint(tmp_path):
    """A problem that keeps tests from running is printed as lint prints it: file:line: rule X: [code] ..."""
    root = demo_root(tmp_path)
    (root / "rules/main.yaml").write_text((root / "rules/main.yaml").read_text().replace("age < 18", "agee < 18"))
    text = format_report(run_root(root))
    assert "ERROR rules/main.yaml:9: rule R2: [unknown_field] unknown field 'agee'" in text


def test_shipped_policies_pass_their_tests_and_cover_every_rule():
    """The bundled flows' tests all pass, and every rule of every version is fired by some case."""
    report = run_root(Path(__file__).resolve().parents[2])
    assert report.ok, format_report(report)
    assert report.uncovered == {} and report.untested == [], format_report(report)
    assert {(r.flow, r.version) for r in report.results} >= {("credit_application", "1"), ("credit_application", "2"), ("card_payment", "1")}
