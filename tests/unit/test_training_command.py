"""`verdict train` and `verdict models rebuild`: outputs, errors, parity refusal, options, reproducible rebuild."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from engine.cli import main
from engine.commands._io import UsageError
from engine.commands.train import parse_monotone
from engine.models.runtime import load_model
from engine.monitor.baseline import read_baseline
from engine.training import onnx_export
from engine.training.fraud_data import generate, to_csv
from engine.training.rebuild import rebuild

ROOT = Path(__file__).resolve().parents[2]
FAST = ["--no-tune", "--max-rounds", "10", "--folds", "3", "--num-leaves", "4", "--min-data-in-leaf", "5"]


@pytest.fixture(scope="module")
def payments(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """600 generated card payments with a raised fraud rate."""
    path = tmp_path_factory.mktemp("cli") / "payments.csv"
    path.write_text(to_csv(generate(600, seed=5, fraud_rate=0.15)))
    return path


def _train(data: Path, out: Path, *extra: str, target: str = "is_fraud", positive: str = "1") -> int:
    return main(["train", "--data", str(data), "--target", target, "--positive", positive, "--name", "cli_model",
                 "--out", str(out), "--drop", "customer_id,device_id", *extra])


def test_train_writes_model_card_and_report(payments: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A run writes a loadable model, its card, its drift baseline, a Markdown report with two PNG figures, and shows progress."""
    out = tmp_path / "m"
    assert _train(payments, out, *FAST) == 0
    captured = capsys.readouterr()
    assert "fold 1/3: AUC" in captured.err and "ONNX vs LightGBM" in captured.err
    assert "cv_auc" in captured.out
    model = load_model(out)
    assert model.card.name == "cli_model" and model.card.training.cv_folds == 3
    for png in ("roc.png", "score_histogram.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    for needle in ("## Validation", "| fold | auc | ks | gini | brier | logloss |", "### Calibration",
                   "![ROC curve](roc.png)", "## ONNX parity", "## Reason-code faithfulness", model.sha256):
        assert needle in report
    features = [f.name for f in model.features]
    assert "customer_id" not in features and "merchant_category" in features
    assert model.card.features[features.index("merchant_category")].type == "categorical"
    assert 0 <= model.card.metrics["faithfulness"]["rate"] <= 1
    baseline = read_baseline(out, model.feature_names)  # the drift monitor's training bins, beside the card
    assert baseline is not None and sum(baseline.score_shares) == pytest.approx(1.0)


def test_train_is_deterministic_for_a_seed(payments: Path, tmp_path: Path) -> None:
    """Two runs with the same seed write byte-identical model.onnx and model.txt."""
    assert _train(payments, tmp_path / "a", *FAST, "--quiet") == 0
    assert _train(payments, tmp_path / "b", *FAST, "--quiet") == 0
    for name in ("model.onnx", "model.txt"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


@pytest.mark.parametrize(
    ("csv", "target", "positive", "code"),
    [
        ("a,y\n1,0\n2,1\n", "nope", "1", "target_missing"),
        ("a,y\n1,0\n2,0\n", "y", "1", "target_single_class"),
        ("a,y\n1,good\n2,bad\n", "y", "ugly", "target_unknown_label"),
        ("", "y", "1", "data_empty"),
    ],
)
def test_train_reports_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], csv: str, target: str,
                                    positive: str, code: str) -> None:
    """Missing target, single class, unknown label and empty file exit 2 with the error code and no output."""
    data = tmp_path / "d.csv"
    data.write_text(csv)
    out = tmp_path / "m"
    assert main(["train", "--data", str(data), "--target", target, "--positive", positive, "--name", "m",
                 "--out", str(out), "--quiet"]) == 2
    assert f"[{code}]" in capsys.readouterr().err
    assert not out.exists()


