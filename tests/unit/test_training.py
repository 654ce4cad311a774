"""Unit tests of engine.training: CSV typing, targets, metrics, derived features, reproducibility, parity refusal."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score

from engine.models.runtime import load_model
from engine.training import onnx_export
from engine.training.binary import ModelSpec, train_lightgbm
from engine.training.dataset import DataOptions, encode_matrix, prepare
from engine.training.derived import CARD_FRAUD_DERIVED, CREDIT_DEFAULT_DERIVED
from engine.training.errors import DataError, ParityError
from engine.training.fraud_data import generate, to_csv
from engine.training.lightgbm_trainer import LightGBMSettings
from engine.training.metrics import auc, binary_metrics, calibration_table, ks
from engine.training.table import infer_type, read_csv, snake_case

TINY = LightGBMSettings(
    max_rounds=8, early_stopping_rounds=3, folds=3, num_leaves=4, min_data_in_leaf=5, seed=11, num_threads=1,
)


@pytest.fixture(scope="module")
def tiny_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """400 generated card payments with a raised fraud rate, as a CSV."""
    path = tmp_path_factory.mktemp("data") / "tiny.csv"
    rows = generate(400, seed=3, fraud_rate=0.15)
    path.write_text(to_csv(rows))
    return path


def _tiny_spec(path: Path, **kw) -> ModelSpec:
    data = DataOptions(path, "is_fraud", "1", drop=("customer_id", "device_id"), derived=CARD_FRAUD_DERIVED)
    return ModelSpec(name="tiny", data=data, settings=kw.pop("settings", TINY), **kw)


# ---------------------------------------------------------------- CSV typing


def test_infer_type() -> None:
    """Numbers are numeric, yes/no and true/false boolean, anything else categorical; empties ignored."""
    assert infer_type(["1", "2.5", None, "-3e2"]) == "numeric"
    assert infer_type(["yes", "No", None]) == "boolean"
    assert infer_type(["true", "FALSE"]) == "boolean"
    assert infer_type(["yes", "true"]) == "categorical"
    assert infer_type(["rent", "1", None]) == "categorical"
    assert infer_type(["0", "1"]) == "numeric"


def test_read_csv_types_and_missing(tmp_path: Path) -> None:
    """read_csv gives typed columns with None for empty cells."""
    path = tmp_path / "d.csv"
    path.write_text("Loan Amount,home,ok\n100,rent,yes\n,owner,no\n2.5,,\n")
    t = read_csv(path)
    assert t.types == {"Loan Amount": "numeric", "home": "categorical", "ok": "boolean"}
    assert t.columns["Loan Amount"] == [100.0, None, 2.5]
    assert t.columns["home"] == ["rent", "owner", None]
    assert t.columns["ok"] == [True, False, None]
    assert read_csv(path, force_categorical=["Loan Amount"]).types["Loan Amount"] == "categorical"


def test_snake_case() -> None:
    """Column names become valid snake_case feature names."""
    assert snake_case("Seniority") == "seniority"
    assert snake_case("Loan Amount") == "loan_amount"
    assert snake_case("DebtRatio") == "debt_ratio"
    assert snake_case("30d avg") == "f_30d_avg"


@pytest.mark.parametrize(
    ("text", "options", "code"),
    [
        ("", {}, "data_empty"),
        ("a,y\n", {}, "data_empty"),
        ("a,b\n1,2\n", {}, "target_missing"),
        ("a,y\n1,x\n2,x\n", {}, "target_single_class"),
        ("a,y\n1,good\n2,bad\n", {"positive": "ugly"}, "target_unknown_label"),
        ("a,y\n1,good\n2,bad\n", {"features": ("zzz",)}, "data_unknown_column"),
        ("a,y\n1,good,3\n", {}, "data_ragged"),
    ],
)
def test_data_errors(tmp_path: Path, text: str, options: dict, code: str) -> None:
    """Empty files, a missing target, one class, an unknown label or column each give a clear DataError."""
    path = tmp_path / "d.csv"
    path.write_text(text)
    opts = {"target": "y", "positive": "bad"} | options
    with pytest.raises(DataError) as err:
        prepare(DataOptions(path, **opts))
    assert err.value.code == code


def test_unknown_label_lists_the_labels(tmp_path: Path) -> None:
    """The unknown-label error names the labels that do occur."""
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,good\n2,bad\n")
    with pytest.raises(DataError, match="bad, good"):
        prepare(DataOptions(path, "y", "ugly"))


def test_numeric_positive_label_and_missing_target(tmp_path: Path) -> None:
    """A numeric target matches "1" and "1.0"; rows with no target are dropped and counted."""
    path = tmp_path / "d.csv"
    path.write_text("a,y\n1,1.0\n2,0\n3,\n4,1\n")
    p = prepare(DataOptions(path, "y", "1"))
    assert p.y.tolist() == [1, 0, 1]
    assert p.dropped_missing_target == 1


# ---------------------------------------------------------------- metrics


def test_metrics_agree_with_scikit_learn() -> None:
    """AUC (with ties), Brier and log-loss agree with scikit-learn; Gini = 2 AUC - 1."""
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 3000)
    p = np.clip(np.round(rng.random(3000) * 0.6 + y * 0.3, 2), 0.01, 0.99)
    m = binary_metrics(y, p)
    assert math.isclose(m["auc"], roc_auc_score(y, p), rel_tol=1e-12)
    assert math.isclose(m["brier"], brier_score_loss(y, p), rel_tol=1e-12)
    assert math.isclose(m["logloss"], log_loss(y, p), rel_tol=1e-9)
    assert math.isclose(m["gini"], 2 * m["auc"] - 1)


def test_ks_and_calibration() -> None:
    """KS is 1 for separated classes and 0 for identical scores; calibration bands cover every row."""
    y = np.array([0, 0, 0, 1, 1, 1])
    assert ks(y, np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])) == 1.0
    assert ks(y, np.full(6, 0.5)) == 0.0
    assert auc(y, np.full(6, 0.5)) == 0.5
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    yy = (rng.random(1000) < p).astype(int)
    table = calibration_table(yy, p, bins=10)
    assert sum(r["rows"] for r in table) == 1000
    assert table[0]["observed_rate"] < table[-1]["observed_rate"]
    assert all(abs(r["mean_predicted"] - r["observed_rate"]) < 0.15 for r in table)


# ---------------------------------------------------------------- derived features


def test_derived_features_follow_their_definitions() -> None:
    """Ratios are missing on a missing or zero denominator, differences on a missing operand."""
    credit = {d.name: d for d in CREDIT_DEFAULT_DERIVED}
    fraud = {d.name: d for d in CARD_FRAUD_DERIVED}
    row = {"amount": 800.0, "price": 1000.0, "income": 0.0, "expenses": 50.0, "debt": 10.0}
    assert credit["loan_to_price"].compute(row) == 0.8
    assert credit["income_minus_expenses"].compute(row) == -50.0
    assert credit["debt_to_income"].compute(row) is None
    assert credit["income_minus_expenses"].compute(row | {"income": None}) is None
    assert fraud["amount_to_avg"].compute({"amount": 50.0, "amount_avg_30d": 25.0}) == 2.0
    assert fraud["amount_to_avg"].compute({"amount": 50.0, "amount_avg_30d": None}) is None
    assert fraud["cross_border"].compute({"merchant_country": "FR", "card_country": "DE"}) is True
    assert fraud["ip_mismatch"].compute({"ip_country": "DE", "card_country": "DE"}) is False
    assert fraud["ip_mismatch"].compute({"ip_country": None, "card_country": "DE"}) is None


def test_training_matrix_is_what_the_runtime_encodes(tiny_csv: Path, tmp_path: Path) -> None:
    """Each training row equals Model.encode of the same record (served in float64; training keeps float32): they agree."""
    trained = train_lightgbm(_tiny_spec(tiny_csv))
    trained.write(tmp_path / "m")
    m = load_model(tmp_path / "m")
    records = read_csv(tiny_csv).records()
    for rec in records:
        for d in CARD_FRAUD_DERIVED:
            rec[d.name] = d.compute(rec)
    x = encode_matrix(m.features, records)
    assert np.array_equal(x, trained.prepared.x, equal_nan=True)
    for i in (0, 7, 99):
        served = m.encode(records[i])
        assert served.dtype == np.float64 and np.array_equal(served.astype(np.float32), x[i : i + 1], equal_nan=True)


# ---------------------------------------------------------------- reproducibility and refusal


def test_tiny_training_is_byte_for_byte_reproducible(tiny_csv: Path, tmp_path: Path) -> None:
    """Two runs with the same seed write identical model.onnx, model.txt and card (bar created_at)."""
    a = train_lightgbm(_tiny_spec(tiny_csv))
    b = train_lightgbm(_tiny_spec(tiny_csv))
    a.write(tmp_path / "a")
    b.write(tmp_path / "b")
    for name in ("model.onnx", "model.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    ca, cb = (json.loads((tmp_path / d / "card.json").read_text()) for d in ("a", "b"))
    ca.pop("created_at"), cb.pop("created_at")
    assert ca == cb
    other = train_lightgbm(_tiny_spec(tiny_csv, settings=LightGBMSettings(**{**TINY.__dict__, "seed": 12})))
    assert other.files["model.txt"] != a.files["model.txt"]


def test_rewrite_keeps_created_at_when_nothing_changed(tiny_csv: Path, tmp_path: Path) -> None:
    """Writing identical artifacts again keeps the card byte-identical (a no-op rebuild)."""
    trained = train_lightgbm(_tiny_spec(tiny_csv))
    trained.write(tmp_path / "m")
    before = (tmp_path / "m" / "card.json").read_bytes()
    card = dict(trained.card, created_at="2000-01-01T00:00:00+00:00")
    type(trained)(card, trained.files, trained.prepared, trained.cv, trained.oof_metrics).write(tmp_path / "m")
    assert (tmp_path / "m" / "card.json").read_bytes() == before


def test_parity_failure_refuses_to_write(tiny_csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An ONNX graph that disagrees with LightGBM by more than 1e-5 raises ParityError and nothing is written."""
    real = onnx_export.onnx_scores
    monkeypatch.setattr(onnx_export, "onnx_scores", lambda *a, **k: real(*a, **k) + 2e-5)
    out = tmp_path / "m"
    with pytest.raises(ParityError, match="not written"):
        train_lightgbm(_tiny_spec(tiny_csv)).write(out)
    assert not out.exists()


def test_card_records_training_evidence(tiny_csv: Path, tmp_path: Path) -> None:
    """The card carries folds, per-fold metrics, calibration, parity, data hash and library versions."""
    card = train_lightgbm(_tiny_spec(tiny_csv)).write(tmp_path / "m")
    assert card.training.cv_folds == 3 and len(card.metrics["folds"]) == 3
    assert {"cv_auc", "cv_ks", "cv_gini", "cv_brier", "cv_logloss"} <= set(card.metrics)
    assert sum(r["rows"] for r in card.metrics["calibration_oof"]) == card.data.rows
    assert card.parity.max_abs_diff <= 1e-5 and card.parity.rows == card.data.rows
    assert {"lightgbm", "onnxruntime", "onnxmltools"} <= set(card.libraries)
    assert card.target is not None and card.target.positive == "1"
    assert card.training.params["deterministic"] is True
