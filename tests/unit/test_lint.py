"""Tests of verdict lint: loader problems plus unreachable, duplicate, shadowed and unused checks."""

from pathlib import Path

from engine.cli import main
from engine.policy.lint import format_lint, lint

from .policy_roots import demo_root, write

EXTRA = """\
ruleset: demo.extra
rules:
  - id: X1
    when: age > 200
    action: DECLINE
    reason: YOUNG
  - id: X2
    when: age < 18 and age > 65
    action: DECLINE
    reason: YOUNG
  - id: X3
    when: is_null(age)
    action: REVIEW
    reason: YOUNG
  - id: X4
    when: 18 > age
    action: REVIEW
    reason: YOUNG
  - id: X5
    when: income > 10 and amount > 5
    action: REVIEW
    reason: BIG
  - id: X6
    when: amount > 5 and income > 10
    action: DECLINE
    reason: BIG
  - id: X7
    when: age < 18 or age > 300
    action: REVIEW
    reason: YOUNG
tables:
  - id: T
    hit: first
    columns: [country, amount]
    rows:
      - when: ["in ['FR', 'DE']", "> 100"]
        action: REVIEW
        reason: BIG
      - when: [DE, "> 500"]
        action: DECLINE
        reason: BIG
      - when: [DE, "-"]
        action: DECLINE
        reason: BLOCKED
      - when: ["-", "-"]
        action: APPROVE
        reason: BIG
      - when: [GB, "< 5"]
        action: REVIEW
        reason: BIG
"""


def _extra_root(tmp_path: Path) -> Path:
    demo_root(tmp_path, tests=False)
    write(tmp_path, "rules/extra.yaml", EXTRA)
    flow = tmp_path / "policies/demo/1/flow.yaml"
    flow.write_text(flow.read_text().replace("rulesets: [demo.main]", "rulesets: [demo.main, demo.extra]"))
    return tmp_path


def _codes(report) -> dict[tuple[str, str], str]:
    return {(p.code, p.rule or ""): p.message for p in report.problems}


def test_a_clean_root_lints_clean(tmp_path):
    """The demo root has no problem; the summary says what was checked."""
    report = lint(demo_root(tmp_path))
    assert report.ok and report.problems == []
    assert format_lint(report) == "lint clean: 0 errors, 0 warnings (1 flow, 1 version, 1 rule file, 4 rules and table rows)"


def test_unreachable_rules_are_errors(tmp_path):
    """Ranges outside the schema, contradictory ranges and is_null on a required field never fire."""
    found = _codes(lint(_extra_root(tmp_path)))
    assert "age > 200" in found[("unreachable_rule", "X1")] and "from 0 to 120" in found[("unreachable_rule", "X1")]
    assert "age < 18 and age > 65" in found[("unreachable_rule", "X2")]
    assert "'age' is required" in found[("unreachable_rule", "X3")]
    assert ("unreachable_rule", "X7") not in found  # one branch can hold


def test_duplicate_conditions_are_errors(tmp_path):
    """Two rules with the same condition (whatever the order of 'and') are reported on the later one."""
    found = _codes(lint(_extra_root(tmp_path)))
    assert "same condition as rule X5" in found[("duplicate_condition", "X6")]
    assert ("duplicate_condition", "X5") not in found


def test_shadowed_rows_of_first_tables_are_errors(tmp_path):
    """A first-hit row that an earlier row always catches is reported, naming the earlier row."""
    report = lint(_extra_root(tmp_path))
    shadowed = {p.rule: p for p in report.problems if p.code == "shadowed_row"}
    assert set(shadowed) == {"T.2", "T.5"}  # T.3 is not: row 1 leaves DE at 100 or less
    assert "row 1 (line 36) matches every input it matches" in shadowed["T.2"].message
    assert "row 4" in shadowed["T.5"].message
    assert shadowed["T.5"].line == 48


