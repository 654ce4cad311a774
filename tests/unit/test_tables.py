"""Tests of decision tables: cell forms, hit policies, and errors located by file, line, table and row."""

from pathlib import Path

import pytest

from engine.policy.loader import load, load_policies
from engine.policy.tables import CellError, cell_condition
from engine.types import Action

FLOW = """\
flow: demo
version: "1"
input:
  fields:
    job: {type: category, values: [fixed, freelance, partime, others]}
    home: {type: category, values: [rent, owner, parents, other]}
    seniority: {type: integer, required: true, min: 0, max: 70}
    pd: {type: number, required: true, min: 0, max: 1}
rulesets: [demo.table]
default: {action: APPROVE}
reasons:
  UNSTABLE: Unstable profile
  RISKY: Risky
  OK: Fine
"""

TABLE = """\
ruleset: demo.table
tables:
  - id: PROFILE
    hit: {hit}
    columns: [job, home, seniority, pd]
    rows:
      - when: [partime, "in ['rent', 'other']", "< 2", "-"]
        action: DECLINE
        reason: UNSTABLE
        priority: 70
      - when: ["-", "-", "-", "[0.3..0.6)"]
        action: REVIEW
        reason: RISKY
      - id: PROFILE-CATCH
        when: ["-", "-", "-", "-"]
        action: APPROVE
        reason: OK
        priority: 1
"""


def make_root(tmp_path: Path, table: str, flow: str = FLOW) -> Path:
    (tmp_path / "policies/demo/1").mkdir(parents=True)
    (tmp_path / "rules").mkdir()
    (tmp_path / "policies/demo/1/flow.yaml").write_text(flow)
    (tmp_path / "rules/table.yaml").write_text(table)
    return tmp_path


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("-", None),
        ("any", None),
        ("> 0.9", "x > 0.9"),
        ("<= income", "x <= income"),
        ("in ['rent', 'other']", "x in ['rent', 'other']"),
        ("not in ['rent']", "x not in ['rent']"),
        ("[0.2..0.5)", "x >= 0.2 and x < 0.5"),
        ("(1..2]", "x > 1 and x <= 2"),
        ("18..25", "x >= 18 and x <= 25"),
        ("null", "is_null(x)"),
        ("not null", "is_not_null(x)"),
        ("partime", "x == 'partime'"),
        ("'two words'", "x == 'two words'"),
        ("3", "x == 3"),
        ("true", "x == true"),
        (True, "x == true"),
        (2, "x == 2"),
        (0.5, "x == 0.5"),
    ],
)
def test_cell_forms(cell, expected):
    """Every documented cell form turns into the documented condition on its column."""
    assert cell_condition("x", cell) == expected


def test_cell_on_an_expression_column_is_parenthesised():
    """A column that is an expression is wrapped, so '> 3' applies to the whole expression."""
    assert cell_condition("debt / income", "> 3") == "(debt / income) > 3"


@pytest.mark.parametrize("cell", ["", "?? 3", "=> 2"])
def test_bad_cells_are_refused(cell):
    """A cell that is none of the forms raises CellError with the forms listed."""
    with pytest.raises(CellError):
        cell_condition("x", cell)


def test_first_hit_fires_only_the_first_matching_row(tmp_path):
    """hit: first fires the first matching row only; later rows see earlier rows as not matched."""
    flow = load_policies(make_root(tmp_path, TABLE.format(hit="first"))).flows["demo"].versions["1"]
    out = flow.evaluate({"job": "partime", "home": "rent", "seniority": 1, "pd": 0.4})
    assert [r.id for r in out.fired] == ["PROFILE.1"] and out.action == Action.DECLINE
    out = flow.evaluate({"job": "fixed", "home": "rent", "seniority": 1, "pd": 0.4})
    assert [r.id for r in out.fired] == ["PROFILE.2"] and out.action == Action.REVIEW
    out = flow.evaluate({"job": "fixed", "seniority": 10, "pd": 0.1})
    assert [r.id for r in out.fired] == ["PROFILE-CATCH"]


