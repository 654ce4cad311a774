"""Fair lending in training: approval rates, AIR and AUC per group, the Reg B age check, `train --protected/--age`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.models.runtime import load_model
from engine.training.fairness import AIR_THRESHOLD, age_band, age_check, fairness_report, group_table

ROOT = Path(__file__).resolve().parents[2]
CREDIT = ROOT / "data" / "credit_data.csv"
FAST = ["--no-tune", "--max-rounds", "20", "--folds", "3", "--num-leaves", "4", "--min-data-in-leaf", "20"]


def test_approval_rate_and_air_by_hand() -> None:
    """Approval rate is the share below the cut-off and AIR divides by the most favoured group's rate."""
    groups = ["a"] * 40 + ["b"] * 40
    scores = np.r_[np.full(30, 0.1), np.full(10, 0.9), np.full(20, 0.1), np.full(20, 0.9)]
    y = np.r_[np.zeros(30), np.ones(10), np.zeros(20), np.ones(20)]
    t = group_table(groups, y, scores, [0.5])
    by = {g["group"]: g for g in t["groups"]}
    assert by["a"]["approval_rate"]["0.5"] == pytest.approx(0.75)
    assert by["b"]["approval_rate"]["0.5"] == pytest.approx(0.5)
    assert by["a"]["air"]["0.5"] == pytest.approx(1.0)
    assert by["b"]["air"]["0.5"] == pytest.approx(0.5 / 0.75)
    assert t["flagged"] == [{"group": "b", "cutoff": 0.5, "air": pytest.approx(0.5 / 0.75), "reference": "a"}]


def test_air_at_the_threshold_is_not_flagged() -> None:
    """An AIR of exactly 0.8 passes the four-fifths rule; only a ratio below it is flagged."""
    groups = ["a"] * 50 + ["b"] * 50
    scores = np.r_[np.full(50, 0.1), np.full(40, 0.1), np.full(10, 0.9)]
    t = group_table(groups, np.zeros(100), scores, [0.5])
    assert {g["group"]: g["air"]["0.5"] for g in t["groups"]}["b"] == pytest.approx(AIR_THRESHOLD)
    assert t["flagged"] == []


def test_small_groups_are_shown_but_not_flagged() -> None:
    """A group under 30 rows gets its AIR reported but is never flagged (its rate is noise)."""
    groups = ["big"] * 100 + ["tiny"] * 5
    scores = np.r_[np.full(100, 0.1), np.full(5, 0.9)]
    t = group_table(groups, np.zeros(105), scores, [0.5])
    assert {g["group"]: g["air"]["0.5"] for g in t["groups"]}["tiny"] == 0.0
    assert t["flagged"] == []


def test_group_auc_and_missing_group() -> None:
    """AUC is computed inside each group (None with one class), and unknown values form a '(missing)' group."""
    groups = ["a", "a", "a", "a", None, None]
    y = np.array([0, 0, 1, 1, 0, 0])
    scores = np.array([0.1, 0.2, 0.8, 0.9, 0.3, 0.4])
    by = {g["group"]: g for g in group_table(groups, y, scores, [0.5])["groups"]}
    assert by["a"]["auc"] == 1.0
    assert by["(missing)"]["auc"] is None and by["(missing)"]["rows"] == 2


def test_bad_inputs_are_refused() -> None:
    """Arrays of different lengths and a cut-off outside (0, 1] raise ValueError naming the problem."""
    with pytest.raises(ValueError, match="differ in length"):
        group_table(["a"], np.zeros(2), np.zeros(2), [0.5])
    with pytest.raises(ValueError, match="cut-offs"):
        group_table(["a"], np.zeros(1), np.zeros(1), [1.5])


def test_age_bands_split_at_regulation_b_age() -> None:
    """61 is in the 40-61 band and 62 starts Reg B's elderly band; a missing age has no band."""
    assert age_band(61) == "40-61"
    assert age_band(62.0) == "62 and over"
    assert age_band(24) == "under 25"
    assert age_band(None) is None and age_band(float("nan")) is None


