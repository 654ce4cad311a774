"""The committed model artifacts: hashes match their cards, ONNX agrees with LightGBM, cards tell the truth."""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from engine.models.runtime import load_model
from engine.training.dataset import prepare
from engine.training.derived import CARD_FRAUD_DERIVED, CARD_FRAUD_STREAM_DERIVED, CREDIT_DEFAULT_DERIVED
from engine.training.onnx_export import with_missing
from engine.training.rebuild import BUNDLED, LIGHTGBM_MODELS

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "model_artifacts"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@functools.cache
def _prepared(name: str):
    """The bundled model's training data, encoded (cached: the fraud CSV has 60,000 rows)."""
    return prepare(LIGHTGBM_MODELS[name](ROOT).data)


def _model_dirs() -> list[Path]:
    return sorted(p.parent for p in ARTIFACTS.glob("*/*/card.json"))


def test_every_bundled_model_is_committed() -> None:
    """Each model the rebuild command produces has a committed directory."""
    names = {d.parent.name for d in _model_dirs()} | {f"{d.parent.name}/{d.name}" for d in _model_dirs()}
    assert set(BUNDLED) <= names


@pytest.mark.parametrize("directory", _model_dirs(), ids=lambda d: f"{d.parent.name}/{d.name}")
def test_committed_artifacts_match_their_cards(directory: Path) -> None:
    """Every artifact's sha256 equals the card's, the directory loads, and nothing unlisted is shipped."""
    card = json.loads((directory / "card.json").read_text())
    listed = {"card.json", "baseline.json"}  # baseline.json: the drift monitor's training bins, never deciding (engine.monitor)
    for art in card["artifacts"].values():
        assert _sha(directory / art["file"]) == art["sha256"]
        listed.add(art["file"])
    assert listed >= {p.name for p in directory.iterdir() if p.is_file() and p.suffix not in (".md", ".png")}
    m = load_model(directory)
    assert (m.name, m.version) == (directory.parent.name, directory.name)


@pytest.mark.parametrize("name", list(LIGHTGBM_MODELS))
def test_card_data_provenance(name: str) -> None:
    """The card records the sha256 and row counts of the committed data file it was trained on."""
    card = load_model(ARTIFACTS / name / "1").card
    data = ROOT / card.data.file
    assert _sha(data) == card.data.sha256
    p = _prepared(name)
    assert (card.data.rows, card.data.positives) == (len(p.y), int(p.y.sum()))
    assert [f.name for f in card.features] == list(p.names)


@pytest.fixture(scope="module", params=list(LIGHTGBM_MODELS))
def bundled(request: pytest.FixtureRequest):
    """A bundled model with 1,000 seeded rows of its own training data, encoded."""
    name = request.param
    m = load_model(ARTIFACTS / name / "1")
    p = _prepared(name)
    idx = np.random.default_rng(0).choice(len(p.y), size=1000, replace=False)
    return m, p.x[idx]


def test_onnx_matches_lightgbm_native(bundled) -> None:
    """ONNX and the native booster agree to 1e-5 on 1,000 training rows, and with 10% cells missing."""
    m, x = bundled
    booster = lgb.Booster(model_file=str(m.directory / "model.txt"))
    for rows in (x, with_missing(x, seed=5, rate=0.1)):
        diff = np.abs(m.score_batch(rows) - booster.predict(rows))
        assert diff.max() <= 1e-5


def test_credit_model_meets_auc_target() -> None:
    """The credit model's cross-validated AUC is at least 0.84, as the card records."""
    card = load_model(ARTIFACTS / "credit_default" / "1").card
    assert card.metrics["cv_auc"] >= 0.84
    assert card.parity.max_abs_diff <= 1e-5


@pytest.mark.parametrize(
    ("name", "derived"), [("credit_default", CREDIT_DEFAULT_DERIVED), ("card_fraud", CARD_FRAUD_DERIVED)]
)
def test_derived_features_are_in_the_card(name: str, derived) -> None:
    """The card lists each derived feature with its type, so a flow can mirror it."""
    feats = {f.name: f.type for f in load_model(ARTIFACTS / name / "1").card.features}
    for d in derived:
        assert feats[d.name] == d.type


def test_models_are_small_enough_for_fast_inference() -> None:
    """Bundled LightGBM models stay within 300 trees and 31 leaves."""
    for name in LIGHTGBM_MODELS:
        card = load_model(ARTIFACTS / name / "1").card
        assert card.training.num_trees <= 300
        assert card.training.params["num_leaves"] <= 31


def test_readme_documents_every_derived_feature() -> None:
    """model_artifacts/README.md states each derived feature's formula and missing rule as the trainer defines it."""
    text = (ARTIFACTS / "README.md").read_text()
    for d in (*CREDIT_DEFAULT_DERIVED, *CARD_FRAUD_STREAM_DERIVED):
        assert f"| `{d.name}` | {d.type} | `{d.formula}` | {d.missing_when} |" in text