def test_first_hit_row_missing_value_counts_as_not_matched(tmp_path):
    """An earlier row that cannot be evaluated (missing job) does not block the rows after it."""
    flow = load_policies(make_root(tmp_path, TABLE.format(hit="first"))).flows["demo"].versions["1"]
    out = flow.evaluate({"seniority": 1, "pd": 0.5})  # job and home missing: row 1 is not true
    assert [r.id for r in out.fired] == ["PROFILE.2"]


def test_collect_fires_every_matching_row(tmp_path):
    """hit: collect fires every row that matches; the most severe action wins as for rules."""
    flow = load_policies(make_root(tmp_path, TABLE.format(hit="collect"))).flows["demo"].versions["1"]
    out = flow.evaluate({"job": "partime", "home": "rent", "seniority": 1, "pd": 0.4})
    assert sorted(r.id for r in out.fired) == ["PROFILE-CATCH", "PROFILE.1", "PROFILE.2"]
    assert out.action == Action.DECLINE
    assert [r.code for r in out.reasons] == ["UNSTABLE", "RISKY", "OK"]


def test_rows_carry_their_condition_and_line(tmp_path):
    """Each row is a compiled rule whose condition text and file:line point at the row."""
    flow = load_policies(make_root(tmp_path, TABLE.format(hit="first"))).flows["demo"].versions["1"]
    rules = {r.id: r for r in flow.rules}
    assert rules["PROFILE.1"].condition == "job == 'partime' and home in ['rent', 'other'] and seniority < 2"
    assert rules["PROFILE.1"].source == "rules/table.yaml:7"
    assert "first hit: rows 1-1 of table PROFILE did not match" in rules["PROFILE.2"].condition
    assert rules["PROFILE-CATCH"].source == "rules/table.yaml:14"


def test_table_errors_name_file_line_table_and_row(tmp_path):
    """Bad cells, a wrong row width, an unknown column and a bad category are all reported at once."""
    table = """\
ruleset: demo.table
tables:
  - id: T
    hit: collect
    columns: [job, seniority, incme]
    rows:
      - when: [partime, "?? 2", "-"]
        action: DECLINE
        reason: UNSTABLE
      - when: [partime, "-"]
        action: REVIEW
        reason: RISKY
      - when: [plumber, "-", "-"]
        action: REVIEW
        reason: RISKY
"""
    result = load(make_root(tmp_path, table))
    assert result.policies is None
    found = {(p.code, p.line, p.rule) for p in result.errors}
    assert ("table_cell", 7, "T.1") in found
    assert ("table_row_width", 10, "T.2") in found
    assert ("unknown_field", 5, "T") in found
    assert ("unknown_category", 13, "T.3") in found
    messages = " ".join(p.message for p in result.errors)
    assert "table T row 3" in messages and "column 'incme'" in messages


def test_schema_error_in_a_table_keeps_other_problems(tmp_path):
    """A table with an unknown key is a schema error, and errors elsewhere in the file are still found."""
    table = """\
ruleset: demo.table
rules:
  - id: R1
    when: seniorty < 1
    action: REVIEW
    reason: RISKY
tables:
  - id: T
    hit: first
    colums: [job]
    rows:
      - when: [partime]
        action: DECLINE
        reason: UNSTABLE
"""
    result = load(make_root(tmp_path, table))
    codes = {(p.code, p.line, p.rule) for p in result.errors}
    assert ("schema", 10, "T") in codes
    assert ("unknown_field", 4, "R1") in codes


def test_unknown_reason_in_a_row_is_reported(tmp_path):
    """A row's reason must be in the flow's catalogue, like a rule's."""
    table = TABLE.format(hit="first").replace("reason: RISKY", "reason: RISKEY")
    result = load(make_root(tmp_path, table))
    assert [(p.code, p.rule, p.line) for p in result.errors] == [("unknown_reason", "PROFILE.2", 13)]