def test_train_refuses_a_model_failing_parity(payments: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """When ONNX disagrees with LightGBM by more than 1e-5 the command exits 1 and writes nothing."""
    real = onnx_export.onnx_scores
    monkeypatch.setattr(onnx_export, "onnx_scores", lambda *a, **k: real(*a, **k) + 1e-4)
    out = tmp_path / "m"
    assert _train(payments, out, *FAST, "--quiet") == 1
    assert "[parity_failed]" in capsys.readouterr().err
    assert not out.exists()


def test_usage_errors(payments: Path, tmp_path: Path) -> None:
    """A bad --monotone, a bad name or a missing data file is a usage error (exit 2)."""
    assert _train(payments, tmp_path / "m", "--monotone", "amount:up") == 2
    assert main(["train", "--data", str(payments), "--target", "is_fraud", "--positive", "1", "--name", "Bad-Name",
                 "--out", str(tmp_path / "m")]) == 2
    assert main(["train", "--data", str(tmp_path / "none.csv"), "--target", "y", "--positive", "1", "--name", "m",
                 "--out", str(tmp_path / "m")]) == 2
    with pytest.raises(UsageError):
        parse_monotone("x:+2")
    assert parse_monotone("income:-1, debt:+1") == {"income": -1, "debt": 1}


def test_monotone_constraint_holds(payments: Path, tmp_path: Path) -> None:
    """--monotone amount:+1 gives a model whose score never falls as amount rises."""
    out = tmp_path / "m"
    assert _train(payments, out, *FAST, "--quiet", "--monotone", "amount:+1") == 0
    model = load_model(out)
    j = [f.name for f in model.features].index("amount")
    rows = np.load_like = None  # noqa: F841 - keep the names explicit below
    grid = np.linspace(0.5, 3000, 40, dtype=np.float32)
    rng = np.random.default_rng(0)
    x = np.nan_to_num(rng.normal(size=(20, len(model.features))).astype(np.float32))
    for row in x:
        trial = np.repeat(row[None, :], len(grid), axis=0)
        trial[:, j] = grid
        scores = model.score_batch(trial)
        assert np.all(np.diff(scores) >= -1e-7)
    assert model.card.training.params["monotone_constraints"][j] == 1


def test_tuning_is_recorded(payments: Path, tmp_path: Path) -> None:
    """Without --no-tune the small grid (then its winner with one-vs-rest categorical splits) is searched and recorded."""
    out = tmp_path / "m"
    assert _train(payments, out, "--max-rounds", "6", "--folds", "3", "--quiet") == 0
    tuning = load_model(out).card.training.model_extra["tuning"]
    assert len(tuning["grid"]) == 13  # merchant_category has 10 categories, which LightGBM would group
    assert "max_cat_to_onehot" in tuning["grid"][-1] and "one-vs-rest" in tuning["note"]
    best = max(tuning["grid"], key=lambda g: g["cv_auc"])
    params = load_model(out).card.training.params
    assert params["num_leaves"] == best["num_leaves"]
    assert params.get("max_cat_to_onehot") == best.get("max_cat_to_onehot")


def test_models_rebuild_rejects_unknown_names(capsys: pytest.CaptureFixture[str]) -> None:
    """`verdict models rebuild nosuch` exits 2 and lists the bundled models."""
    assert main(["models", "rebuild", "nosuch"]) == 2
    assert "credit_default" in capsys.readouterr().err


def test_rebuild_reproduces_the_committed_credit_model(tmp_path: Path) -> None:
    """Rebuilding credit_default from the committed data gives the committed bytes (model, booster, card)."""
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "data" / "credit_data.csv", tmp_path / "data" / "credit_data.csv")
    committed = ROOT / "model_artifacts" / "credit_default" / "1"
    out = tmp_path / "model_artifacts" / "credit_default" / "1"
    out.mkdir(parents=True)
    shutil.copy(committed / "card.json", out / "card.json")  # lets the rebuild keep created_at
    rebuild(tmp_path, ["credit_default"])
    for name in ("model.onnx", "model.txt", "card.json", "baseline.json"):
        assert (out / name).read_bytes() == (committed / name).read_bytes(), name
    assert json.loads((out / "card.json").read_text())["metrics"]["cv_auc"] >= 0.84
