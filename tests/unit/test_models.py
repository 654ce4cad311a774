"""Unit tests of the model runtime (engine.models.runtime): card validation, verified loading, encode, explain."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

import engine.models.runtime as models_mod
from engine.errors import InvalidInput, ModelLoadError
from engine.models.card import ModelCard
from engine.models.encoding import FeatureSpec, encode_value, make_encoder
from engine.models.runtime import load_model

ROOT = Path(__file__).resolve().parents[2]
CREDIT = ROOT / "model_artifacts" / "credit_default" / "1"
FRAUD = ROOT / "model_artifacts" / "card_fraud" / "1"


def _card_doc() -> dict:
    return json.loads((CREDIT / "card.json").read_text())


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A private copy of the bundled credit model that a test may corrupt."""
    out = tmp_path / "credit_default" / "1"
    shutil.copytree(CREDIT, out)
    return out


def _write_card(directory: Path, doc: dict) -> None:
    (directory / "card.json").write_text(json.dumps(doc))


# ---------------------------------------------------------------- card validation


def test_bundled_card_validates() -> None:
    """The committed credit card is a valid verdict.model_card/v1."""
    card = ModelCard.model_validate(_card_doc())
    assert card.algorithm == "lightgbm" and card.task == "binary_classification"
    assert card.features[0].name == "seniority"


def test_card_rejects_unknown_top_level_key() -> None:
    """An unknown key at the top level of a card is an error (extra=forbid)."""
    doc = _card_doc() | {"surprise": 1}
    with pytest.raises(ValueError, match="surprise"):
        ModelCard.model_validate(doc)


def test_card_allows_extra_evidence_keys() -> None:
    """Extra keys are allowed under data, training, metrics, parity and libraries."""
    doc = _card_doc()
    for section in ("data", "training", "metrics", "parity", "libraries"):
        doc[section] = dict(doc[section]) | {"reviewer_note": "x"}
    card = ModelCard.model_validate(doc)
    assert card.metrics["reviewer_note"] == "x"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d["features"][1].pop("categories"), "categories"),
        (lambda d: d["features"][0].update(categories=["a"]), "must not have categories"),
        (lambda d: d["features"].append(dict(d["features"][0])), "duplicate feature names"),
        (lambda d: d["artifacts"].pop("explainer"), "lightgbm_treeshap"),
        (lambda d: d["artifacts"]["onnx"].update(sha256="abc"), "sha256"),
        (lambda d: d["artifacts"]["onnx"].update(file="../model.onnx"), "file"),
        (lambda d: d.update(schema="verdict.model_card/v9"), "schema"),
        (lambda d: d.pop("target"), "target"),
        (lambda d: d["features"][0].update(type="text"), "type"),
    ],
)
def test_card_rejects_invalid_content(mutate, message: str) -> None:
    """Each kind of invalid card content is rejected with a message naming the problem."""
    doc = _card_doc()
    mutate(doc)
    with pytest.raises(ValueError, match=message):
        ModelCard.model_validate(doc)


# ---------------------------------------------------------------- verified loading


def test_load_model_verifies_and_exposes_identity() -> None:
    """A bundled model loads with its name, version, sha256 of model.onnx and feature specs."""
    m = load_model(CREDIT)
    assert (m.name, m.version) == ("credit_default", "1")
    assert m.sha256 == models_mod.sha256_bytes((CREDIT / "model.onnx").read_bytes())
    assert m.features[1] == FeatureSpec("home", "categorical", m.card.features[1].categories)


