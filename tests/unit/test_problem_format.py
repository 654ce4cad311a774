"""Tests of the one problem formatter (errors.Problem.__str__), which verdict lint, release, the reload log and status print."""

from engine.errors import Problem, format_problem
from engine.policy.lint import LintReport, format_lint


def test_a_rules_problem_names_file_line_rule_code_and_hint():
    """An error of a rule prints as path:line: rule X: [code] message (hint: ...)."""
    p = Problem("rules/a.yaml", "unknown field 'incme'", "unknown_field", line=20, rule="AFF-3", hint="did you mean 'income'?")
    assert str(p) == "rules/a.yaml:20: rule AFF-3: [unknown_field] unknown field 'incme' (hint: did you mean 'income'?)"
    assert format_problem(p) == str(p)


def test_a_field_is_named_only_without_a_rule_and_a_warning_says_so():
    """A field shows when no rule is named; a warning carries 'warning:' before its code; no line, no ':line'."""
    field = Problem("policies/f/1/flow.yaml", "bad", "schema", line=3, field="age")
    both = Problem("policies/f/1/flow.yaml", "bad", "schema", line=3, field="age", rule="R1")
    warning = Problem("rules/b.yaml", "unused", "unused_ruleset", severity="warning")
    assert str(field) == "policies/f/1/flow.yaml:3: field age: [schema] bad"
    assert str(both) == "policies/f/1/flow.yaml:3: rule R1: [schema] bad"
    assert str(warning) == "rules/b.yaml: warning: [unused_ruleset] unused"


def test_lint_prints_each_problem_with_the_same_formatter():
    """format_lint's problem lines are str(problem), one a line, before the summary."""
    problems = [Problem("rules/a.yaml", "m", "unreachable_rule", line=2, rule="X1"), Problem("rules/b.yaml", "w", "unused_ruleset", severity="warning")]
    lines = format_lint(LintReport(problems=problems)).splitlines()
    assert lines[:2] == [str(p) for p in problems]
    assert lines[2].startswith("lint FAILED: 1 error, 1 warning")
