"""`verdict train` on the CSVs people really have: numbers written for people, label variants, tiny data, identifiers.

The case files (tests/data/training_cases, origin in its README.md) each made the command give a
wrong answer; every test here asserts the right one.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.models.runtime import load_model
from engine.training import binary
from engine.training.dataset import DataOptions, prepare
from engine.training.errors import DataError
from engine.training.identifiers import identifier_reason
from engine.training.learned import auc_standard_error, chance_warning
from engine.training.logistic import fit_category_order
from engine.training.metrics import binary_metrics
from engine.training.report import faithfulness_section

CASES = Path(__file__).resolve().parents[1] / "data" / "training_cases"
FAST = ["--no-tune", "--max-rounds", "30", "--folds", "3", "--quiet"]


def _train(data: Path, out: Path, *extra: str, target: str = "bad", positive: str = "1") -> int:
    return main(["train", "--data", str(data), "--target", target, "--positive", positive, "--name", "t",
                 "--out", str(out), *extra])


def _card(out: Path) -> dict:
    return json.loads((out / "card.json").read_text())


def _plain(text: str) -> str:
    """The same CSV with "1,234.56" / "1234,56" cells rewritten as plain 1234.56 (by text substitution)."""
    text = re.sub(r'"(\d{1,3}(?:,\d{3})+\.\d+)"', lambda m: m.group(1).replace(",", ""), text)
    return re.sub(r'"(\d+),(\d+)"', r"\1.\2", text)


# ---------------------------------------------------------------- 1. numbers written for people


@pytest.mark.parametrize(
    ("case", "formats"),
    [
        ("a3b_thousands_few.csv", {"amount": "thousands_comma"}),
        ("a3_thousands.csv", {"income": "thousands_comma", "amount": "thousands_comma"}),
        ("a2b_euro_quoted.csv", {"income": "decimal_comma", "amount": "decimal_comma"}),
    ],
)
def test_separated_numbers_train_as_the_clean_numbers(case: str, formats: dict, tmp_path: Path) -> None:
    """Thousands separators and decimal commas give the same matrix as the plain numbers, numeric features."""
    clean = tmp_path / "clean.csv"
    clean.write_text(_plain((CASES / case).read_text()))
    messy, plain = prepare(DataOptions(CASES / case, "bad", "1")), prepare(DataOptions(clean, "bad", "1"))
    assert [s.type for s in messy.specs] == ["numeric", "numeric", "categorical", "numeric"]
    assert np.array_equal(messy.x, plain.x, equal_nan=True)
    assert {c: t.number_format for c, t in messy.table.typing.items() if t.number_format not in (None, "plain")} == formats


def test_a3b_card_has_numeric_amount_and_the_clean_auc(tmp_path: Path) -> None:
    """The a3b command run: exit 0, amount numeric (no 400 categories), format in the card, CV AUC as on clean data."""
    assert _train(CASES / "a3b_thousands_few.csv", tmp_path / "m", *FAST) == 0
    clean = tmp_path / "clean.csv"
    clean.write_text(_plain((CASES / "a3b_thousands_few.csv").read_text()))
    assert _train(clean, tmp_path / "c", *FAST) == 0
    card = _card(tmp_path / "m")
    amount = next(f for f in card["features"] if f["name"] == "amount")
    assert amount["type"] == "numeric" and "categories" not in amount
    assert card["data"]["number_formats"] == {"amount": "thousands_comma"}
    assert card["metrics"]["cv_auc"] == pytest.approx(_card(tmp_path / "c")["metrics"]["cv_auc"], abs=1e-12)


def test_a_mostly_numeric_column_is_refused_not_flipped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Amount with 3 words among 400 numbers: exit 2 naming the column and first bad cells; --categorical accepts it."""
    lines = (CASES / "base.csv").read_text().splitlines()
    for i in (5, 9, 200):
        cells = lines[i].split(",")
        cells[1] = "unknown"
        lines[i] = ",".join(cells)
    data = tmp_path / "mixed.csv"
    data.write_text("\n".join(lines) + "\n")
    assert _train(data, tmp_path / "m", *FAST) == 2
    err = capsys.readouterr().err
    assert "[column_mixed]" in err and "column 'amount': 397 of 400 cells are numbers" in err
    assert "line 6 'unknown'" in err and not (tmp_path / "m").exists()
    assert _train(data, tmp_path / "k", *FAST, "--categorical", "amount", "--keep-column", "amount") == 0


