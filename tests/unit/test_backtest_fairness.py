"""verdict backtest --protected/--age: approval rate, AIR and bad rate of approved per group, never fed to the flow."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine.batch.backtest import ProtectedColumnError, backtest
from engine.cli import main
from engine.datasets import read_credit_applications
from engine.runtime.service import load_decider
from engine.tabular import read_rows
from engine.training.fairness import adverse_impact

ROOT = Path(__file__).resolve().parents[2]
CREDIT_CSV = ROOT / "data" / "credit_data.csv"
ROWS = 400  # enough rows for groups of 30 (flagging applies) and for small ones (never flagged)


@pytest.fixture()
def history(tmp_path) -> Path:
    """The first ROWS rows of data/credit_data.csv with Marital and Age copied under names the flow does not read."""
    lines = CREDIT_CSV.read_text(encoding="utf-8").splitlines()[: ROWS + 1]
    header = lines[0].split(",")
    marital, age = header.index("Marital"), header.index("Age")
    body = [f"a{i},{line.split(',')[marital]},{line.split(',')[age]},{line}" for i, line in enumerate(lines[1:])]
    path = tmp_path / "history.csv"
    path.write_text("\n".join([f"app,marital_status,applicant_age,{lines[0]}", *body]) + "\n")
    return path


@pytest.fixture(scope="module")
def decider():
    """The bundled policies as the server loads them."""
    return load_decider(ROOT)


def _band(age: float) -> str:
    return "under 25" if age < 25 else "25-39" if age < 40 else "40-61" if age < 62 else "62 and over"


def test_adverse_impact_by_hand():
    """Rates, AIR against the most favoured group and the four-fifths flag equal a hand computation; small groups never flag."""
    t = adverse_impact({"a": (40, 30), "b": (50, 20), "c": (10, 1), "empty": (0, 0)})
    by = {g["group"]: g for g in t["groups"]}
    assert t["reference"] == "a" and set(by) == {"a", "b", "c"}
    assert by["a"]["approval_rate"] == 0.75 and by["a"]["air"] == 1.0
    assert by["b"]["air"] == pytest.approx(0.4 / 0.75)
    assert by["c"]["air"] == pytest.approx(0.1 / 0.75)
    assert t["flagged"] == ["b"]  # c is below 0.8 too, but has fewer than 30 rows
    assert adverse_impact({"x": (35, 0), "y": (40, 0)})["groups"][0]["air"] is None  # nobody approved


def test_backtest_groups_match_row_by_row_evaluation(decider, history):
    """Per version and group: rows, approvals, AIR and bad rate of approved equal those of evaluate row by row."""
    result = backtest(decider, "credit_application", ["1", "3"], history, id_column="app", outcome_column="Status",
                      protected=["marital_status"], age="applicant_age")
    raw = read_rows(CREDIT_CSV, limit=ROWS)
    marital, ages, bad = raw.column("Marital"), [float(a) for a in raw.column("Age")], [s == "bad" for s in raw.column("Status")]
    fairness = result.as_dict()["fairness"]["versions"]
    for version in ("1", "3"):
        compiled, _ = decider.resolve("credit_application", version)
        approved = [compiled.evaluate(r).action.name == "APPROVE"
                    for r in read_credit_applications(CREDIT_CSV, ROWS, integers=False)]
        for attribute, groups in (("marital_status", marital), ("applicant_age", [_band(a) for a in ages])):
            rows, yes = Counter(groups), Counter(g for g, a in zip(groups, approved, strict=True) if a)
            bad_yes = Counter(g for g, a, b in zip(groups, approved, bad, strict=True) if a and b)
            rate = {g: yes[g] / n for g, n in rows.items()}
            top = max(rate[g] for g, n in rows.items() if n >= 30)
            table = {g["group"]: g for g in fairness[version][attribute]["groups"]}
            assert set(table) == set(rows)
            for g, n in rows.items():
                assert table[g]["rows"] == n and table[g]["approved"] == yes[g]
                assert table[g]["air"] == pytest.approx(rate[g] / top)
                assert table[g]["flagged"] == (n >= 30 and rate[g] / top < 0.8)
                assert table[g]["bad_rate_of_approved"] == (bad_yes[g] / yes[g] if yes[g] else None)


def test_protected_columns_do_not_change_decisions(decider, history):
    """The same history with and without --protected gives the same decisions: the columns are not sent."""
    plain = backtest(decider, "credit_application", ["1", "3"], history, id_column="app")
    shown = backtest(decider, "credit_application", ["1", "3"], history, id_column="app", protected=["marital_status"])
    assert {v: r.actions for v, r in plain.versions.items()} == {v: r.actions for v, r in shown.versions.items()}
    assert "fairness" not in plain.as_dict() and "marital_status" in shown.as_dict()["fairness"]["attributes"]


def test_a_protected_column_the_flow_declares_is_refused(decider, history, capsys):
    """--protected naming a column the flow takes as input (Marital feeds marital) exits 2 naming it and the field."""
    with pytest.raises(ProtectedColumnError, match="'Marital' \\(input field 'marital'\\)"):
        backtest(decider, "credit_application", ["1", "3"], history, protected=["Marital"])
    code = main(["backtest", "credit_application", "--versions", "1,3", "-i", str(history), "--protected", "Marital",
                 "--root", str(ROOT)])
    assert code == 2
    assert "'Marital' (input field 'marital')" in capsys.readouterr().err


def test_cli_table_and_json(history, tmp_path, capsys):
    """The command prints a table per version and attribute and writes the same figures to the JSON report."""
    out = tmp_path / "report.json"
    code = main(["backtest", "credit_application", "--versions", "1,3", "-i", str(history), "--outcome-column", "Status",
                 "--protected", "marital_status", "--age", "applicant_age", "--json", str(out), "--root", str(ROOT)])
    text = capsys.readouterr().out
    assert code == 0
    assert "version 3, applicant_age (reference group:" in text and "62 and over" in text
    data = json.loads(out.read_text())
    assert data["fairness"]["attributes"] == ["marital_status", "applicant_age"]
    bands = [g["group"] for g in data["fairness"]["versions"]["1"]["applicant_age"]["groups"]]
    assert bands == [b for b in ("under 25", "25-39", "40-61", "62 and over") if b in bands]  # in age order
