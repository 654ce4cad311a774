"""The logistic scorecard, the isolation-forest anomaly model and the reason-code faithfulness measure."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.models.runtime import load_model
from engine.training.anomaly import AnomalySpec, train_anomaly
from engine.training.dataset import DataOptions
from engine.training.derived import CARD_FRAUD_DERIVED
from engine.training.faithfulness import faithfulness
from engine.training.fraud_data import generate, to_csv
from engine.training.logistic import LogisticSpec, train_logistic
from engine.training.onnx_export import with_missing
from engine.training.rebuild import ANOMALY_FEATURES, LIGHTGBM_MODELS

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "model_artifacts"


@pytest.fixture(scope="module")
def payments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1,500 generated card payments with a raised fraud rate."""
    path = tmp_path_factory.mktemp("alt") / "payments.csv"
    path.write_text(to_csv(generate(1500, seed=8, fraud_rate=0.1)))
    return path


@pytest.fixture(scope="module")
def logistic_model(payments: Path, tmp_path_factory: pytest.TempPathFactory):
    """A logistic scorecard trained on the generated payments and written to disk."""
    spec = LogisticSpec(name="fraud_scorecard", data=DataOptions(
        payments, "is_fraud", "1", drop=("customer_id", "device_id"), derived=CARD_FRAUD_DERIVED), folds=3)
    trained = train_logistic(spec)
    out = tmp_path_factory.mktemp("logit") / "m"
    trained.write(out, report=True)
    return trained, load_model(out)


def test_logistic_card_and_parity(logistic_model) -> None:
    """The scorecard's card validates, records coefficients, CV metrics and ONNX parity within 1e-5."""
    _trained, model = logistic_model
    card = model.card
    assert card.algorithm == "logistic" and card.artifacts.explainer.kind == "linear_contributions"
    assert card.parity.max_abs_diff <= 1e-5 and card.parity.model_extra["max_abs_diff_with_missing"] <= 1e-5
    assert card.metrics["cv_auc"] > 0.7
    assert set(card.training.model_extra["coefficients"]) == {f.name for f in model.features}
    assert (model.directory / "report.md").exists()


def test_logistic_contributions_sum_to_served_log_odds(logistic_model) -> None:
    """coef * (z - mean_z) contributions plus the bias equal the log-odds of the ONNX score, with missing cells too."""
    trained, model = logistic_model
    x = with_missing(trained.prepared.x[:30], seed=1, rate=0.2)
    for row in x:
        r = row.reshape(1, -1)
        p = model.score(r)
        assert abs(1 / (1 + math.exp(-model.raw_score(r))) - p) <= 1e-5  # float32 output: compare probabilities
        values = [v for _, v in model.explain(r)]
        assert values == sorted(values, reverse=True)


def test_logistic_orders_categories_by_risk(logistic_model) -> None:
    """Each categorical's categories are listed in ascending training positive rate."""
    trained, model = logistic_model
    p = trained.prepared
    for j, f in enumerate(model.features):
        if f.type != "categorical":
            continue
        rates = [p.y[p.x[:, j] == i].mean() for i in range(len(f.categories)) if (p.x[:, j] == i).any()]
        assert rates == sorted(rates)


@pytest.fixture(scope="module")
def anomaly(payments: Path):
    """An isolation forest trained on the generated payments."""
    spec = AnomalySpec(name="anomaly_test", data=payments, features=ANOMALY_FEATURES, derived=CARD_FRAUD_DERIVED,
                       label="is_fraud", n_estimators=30, seed=3)
    return train_anomaly(spec)


def test_anomaly_onnx_matches_scikit_learn(anomaly, tmp_path: Path) -> None:
    """The hand-built ONNX forest equals -score_samples of the scikit-learn pipeline, also with missing cells."""
    anomaly.write(tmp_path / "a")
    model = load_model(tmp_path / "a")
    assert model.card.task == "anomaly_detection" and model.card.target is None
    x = with_missing(anomaly.prepared.x[:500], seed=2, rate=0.2)
    got = model.score_batch(x)
    assert np.all((got > 0) & (got <= 1))
    assert model.card.parity.max_abs_diff <= 1e-5
    # The training scores the card was built from agree with the served graph.
    assert np.abs(model.score_batch(anomaly.prepared.x) - anomaly.scores).max() <= 1e-5


def test_bundled_anomaly_model_flags_unusual_behaviour() -> None:
    """account_anomaly loads, scores a velocity burst on a new account above an ordinary payment, and ranks fraud."""
    model = load_model(ARTIFACTS / "account_anomaly" / "1")
    ordinary = model.encode({"amount": 35.0, "hour": 14, "account_age_days": 900, "txn_count_1h": 0,
                             "txn_count_24h": 2, "new_device": False, "amount_to_avg": 1.0,
                             "cross_border": False, "ip_mismatch": False})
    unusual = model.encode({"amount": 900.0, "hour": 3, "account_age_days": 5, "txn_count_1h": 9,
                            "txn_count_24h": 15, "new_device": True, "amount_to_avg": 20.0,
                            "cross_border": True, "ip_mismatch": True})
    assert model.score(unusual) > model.score(ordinary) + 0.2
    assert model.card.metrics["label_auc"] > 0.8
    assert not model.has_explainer
    with pytest.raises(NotImplementedError):
        model.explain(ordinary)


@pytest.mark.parametrize("name", list(LIGHTGBM_MODELS))
def test_reason_codes_are_faithful(name: str) -> None:
    """Fixing the top reason lowers the served score in at least 90% of declines (rate recorded in the card)."""
    from engine.training.dataset import prepare

    model = load_model(ARTIFACTS / name / "1")
    recorded = model.card.metrics["faithfulness"]
    assert recorded["rate"] >= 0.9 and recorded["tested"] >= 100
    data = LIGHTGBM_MODELS[name](ROOT).data
    x = prepare(data).x if name == "credit_default" else prepare(data).x[:8000]
    result = faithfulness(model, x, quantile=0.9, max_rows=60, seed=1)
    assert result["tested"] >= 30
    assert result["rate"] >= 0.9