# ---------------------------------------------------------------- 2. labels that differ in case


def test_target_with_case_variants_is_refused_listing_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """a6: status bad/Bad/good exits 2 listing the three labels and the case twins; nothing written."""
    out = tmp_path / "m"
    assert _train(CASES / "a6_target_case.csv", out, "--no-tune", target="status", positive="bad") == 2
    err = capsys.readouterr().err
    assert "[target_not_binary]" in err and "3 labels" in err
    assert "'Bad' (53 rows), 'bad' (73 rows), 'good' (274 rows)" in err
    assert "'Bad' and 'bad' differ only in case or spaces" in err
    assert not out.exists() and "Traceback" not in err


def test_boolean_and_numeric_targets_read_like_features(tmp_path: Path) -> None:
    """Yes/yes/no is two labels (booleans read in any case); 1 and 1.0 are one label; 'Bad' suggests 'bad'."""
    data = tmp_path / "d.csv"
    data.write_text("a,y\n1,Yes\n2,yes\n3,no\n4,NO\n")
    assert prepare(DataOptions(data, "y", "YES")).y.tolist() == [1, 1, 0, 0]
    data.write_text("a,y\n1,1\n2,1.0\n3,0\n")
    assert prepare(DataOptions(data, "y", "1")).y.tolist() == [1, 1, 0]
    data.write_text("a,y\n1,bad\n2,good\n")
    with pytest.raises(DataError, match="did you mean 'bad'") as err:
        prepare(DataOptions(data, "y", "Bad"))
    assert err.value.code == "target_unknown_label"


# ---------------------------------------------------------------- 3. too little data