def test_fairness_report_bands_ages_in_order() -> None:
    """The age attribute is reported per band, youngest band first."""
    ages = [20, 30, 45, 70] * 10
    rep = fairness_report({"age": ages}, np.zeros(40), np.full(40, 0.1), [0.5], age_column="age")
    assert [g["group"] for g in rep["attributes"]["age"]["groups"]] == ["under 25", "25-39", "40-61", "62 and over"]


def test_age_check_passes_a_model_kinder_to_older_applicants() -> None:
    """A score falling with age passes; one rising after 62 fails with the count of rows it harms."""
    x = np.array([[30.0, 1.0], [50.0, 2.0]], dtype=np.float32)
    falling = age_check(lambda z: 1 / (1 + np.exp(z[:, 0] / 10)), x, 0, [20, 40, 61, 62, 80])
    assert falling["passed"] and falling["violations"] == 0
    rising = age_check(lambda z: np.where(z[:, 0] >= 62, 0.9, 0.2), x, 0, [20, 61, 62, 80])
    assert not rising["passed"] and rising["violations"] == 2
    assert rising["max_excess"] == pytest.approx(0.7)
    with pytest.raises(ValueError, match="both sides"):
        age_check(lambda z: z[:, 0], x, 0, [20, 30])


def test_train_protected_keeps_the_column_out_and_reports_groups(tmp_path: Path, capsys) -> None:
    """`train --protected Marital --age Age` trains without marital, constrains age, and writes the fairness report."""
    out = tmp_path / "m"
    code = main(["train", "--data", str(CREDIT), "--target", "Status", "--positive", "bad", "--name", "fair",
                 "--out", str(out), "--protected", "Marital", "--age", "Age", "--cutoff", "0.3", "--cutoff", "0.5",
                 "--quiet", *FAST])
    assert code == 0, capsys.readouterr().err
    card = load_model(out).card
    assert "marital" not in [f.name for f in card.features]
    assert card.training.params["monotone_constraints"][[f.name for f in card.features].index("age")] == -1
    fair = card.fairness
    assert fair is not None and fair["protected"] == ["Marital"] and fair["cutoffs"] == [0.3, 0.5]
    marital = {g["group"] for g in fair["attributes"]["Marital"]["groups"]}
    assert {"married", "single", "widow", "separated", "divorced"} <= marital
    assert fair["age"]["passed"] and fair["age"]["rows"] > 0
    report = (out / "report.md").read_text()
    assert "## Fair lending" in report and "### By `Marital`" in report and "62 and over" in report
    assert json.loads((out / "card.json").read_text())["fairness"]["attributes"]["Age"]["cutoffs"] == [0.3, 0.5]


def test_train_refuses_a_protected_column_inside_a_feature(tmp_path: Path, capsys) -> None:
    """A column both --age and --protected is refused (a protected column is never a feature), exit 2."""
    code = main(["train", "--data", str(CREDIT), "--target", "Status", "--positive", "bad", "--name", "fair",
                 "--out", str(tmp_path / "m"), "--protected", "Age", "--age", "Age", "--quiet", *FAST])
    assert code == 2
    assert "also --protected" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_train_refuses_bad_cutoff_and_unknown_protected_column(tmp_path: Path, capsys) -> None:
    """--cutoff outside (0, 1] and an unknown --protected column both exit 2 with the flag named."""
    base = ["train", "--data", str(CREDIT), "--target", "Status", "--positive", "bad", "--name", "fair",
            "--out", str(tmp_path / "m"), "--quiet", *FAST]
    assert main([*base, "--protected", "Marital", "--cutoff", "0"]) == 2
    assert "--cutoff" in capsys.readouterr().err
    assert main([*base, "--protected", "Religion"]) == 2
    assert "--protected names unknown columns: Religion" in capsys.readouterr().err


def test_train_refuses_increasing_risk_with_age(tmp_path: Path, capsys) -> None:
    """--monotone Age:+1 with --age Age is refused: Reg B forbids scoring older applicants worse."""
    code = main(["train", "--data", str(CREDIT), "--target", "Status", "--positive", "bad", "--name", "fair",
                 "--out", str(tmp_path / "m"), "--age", "Age", "--monotone", "Age:+1", "--quiet", *FAST])
    assert code == 2
    assert "non-increasing in age" in capsys.readouterr().err
