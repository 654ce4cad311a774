"""Served scores equal the trained models' on each side of every split threshold (issue 10, item 3).

The ONNX graphs used to store LightGBM's float64 thresholds as float32, so an input between ``t``
and ``float32(t)`` went down the other branch (case onnx-float32-threshold, copied into
tests/data/onnx_float32_threshold/). Random rows never find it; these tests probe every threshold.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import lightgbm as lgb
import numpy as np
import onnx
import pytest

from engine.models.runtime import load_model
from engine.runtime.service import load_decider
from engine.training.binary import flush_zero
from engine.training.errors import ParityError
from engine.training.onnx_export import INPUT_NAME, canonical_bytes, max_abs_diff
from engine.training.probes import lightgbm_splits, probe_base, probe_rows, probe_values
from engine.training.rebuild import LIGHTGBM_MODELS, account_anomaly_spec

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "model_artifacts"
DATA = ROOT / "tests" / "data" / "onnx_float32_threshold"


def _base(model) -> np.ndarray:
    """A plain row of the model's width: 1 for numbers, the first category, false."""
    return np.array([0.0 if f.type != "numeric" else 1.0 for f in model.features])


@pytest.mark.parametrize("name", list(LIGHTGBM_MODELS))
def test_served_score_equals_the_booster_at_every_threshold(name: str) -> None:
    """For every split of every tree, rows reaching it at t, nextafter(t, ±inf), float32(t) score as model.txt does."""
    model = load_model(ARTIFACTS / name / "1")
    booster = lgb.Booster(model_file=str(model.directory / "model.txt"))
    rows = flush_zero(probe_rows(lightgbm_splits(booster), _base(model)))
    assert len(rows) >= 6 * 500  # every numeric split, six probes each
    served = model.score_batch(rows)
    native = booster.predict(rows)
    assert np.max(np.abs(served - native)) <= 1e-5
    one_by_one = np.array([model.score(rows[i : i + 1]) for i in range(0, len(rows), 97)])
    assert np.max(np.abs(one_by_one - native[::97])) <= 1e-5


@pytest.mark.parametrize("name", list(LIGHTGBM_MODELS))
def test_reasons_explain_the_served_score_at_every_threshold(name: str) -> None:
    """TreeSHAP contributions plus bias give the served log-odds on the threshold probes (reasons explain what was served)."""
    model = load_model(ARTIFACTS / name / "1")
    booster = lgb.Booster(model_file=str(model.directory / "model.txt"))
    rows = flush_zero(probe_rows(lightgbm_splits(booster), _base(model)))[::7]
    served = model.score_batch(rows)
    explained = np.array([1 / (1 + math.exp(-model.raw_score(r))) for r in rows])
    assert np.max(np.abs(served - explained)) <= 1e-5


def test_the_anomaly_model_is_exact_at_every_threshold() -> None:
    """account_anomaly rebuilt by the project's code equals the committed graph and passed its threshold probes."""
    from engine.training.anomaly import train_anomaly

    trained = train_anomaly(account_anomaly_spec(ROOT))  # raises ParityError if any probe differs
    assert trained.files["model.onnx"] == (ARTIFACTS / "account_anomaly" / "1" / "model.onnx").read_bytes()
    parity = trained.card["parity"]
    assert parity["threshold_probes"] > 6 * 1000 and parity["max_abs_diff_at_thresholds"] <= 1e-5
    committed = json.loads((ARTIFACTS / "account_anomaly" / "1" / "card.json").read_text())["parity"]
    assert committed["threshold_probes"] == parity["threshold_probes"]


def test_probe_values_straddle_the_float32_rounding() -> None:
    """The probes of a threshold include t, both float64 neighbours, float32(t) and its float32 neighbours."""
    t = 0.5988567173480989  # credit_default's threshold behind the case
    values = probe_values(t)
    assert t in values and np.nextafter(t, 1.0) in values and np.nextafter(t, 0.0) in values
    assert float(np.float32(t)) in values and float(np.float32(t)) > t
    assert any(v < t for v in values) and any(v > t for v in values)


def test_the_parity_check_refuses_a_float32_threshold_graph() -> None:
    """The training parity check over threshold probes fails for the old float32-threshold export."""
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    booster = lgb.Booster(model_file=str(ARTIFACTS / "credit_default" / "1" / "model.txt"))
    n = booster.num_feature()
    old = canonical_bytes(onnxmltools.convert_lightgbm(
        booster, initial_types=[(INPUT_NAME, FloatTensorType([None, n]))], zipmap=False, target_opset=15), "g")
    assert onnx.load_from_string(old).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    rows = flush_zero(probe_rows(lightgbm_splits(booster), probe_base(np.zeros((1, n)))))
    rows32 = rows.astype(np.float32).astype(np.float64)  # what the float graph is fed
    with pytest.raises(ParityError, match="threshold"):
        max_abs_diff(lambda z: booster.predict(np.asarray(z, dtype=np.float64)), old, rows32, "probabilities", 1,
                     "rows on each side of every split threshold")


def test_the_case_applications_get_the_trained_models_score() -> None:
    """amount 3562 / price 5948 scores 0.302237 and version 2 sends it to REVIEW; 2107 / 3562 scores 0.298910 (case values)."""
    decider = load_decider(ROOT)
    flip = json.loads((DATA / "app_v2_flip.json").read_text())
    d2 = decider.decide("credit_application", flip, version="2").outcome
    assert d2.scores["pd"] == pytest.approx(0.302237, abs=1e-6)
    assert d2.action.name == "REVIEW" and [f.id for f in d2.fired] == ["RISK2-002"]
    shap = json.loads((DATA / "app_v1_shap.json").read_text())
    d1 = decider.decide("credit_application", shap, version="1").outcome
    assert d1.scores["pd"] == pytest.approx(0.298910, abs=1e-6)
    model = decider.policies.flows["credit_application"].versions["1"].models[0].model
    x = model.encode(d1.features)
    assert 1 / (1 + math.exp(-model.raw_score(x))) == pytest.approx(d1.scores["pd"], abs=1e-6)