@pytest.mark.parametrize("extra", [[], ["--no-tune"]])
def test_tiny_data_exits_2_in_one_line_with_no_model(extra: list[str], tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """a8 (50 rows): exit 2 data_too_small, one line naming the numbers, no traceback, no model directory."""
    out = tmp_path / "deep" / "m"
    assert _train(CASES / "a8_tiny.csv", out, *extra) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[data_too_small] 50 rows are too few" in err
    assert "min_data_in_leaf = 40" in err and "Traceback" not in err
    assert not out.exists() and not out.parent.exists()


def test_a_model_that_learns_nothing_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A feature unrelated to the target (constant): the constant model is refused (exit 2), nothing written."""
    data = tmp_path / "d.csv"
    data.write_text("x,y\n" + "".join(f"1,{i % 2}\n" for i in range(200)))
    for algorithm in ("lightgbm", "logistic"):
        out = tmp_path / algorithm
        assert _train(data, out, *FAST, "--algorithm", algorithm, target="y") == 2
        assert "[model_learned_nothing]" in capsys.readouterr().err and not out.exists()


def test_chance_level_model_is_written_with_a_loud_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """a8 with leaves small enough to split: the model is written, flagged in the output, card and report."""
    out = tmp_path / "m"
    assert _train(CASES / "a8_tiny.csv", out, "--no-tune", "--min-data-in-leaf", "13", "--quiet") == 0
    assert "WARNING: out-of-fold AUC" in capsys.readouterr().out
    card = _card(out)
    assert "not distinguishable from chance" in card["metrics"]["warnings"][0]
    assert "**Warning: out-of-fold AUC" in (out / "report.md").read_text()


def test_hanley_mcneil_standard_error_matches_the_paper() -> None:
    """The worked example of Hanley & McNeil (1982): AUC 0.893, 51 abnormal and 58 normal -> SE 0.032."""
    assert auc_standard_error(0.893, 51, 58) == pytest.approx(0.032, abs=0.0006)
    y = np.array([1] * 51 + [0] * 58)
    assert chance_warning(0.893, y) is None and "not distinguishable" in str(chance_warning(0.55, y))


def test_faithfulness_section_renders_absent_figures() -> None:
    """No decline with a positive top reason (rate None) renders n/a instead of crashing."""
    faith = {"definition": "d", "threshold": 0.38, "declines": 5, "tested": 0, "lowered": 0, "rate": None,
             "median_score_drop": None, "by_top_feature": {}}
    text = faithfulness_section(faith)
    assert "(n/a)" in text and "median drop n/a" in text


def test_a_failure_while_writing_leaves_no_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """An unexpected error in the report step: exit 1 in one line, and neither the model nor a temporary is left."""
    def broken(*args, **kwargs):
        raise TypeError("unsupported format string passed to NoneType.__format__")

    monkeypatch.setattr(binary, "write_report", broken)
    out = tmp_path / "m"
    assert _train(CASES / "base.csv", out, *FAST) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "[internal_error] TypeError" in err
    assert list(tmp_path.iterdir()) == []


def test_rewriting_an_existing_model_directory_replaces_its_files(tmp_path: Path) -> None:
    """Training into an existing directory moves the new files in and leaves other files alone."""
    out = tmp_path / "m"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "model.onnx").write_bytes(b"old")
    assert _train(CASES / "base.csv", out, *FAST) == 0
    assert (out / "notes.txt").read_text() == "mine" and load_model(out).card.name == "t"
    assert [p.name for p in tmp_path.iterdir()] == ["m"]


# ---------------------------------------------------------------- 4. leakage through identifiers


def _fresh_auc(out: Path) -> float:
    spec = importlib.util.spec_from_file_location("credit_like_gen", CASES / "credit_like_gen.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    model = load_model(out)
    fresh = gen.rows(2000, seed=77)
    for i, r in enumerate(fresh):
        r["application_id"], r["applied_on"] = f"APP-{900000 + i:06d}", f"2025-{1 + i % 12:02d}-{1 + i % 28:02d}"
    scores = np.array([model.score(model.encode(r)) for r in fresh])
    return binary_metrics(np.array([r["bad"] for r in fresh]), scores)["auc"]


@pytest.mark.parametrize(("case", "column"), [("a11_ids.csv", "application_id"), ("a12_dates.csv", "applied_on")])
def test_identifier_columns_are_left_out_and_cv_is_honest(case: str, column: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """a11/a12 logistic: the id/date is left out (said in output and card), CV AUC ~0.74 and close to fresh rows'."""
    out = tmp_path / "m"
    assert _train(CASES / case, out, "--algorithm", "logistic", "--quiet") == 0
    assert f"left out column '{column}'" in capsys.readouterr().out
    card = _card(out)
    assert column in card["data"]["left_out"] and column not in [f["name"] for f in card["features"]]
    assert card["metrics"]["cv_auc"] == pytest.approx(0.74, abs=0.03)
    assert abs(card["metrics"]["cv_auc"] - _fresh_auc(out)) < 0.05
    assert f"column `{column}` left out" in (out / "report.md").read_text()


def test_a_kept_identifier_no_longer_leaks_into_cv(tmp_path: Path) -> None:
    """--keep-column application_id: the category order is fitted per fold, so CV AUC stays ~0.74 (was 0.997)."""
    out = tmp_path / "m"
    assert _train(CASES / "a11_ids.csv", out, "--algorithm", "logistic", "--quiet", "--keep-column", "application_id") == 0
    card = _card(out)
    assert "application_id" in [f["name"] for f in card["features"]]
    assert card["metrics"]["cv_auc"] == pytest.approx(0.74, abs=0.03)
    assert abs(card["metrics"]["cv_auc"] - _fresh_auc(out)) < 0.05


def test_lightgbm_leaves_identifiers_out_too(tmp_path: Path) -> None:
    """With LightGBM the id column is left out as well: the card has no 400-category feature a flow must send."""
    p = prepare(DataOptions(CASES / "a11_ids.csv", "bad", "1"))
    assert "application_id" in p.left_out and "application_id" not in p.names
    kept = prepare(DataOptions(CASES / "a11_ids.csv", "bad", "1", keep=("application_id",)))
    assert kept.left_out == {} and "application_id" in kept.names


def test_category_order_uses_only_the_fitting_rows() -> None:
    """Order by positive rate over the given rows; a category absent from them maps to NaN (unseen)."""
    from engine.models.encoding import FeatureSpec

    specs = (FeatureSpec("c", "categorical", ("a", "b", "z")),)
    x = np.array([[0], [0], [1], [1]], dtype=np.float32)
    order, new_specs = fit_category_order(x, np.array([1, 1, 0, 1]), specs)
    assert new_specs[0].categories == ("b", "a", "z")
    assert order.apply(np.array([[0], [1], [2], [np.nan]], dtype=np.float32))[:, 0].tolist()[:2] == [1.0, 0.0]
    assert np.isnan(order.apply(np.array([[2]], dtype=np.float32))[0, 0])


@pytest.mark.parametrize(
    ("kind", "values", "flagged"),
    [
        ("categorical", [f"APP-{i:06d}" for i in range(40)], True),
        ("categorical", [f"2023-01-{1 + i % 3:02d}" for i in range(40)], True),
        ("categorical", [f"05/0{1 + i % 9}/2024 10:3{i % 10}" for i in range(40)], True),
        ("categorical", ["rent", "owner", "other"] * 20, False),
        ("numeric", [float(i) for i in range(100, 140)], True),
        ("numeric", [float(40 - i) for i in range(40)], True),
        ("numeric", [i + 0.5 for i in range(40)], False),
        ("numeric", [float((i * 7) % 40) for i in range(40)], False),
        ("categorical", [f"id{i}" for i in range(10)], False),
    ],
)
def test_identifier_rule(kind: str, values: list, flagged: bool) -> None:
    """Unique text, dates as text and row counters are identifiers; categories, decimals, shuffled or few rows are not."""
    assert (identifier_reason(kind, values) is not None) is flagged


def test_ambiguous_numbers_need_number_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Whole amounts written "1,234": exit 2 number_ambiguous; --number-format thousands_comma reads 1234."""
    lines = (CASES / "base.csv").read_text().splitlines()
    rows = [line.split(",") for line in lines[1:]]
    text = "income,amount,home,age,bad\n" + "".join(
        f'{r[0]},"{int(float(r[1])) // 1000},{int(float(r[1])) % 1000:03d}",{r[2]},{r[3]},{r[4]}\n'
        if float(r[1]) >= 1000 else f"{r[0]},{int(float(r[1]))},{r[2]},{r[3]},{r[4]}\n" for r in rows)
    data = tmp_path / "whole.csv"
    data.write_text(text)
    assert _train(data, tmp_path / "m", *FAST) == 2
    assert "[number_ambiguous] " in capsys.readouterr().err and not (tmp_path / "m").exists()
    p = prepare(DataOptions(data, "bad", "1", number_format="thousands_comma"))
    assert p.x[:, 1].tolist() == [float(int(float(r[1]))) for r in rows]
    assert _train(data, tmp_path / "m", *FAST, "--number-format", "thousands_comma") == 0


def test_keep_column_must_name_a_column(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--keep-column with an unknown name is a data error (exit 2) naming it."""
    assert _train(CASES / "base.csv", tmp_path / "m", *FAST, "--keep-column", "nosuch") == 2
    assert "[data_unknown_column] --keep-column names unknown columns: nosuch" in capsys.readouterr().err
