"""verdict backtest: several versions side by side on a history file, compared and scored against outcomes."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine.batch.backtest import OutcomeError, backtest
from engine.cli import main
from engine.datasets import read_credit_applications
from engine.runtime.service import load_decider
from engine.tabular import read_rows

ROOT = Path(__file__).resolve().parents[2]
CREDIT_CSV = ROOT / "data" / "credit_data.csv"
ROWS = 600


@pytest.fixture(scope="module")
def decider():
    """The bundled policies, loaded as the server loads them."""
    return load_decider(ROOT)


@pytest.fixture()
def history(tmp_path) -> Path:
    """The first ROWS rows of data/credit_data.csv (with its Status outcome column) and an app id column."""
    lines = CREDIT_CSV.read_text(encoding="utf-8").splitlines()[: ROWS + 1]
    path = tmp_path / "history.csv"
    path.write_text("\n".join([f"app,{lines[0]}", *(f"a{i},{line}" for i, line in enumerate(lines[1:]))]) + "\n")
    return path


def _by_hand(decider, version: str) -> tuple[list[str], list[bool]]:
    compiled, _ = decider.resolve("credit_application", version)
    actions = [compiled.evaluate(r).action.name for r in read_credit_applications(CREDIT_CSV, ROWS, integers=False)]
    bad = [s == "bad" for s in read_rows(CREDIT_CSV, limit=ROWS).column("Status")]
    return actions, bad


def test_rates_transitions_and_outcomes_match_one_by_one(decider, history):
    """Each version's counts, the transition matrix and approval / bad-rate figures equal those of evaluate row by row."""
    result = backtest(decider, "credit_application", ["1", "2"], history, id_column="app", outcome_column="Status")
    one, bad = _by_hand(decider, "1")
    two, _ = _by_hand(decider, "2")
    assert result.rows == ROWS and result.labelled == ROWS
    assert result.versions["1"].actions == Counter(one)
    assert result.versions["2"].actions == Counter(two)
    report = result.comparisons["2"]
    assert report.transitions == Counter(zip(one, two, strict=True))
    assert report.changed == sum(a != b for a, b in zip(one, two, strict=True))
    approved_two = [b for a, b in zip(two, bad, strict=True) if a == "APPROVE"]
    m = result.versions["2"].metrics.as_dict()
    assert m["approval_rate"] == len(approved_two) / ROWS
    assert m["bad_rate_of_approved"] == sum(approved_two) / len(approved_two)
    assert result.as_dict()["comparisons"]["2"]["outcomes"]["after"] == m
    if report.changed:
        assert report.drivers  # the rules behind the changes are named
        example = next(iter(report.examples.values()))[0]
        assert example.startswith("a")  # rows named by the id column


def test_outcomes_file_joined_on_the_id_column(decider, history, tmp_path):
    """An outcomes file (id,outcome) gives the same metrics as the history's own outcome column."""
    labels = read_rows(CREDIT_CSV, limit=ROWS).column("Status")
    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_text("id,outcome\n" + "".join(f"a{i},{s}\n" for i, s in enumerate(labels)))
    from engine.audit.replay import load_outcomes

    joined = backtest(decider, "credit_application", ["1", "2"], history, id_column="app", outcomes=load_outcomes(outcomes))
    own = backtest(decider, "credit_application", ["1", "2"], history, id_column="app", outcome_column="Status")
    assert joined.as_dict()["versions"] == own.as_dict()["versions"]