def test_unused_reason_and_ruleset_are_warnings(tmp_path, capsys):
    """Catalogue codes nothing gives and rule files no flow applies are warnings: exit 0."""
    demo_root(tmp_path)
    flow = tmp_path / "policies/demo/1/flow.yaml"
    flow.write_text(flow.read_text() + "  SPARE: Never given\n")
    write(tmp_path, "rules/orphan.yaml", "ruleset: demo.orphan\nrules: []\n")
    report = lint(tmp_path)
    assert report.ok
    assert {(p.code, p.severity) for p in report.problems} == {("unused_reason", "warning"), ("unused_ruleset", "warning")}
    assert main(["lint", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "policies/demo/1/flow.yaml:17: warning: [unused_reason] reason code SPARE" in out
    assert out.strip().endswith("lint clean: 0 errors, 2 warnings (1 flow, 1 version, 2 rule files, 4 rules and table rows)")


def test_loader_problems_are_reported_in_the_lint_format(tmp_path, capsys):
    """Unknown fields, type mismatches, unknown reasons and actions come out as path:line: rule X: [code] ... (hint: ...)."""
    demo_root(tmp_path)
    rules = tmp_path / "rules/main.yaml"
    text = rules.read_text().replace("age < 18", "agee < 18").replace("country in ['DE']", "country > 3")
    text = text.replace("reason: NO_INCOME", "reason: NO_INCOM")
    rules.write_text(text)
    flow = tmp_path / "policies/demo/1/flow.yaml"
    flow.write_text(flow.read_text().replace("default: {action: APPROVE}", "default: {action: APPROVE}\nactions: [APPROVE, DECLINE]"))
    assert main(["lint", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "rules/main.yaml:9: rule R2: [unknown_field] unknown field 'agee', column 1 (hint: did you mean 'age'?)" in out
    assert "rules/main.yaml:14: rule R3: [type_mismatch] cannot compare string with number" in out
    assert "rules/main.yaml:21: rule R4: [unknown_reason] reason code NO_INCOM" in out
    assert "[action_not_allowed] action REVIEW" in out
    assert "lint FAILED: " in out


def test_test_file_problems_are_linted(tmp_path):
    """A broken test file is a lint error too."""
    demo_root(tmp_path)
    write(tmp_path, "policies/demo/1/tests/bad.yaml", "cases: []\n")
    assert [p.code for p in lint(tmp_path).errors] == ["schema"]


def test_shipped_policies_lint_clean():
    """The bundled policies, rules and models lint without errors or warnings."""
    report = lint(Path(__file__).resolve().parents[2])
    assert report.ok and report.problems == [], format_lint(report)


CLEANING = """\
ruleset: demo.cleaning
rules:
  - id: C1
    when: customer_id not in ['de', 'FR']
    action: DECLINE
    reason: BLOCKED
  - id: C2
    when: customer_id != 'gb'
    action: REVIEW
    reason: BLOCKED
  - id: C3
    when: customer_id == ' DE'
    action: REVIEW
    reason: BLOCKED
  - id: C4
    when: amount > 5 and customer_id in ['DE', 'FR']
    action: REVIEW
    reason: BIG
"""


def _cleaning_root(tmp_path: Path, case: str = "upper") -> Path:
    demo_root(tmp_path, tests=False)
    write(tmp_path, "rules/cleaning.yaml", CLEANING)
    flow = tmp_path / "policies/demo/1/flow.yaml"
    text = flow.read_text().replace("rulesets: [demo.main]", "rulesets: [demo.main, demo.cleaning]")
    flow.write_text(text.replace("customer_id: {type: string, max_length: 64}", f"customer_id: {{type: string, max_length: 64, case: {case}}}"))
    return tmp_path


def test_a_literal_that_cleaning_makes_unequal_is_an_error(tmp_path):
    """On a `case: upper` field, 'de' in a `not in` list, `!= 'gb'` and a padded ' DE' are cleaning_mismatch errors; 'DE' is fine."""
    report = lint(_cleaning_root(tmp_path))
    found = {p.rule: p for p in report.errors if p.code == "cleaning_mismatch"}
    assert set(found) == {"C1", "C2", "C3"}
    assert found["C1"].line == 4 and found["C1"].flow == "demo"
    assert "has values that can never match" in found["C1"].message and "'de'" in found["C1"].message
    assert "is true for every request that has it" in found["C2"].message and "can only equal 'GB'" in found["C2"].message
    assert "trims spaces" in found["C3"].message and "can never be true" in found["C3"].message


def test_a_not_in_list_of_only_unmatchable_values_says_it_fires_on_every_request(tmp_path):
    """`not in ['de', 'fr']` on an upper-cased field is the silent decline-everything of the case: the message says so."""
    root = _cleaning_root(tmp_path)
    rules = root / "rules/cleaning.yaml"
    rules.write_text(rules.read_text().replace("['de', 'FR']", "['de', 'fr']"))
    (p,) = [p for p in lint(root).errors if p.rule == "C1"]
    assert "is true for every request that has it" in p.message


def test_a_lower_case_field_compared_with_upper_case_is_an_error(tmp_path):
    """With `case: lower` the upper-case literals (and the padded one) are the mismatches; `!= 'gb'` is fine."""
    report = lint(_cleaning_root(tmp_path, "lower"))
    assert {p.rule for p in report.errors if p.code == "cleaning_mismatch"} == {"C1", "C3", "C4"}
    assert "can only equal 'de'" in next(p.message for p in report.errors if p.rule == "C4")


def test_a_category_literal_outside_its_canonical_spellings_is_an_error(tmp_path):
    """country (values GB, FR, DE; cleaned to those spellings) compared with 'de' is refused at load (unknown_category)."""
    demo_root(tmp_path, tests=False)
    rules = tmp_path / "rules/main.yaml"
    rules.write_text(rules.read_text().replace("country in ['DE']", "country not in ['de']"))
    (p,) = lint(tmp_path).errors
    assert (p.code, p.rule, p.path) == ("unknown_category", "R3", "rules/main.yaml")


TEST_AHEAD = """\
base: {amount: 10, age: 30}
cases:
  - name: typo in a field
    input: {incme: 100}
    expect: {action: APPROVE}
  - name: a rule not written yet
    input: {income: 100}
    expect: {fired: {contains: [R9]}, reasons: [VELOCITY]}
  - name: an unknown field is refused
    input: {hme: rent}
    expect: {invalid: [hme]}
"""


def test_test_cases_naming_unknown_fields_rules_or_reasons_are_errors(tmp_path):
    """Lint checks each case against its flow version: unknown input field, expected rule and reason code; a case proving a field is refused is fine."""
    demo_root(tmp_path)
    write(tmp_path, "policies/demo/1/tests/ahead.yaml", TEST_AHEAD)
    found = {(p.code, p.line) for p in lint(tmp_path).errors}
    assert found == {("unknown_test_field", 4), ("unknown_test_rule", 8), ("unknown_test_reason", 8)}


def test_tests_beside_rules_are_checked_against_every_version_they_run_on(tmp_path):
    """A rules/tests file for flow demo naming a reason no version has is an error tied to flow demo."""
    demo_root(tmp_path, versions=("1", "2"))
    write(tmp_path, "rules/tests/main.yaml", "flow: demo\ncases:\n  - name: x\n    input: {amount: 1, age: 30}\n    expect: {reasons: [NOPE]}\n")
    errors = [p for p in lint(tmp_path).errors if p.code == "unknown_test_reason"]
    assert [(p.path, p.flow) for p in errors] == [("rules/tests/main.yaml", "demo")] * 2
    assert ["(demo 1)" in errors[0].message, "(demo 2)" in errors[1].message] == [True, True]


def test_expected_scores_are_checked_against_the_models_outputs(tmp_path):
    """A case expecting score 'pdd' of credit_application 1 (whose model outputs pd) is unknown_test_score with its line."""
    from .policy_roots import project_copy

    root = project_copy(tmp_path)
    write(root, "policies/credit_application/1/tests/scores.yaml",
          "cases:\n  - name: score typo\n    input: {}\n    expect:\n      scores: {pdd: '>= 0.5'}\n")
    (p,) = [p for p in lint(root).errors if p.code == "unknown_test_score"]
    assert (p.path, p.line, p.flow) == ("policies/credit_application/1/tests/scores.yaml", 5, "credit_application")
    assert "(scores: pd)" in p.message