def test_sha256_mismatch_is_refused_before_any_session(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tampered model.onnx fails its sha256 check and no ONNX session is ever created."""
    data = bytearray((model_dir / "model.onnx").read_bytes())
    data[-1] ^= 0xFF
    (model_dir / "model.onnx").write_bytes(bytes(data))

    def no_session(*a, **k):  # pragma: no cover - reaching it is the failure
        raise AssertionError("a session was created for an unverified model")

    monkeypatch.setattr(models_mod.ort, "InferenceSession", no_session)
    with pytest.raises(ModelLoadError) as err:
        load_model(model_dir)
    problem = err.value.problems[0]
    assert problem.code == "model_sha256_mismatch"
    assert problem.path.endswith("model.onnx")


def test_tampered_explainer_is_refused(model_dir: Path) -> None:
    """model.txt (the TreeSHAP booster) is verified too."""
    with (model_dir / "model.txt").open("a") as fh:
        fh.write("\n")
    with pytest.raises(ModelLoadError) as err:
        load_model(model_dir)
    assert err.value.problems[0].code == "model_sha256_mismatch"
    assert err.value.problems[0].path.endswith("model.txt")


@pytest.mark.parametrize("name", ["model.onnx", "model.txt", "card.json"])
def test_missing_file_is_refused(model_dir: Path, name: str) -> None:
    """Any missing file of a model directory is a model_missing_file error naming it."""
    (model_dir / name).unlink()
    with pytest.raises(ModelLoadError) as err:
        load_model(model_dir)
    assert err.value.problems[0].code == "model_missing_file"
    assert err.value.problems[0].path.endswith(name)


def test_card_not_json_is_refused(model_dir: Path) -> None:
    """A card that is not JSON is model_card_invalid."""
    (model_dir / "card.json").write_text("{not json")
    with pytest.raises(ModelLoadError) as err:
        load_model(model_dir)
    assert err.value.problems[0].code == "model_card_invalid"


def test_invalid_card_is_refused_with_field(model_dir: Path) -> None:
    """A schema violation is model_card_invalid and says which field."""
    doc = _card_doc()
    doc["output"]["index"] = -1
    _write_card(model_dir, doc)
    with pytest.raises(ModelLoadError) as err:
        load_model(model_dir)
    assert err.value.problems[0].code == "model_card_invalid"
    assert "output.index" in err.value.problems[0].message


def test_input_width_mismatch_is_refused(model_dir: Path) -> None:
    """A card declaring more features than the graph's input width never serves."""
    doc = _card_doc()
    doc["features"].append({"name": "extra_feature", "type": "numeric"})
    _write_card(model_dir, doc)
    with pytest.raises(ModelLoadError) as err:
        load_model(model_dir)
    assert err.value.problems[0].code == "model_input_mismatch"
    assert "17 features" in err.value.problems[0].message


def test_unknown_output_is_refused(model_dir: Path) -> None:
    """A card naming an output the graph lacks is refused."""
    doc = _card_doc()
    doc["output"]["onnx_output"] = "proba"
    _write_card(model_dir, doc)
    with pytest.raises(ModelLoadError) as err:
        load_model(model_dir)
    assert err.value.problems[0].code == "model_output_mismatch"


# ---------------------------------------------------------------- encoding


def test_encode_rules() -> None:
    """numeric -> float, boolean -> 1/0, categorical -> index; None, NaN, unknown -> NaN."""
    cat = FeatureSpec("home", "categorical", ("rent", "owner"))
    assert encode_value(cat, "owner") == 1.0
    assert math.isnan(encode_value(cat, "castle"))
    assert math.isnan(encode_value(cat, None))
    assert math.isnan(encode_value(cat, float("nan")))
    boolean = FeatureSpec("records", "boolean")
    assert (encode_value(boolean, True), encode_value(boolean, False)) == (1.0, 0.0)
    assert encode_value(boolean, "yes") == 1.0
    assert math.isnan(encode_value(boolean, None))
    num = FeatureSpec("age", "numeric")
    assert encode_value(num, 42) == 42.0
    assert encode_value(num, "3.5") == 3.5
    assert math.isnan(encode_value(num, None))
    assert math.isnan(encode_value(num, float("nan")))


@pytest.mark.parametrize(
    ("spec", "value"),
    [(FeatureSpec("age", "numeric"), "old"), (FeatureSpec("age", "numeric"), [1]),
     (FeatureSpec("records", "boolean"), "maybe")],
)
def test_encode_rejects_wrong_types(spec: FeatureSpec, value: object) -> None:
    """A value of the wrong type is InvalidInput naming the field, never a silent NaN."""
    with pytest.raises(InvalidInput) as err:
        make_encoder(spec)(value)
    assert err.value.errors[0].field == spec.name


def test_model_encode_shape_and_missing_keys() -> None:
    """Model.encode gives one (1, n) row in the graph's dtype (float64 for LightGBM); absent keys and unknown categories are NaN."""
    m = load_model(CREDIT)
    x = m.encode({"seniority": 3, "home": "castle", "records": True})
    assert x.shape == (1, len(m.features)) and x.dtype == np.float64 == m.dtype
    names = [f.name for f in m.features]
    assert x[0, names.index("seniority")] == 3.0
    assert np.isnan(x[0, names.index("home")])
    assert x[0, names.index("records")] == 1.0
    assert np.isnan(x[0, names.index("income")])


# ---------------------------------------------------------------- scoring and reasons


def _rows(m, n: int, seed: int) -> np.ndarray:
    """Random plausible encoded rows, with some missing cells."""
    rng = np.random.default_rng(seed)
    x = np.empty((n, len(m.features)), dtype=np.float32)
    for j, f in enumerate(m.features):
        if f.type == "categorical":
            x[:, j] = rng.integers(0, len(f.categories), n)
        elif f.type == "boolean":
            x[:, j] = rng.integers(0, 2, n)
        else:
            x[:, j] = rng.lognormal(3, 1.5, n)
    x[rng.random(x.shape) < 0.1] = np.nan
    return x


@pytest.mark.parametrize("directory", [CREDIT, FRAUD], ids=["credit_default", "card_fraud"])
def test_score_matches_score_batch(directory: Path) -> None:
    """score() of single rows equals score_batch() of the same rows, and scores are probabilities."""
    m = load_model(directory)
    x = _rows(m, 50, 1)
    batch = m.score_batch(x)
    single = np.array([m.score(x[i : i + 1]) for i in range(len(x))])
    assert np.allclose(batch, single, atol=1e-7)
    assert ((batch > 0) & (batch < 1)).all()
    assert batch.std() > 0


@pytest.mark.parametrize("directory", [CREDIT, FRAUD], ids=["credit_default", "card_fraud"])
def test_explain_sums_to_log_odds(directory: Path) -> None:
    """TreeSHAP contributions plus bias equal the log-odds of the served ONNX score (sorted, complete)."""
    m = load_model(directory)
    assert m.has_explainer
    biases = []
    for row in _rows(m, 8, 2):
        x = row.reshape(1, -1)
        p = m.score(x)
        reasons = m.explain(x)
        assert sorted(name for name, _ in reasons) == sorted(f.name for f in m.features)
        values = [v for _, v in reasons]
        assert values == sorted(values, reverse=True)
        assert math.isclose(m.raw_score(x), math.log(p / (1 - p)), abs_tol=1e-4)
        assert any(abs(v) > 1e-6 for v in values)
        biases.append(m.raw_score(x) - sum(values))
    assert max(biases) - min(biases) < 1e-9  # the TreeSHAP bias is the same expected value for every row