def test_cli_table_json_and_plots(history, tmp_path, capsys):
    """The command prints the side-by-side table, writes the JSON report and two PNG plots."""
    out = tmp_path / "report.json"
    plots = tmp_path / "plots"
    code = main(["backtest", "credit_application", "--versions", "1,2", "--input", str(history), "--outcome-column",
                 "Status", "--json", str(out), "--plots", str(plots), "--root", str(ROOT)])
    text = capsys.readouterr().out
    assert code == 0
    assert "version 1" in text and "bad rate of approved" in text and "transitions (rows: version 1, columns: version 2)" in text
    data = json.loads(out.read_text())
    assert data["rows"] == ROWS and set(data["versions"]) == {"1", "2"}
    for name in ("actions.png", "transitions_1_to_2.png"):
        assert (plots / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_usage_is_named(history, tmp_path, capsys):
    """A repeated version, an unknown version or an outcome that is neither good nor bad: exit 2 naming the fault."""
    assert main(["backtest", "credit_application", "--versions", "1,1", "-i", str(history), "--root", str(ROOT)]) == 2
    assert "one or more distinct versions" in capsys.readouterr().err
    assert main(["backtest", "credit_application", "--versions", "1,7", "-i", str(history), "--root", str(ROOT)]) == 2
    assert "7" in capsys.readouterr().err
    bad = tmp_path / "bad.csv"
    bad.write_text(history.read_text().replace("a0,good,", "a0,maybe,", 1))
    assert main(["backtest", "credit_application", "--versions", "1,2", "-i", str(bad), "--outcome-column", "Status",
                 "--root", str(ROOT)]) == 2
    assert "'maybe' is neither good nor bad" in capsys.readouterr().err


def test_outcome_errors_name_the_row(decider, tmp_path, history):
    """A bad label raises OutcomeError naming the file and the row."""
    bad = tmp_path / "bad.csv"
    bad.write_text(history.read_text().replace("a0,good,", "a0,maybe,", 1))
    with pytest.raises(OutcomeError, match=r"bad\.csv, row a0"):
        backtest(decider, "credit_application", ["1", "2"], bad, id_column="app", outcome_column="Status")


NEW_FLOW = """\
flow: quick_credit
version: "1"
description: A rules-only credit policy, drafted before it serves.
input:
  fields:
    seniority: {type: integer, required: true, min: 0, max: 70}
    age: {type: integer, required: true, min: 0, max: 120}
    records: {type: boolean, required: true}
    income: {type: number, min: 0, max: 1000000}
    amount: {type: number, required: true, min: 1, max: 1000000}
    price: {type: number, required: true, min: 1, max: 10000000}
derived:
  loan_to_price: amount / price
rulesets: [quick.main]
default: {action: APPROVE}
reasons:
  DELINQUENCY_RECORDS: Past delinquency records on file
  SHORT_EMPLOYMENT: Length of employment is too short
  HIGH_LOAN_TO_PRICE: The loan finances too large a share of the price
  INCOME_NOT_STATED: Income was not stated and must be verified
"""

NEW_RULES = """\
ruleset: quick.main
rules:
  - id: Q-001
    when: records
    action: DECLINE
    reason: DELINQUENCY_RECORDS
    priority: 90
  - id: Q-002
    when: seniority < 2 and loan_to_price > 0.8
    action: REVIEW
    reason: SHORT_EMPLOYMENT
    priority: 50
  - id: Q-003
    when: loan_to_price > 0.95
    action: REVIEW
    reason: HIGH_LOAN_TO_PRICE
    priority: 40
  - id: Q-004
    when: is_null(income)
    action: REVIEW
    reason: INCOME_NOT_STATED
    priority: 10
"""

NEW_TESTS = """\
cases:
  - name: a delinquent applicant is declined
    input: {seniority: 10, age: 40, records: true, income: 200, amount: 1000, price: 2000}
    expect: {action: DECLINE, reasons: [DELINQUENCY_RECORDS]}
  - name: a clean applicant is approved
    input: {seniority: 10, age: 40, records: false, income: 200, amount: 1000, price: 2000}
    expect: {action: APPROVE, reasons: []}
"""


def test_a_new_flow_backtested_alone(history, tmp_path, capsys):
    """A brand-new flow alone (rates, rules fired with their bad rates, reasons equal evaluate row by row), then against the flow it would replace."""
    from tests.unit.policy_roots import flows_copy, write

    root = flows_copy(tmp_path, ("credit_application",))
    write(root, "policies/quick_credit/1/flow.yaml", NEW_FLOW)
    write(root, "policies/quick_credit/1/tests/cases.yaml", NEW_TESTS)
    write(root, "policies/quick_credit/routing.yaml", 'live: "1"\n')
    write(root, "rules/quick/main.yaml", NEW_RULES)
    decider = load_decider(root)
    result = backtest(decider, "quick_credit", ["1"], history, outcome_column="Status")
    compiled, _ = decider.resolve("quick_credit", "1")
    outcomes = [compiled.evaluate({k: v for k, v in raw.items() if k in compiled.validator.fields})
                for raw in read_credit_applications(CREDIT_CSV, ROWS, integers=False)]
    bad = [s == "bad" for s in read_rows(history).column("Status")]
    one = result.versions["1"]
    assert one.actions == Counter(o.action.name for o in outcomes)
    assert one.rules == Counter(f.id for o in outcomes for f in o.fired)
    assert one.reasons == Counter(code for o in outcomes for code in dict.fromkeys(r.code for r in o.reasons))
    q1 = next(t for t in one.rule_table(result.rules["1"]) if t["rule"] == "Q-001")
    fired = [b for o, b in zip(outcomes, bad, strict=True) if any(f.id == "Q-001" for f in o.fired)]
    assert q1["hits"] == len(fired) and q1["bad_rate"] == sum(fired) / len(fired) and q1["action"] == "DECLINE"
    assert result.comparisons == {}
    against = backtest(decider, "quick_credit", ["1", "credit_application@3"], history, outcome_column="Status")
    three, _ = _by_hand(decider, "3")
    assert against.versions["1"].actions == one.actions and against.versions["credit_application@3"].actions == Counter(three)
    assert against.comparisons["credit_application@3"].replayed == ROWS  # every row decided by both flows
    assert main(["backtest", "quick_credit", "--versions", "1", "-i", str(history), "--outcome-column", "Status",
                 "--root", str(root)]) == 0
    text = capsys.readouterr().out
    assert "rules fired, version 1" in text and "Q-001" in text and "bad rate of hits" in text and "against" not in text
