"""engine.models.explain's TreeSHAP equals LightGBM's pred_contrib and explains exactly the served score."""

from __future__ import annotations

import functools
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pytest

from engine.errors import ModelLoadError
from engine.models import explain
from engine.models.explain import TreeExplainer
from engine.models.runtime import load_model
from engine.training.binary import flush_zero
from engine.training.dataset import prepare
from engine.training.onnx_export import with_missing
from engine.training.probes import lightgbm_splits, probe_base, probe_rows
from engine.training.rebuild import LIGHTGBM_MODELS

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "model_artifacts"


@functools.cache
def _real_rows(name: str) -> np.ndarray:
    """1,000 seeded rows of the model's own training data, encoded as served."""
    p = prepare(LIGHTGBM_MODELS[name](ROOT).data)
    idx = np.random.default_rng(0).choice(len(p.y), size=1000, replace=False)
    return flush_zero(np.asarray(p.x[idx], dtype=np.float64))


@functools.cache
def _probe_rows(name: str) -> np.ndarray:
    """Rows on each side of every split threshold of every tree (engine.training.probes), 1 in 3."""
    booster = lgb.Booster(model_file=str(ARTIFACTS / name / "1" / "model.txt"))
    return flush_zero(probe_rows(lightgbm_splits(booster), probe_base(_real_rows(name)[:50])))[::3]


def _odd_rows(name: str) -> np.ndarray:
    """Real rows with 20% of cells set to values at LightGBM's edges: -0.5 and 0.5 (truncated categories), -1, 1e-40, 0, huge, NaN."""
    rng = np.random.default_rng(11)
    x = _real_rows(name)[:300].copy()
    cells = rng.random(x.shape) < 0.2
    x[cells] = rng.choice([-0.5, 0.5, -1.0, 1e-40, 0.0, 1e9, 40.0, np.nan], size=int(cells.sum()))
    return x


def _rows(name: str) -> dict[str, np.ndarray]:
    real = _real_rows(name)
    return {"real": real, "real, 10% missing": with_missing(real, seed=5, rate=0.1),
            "threshold probes": _probe_rows(name), "edge values": _odd_rows(name)}


@pytest.mark.parametrize("name", list(LIGHTGBM_MODELS))
def test_contributions_equal_lightgbm_pred_contrib(name: str) -> None:
    """On real, partly missing and threshold-adjacent rows, batched and one by one, every contribution and the bias equal pred_contrib to 1e-6."""
    model = load_model(ARTIFACTS / name / "1")
    booster = lgb.Booster(model_file=str(model.directory / "model.txt"))
    for kind, x in _rows(name).items():
        expected = booster.predict(x, pred_contrib=True, num_threads=1)
        got = model._contributions_with_bias(x)
        assert got.shape == expected.shape, kind
        assert np.max(np.abs(got - expected)) <= 1e-6, kind
        assert np.abs(expected[:, :-1]).max() > 0.01, kind  # the rows reach real contributions
        rows = x[:: max(1, len(x) // 150)]  # the one-row request path, row by row
        one_by_one = np.vstack([model._contributions_with_bias(row) for row in rows[:, None, :]])
        assert np.max(np.abs(one_by_one - booster.predict(rows, pred_contrib=True, num_threads=1))) <= 1e-6, kind


@pytest.mark.parametrize("name", list(LIGHTGBM_MODELS))
def test_contributions_explain_the_served_score(name: str) -> None:
    """Contributions + bias are the trees' raw score (1e-9) and their sigmoid is the served float32 score (1 ulp)."""
    model = load_model(ARTIFACTS / name / "1")
    booster = lgb.Booster(model_file=str(model.directory / "model.txt"))
    for kind, x in _rows(name).items():
        if kind == "edge values":  # fractional or out-of-range category codes: Model.encode never serves them
            continue
        x = x[:300]
        raw = model._contributions_with_bias(x).sum(axis=1)
        assert np.max(np.abs(raw - booster.predict(x, raw_score=True))) <= 1e-9, kind
        served = np.array([model.score(row) for row in x[:, None, :]])  # the graph's output is a float32
        assert np.max(np.abs(1.0 / (1.0 + np.exp(-raw)) - served)) <= np.finfo(np.float32).eps, kind


@pytest.mark.parametrize("name", list(LIGHTGBM_MODELS))
def test_tabulated_and_per_leaf_paths_agree(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-tree tables and the per-leaf quadrature (used for trees above TABLE_MAX_SPLITS) give the same values."""
    text = (ARTIFACTS / name / "1" / "model.txt").read_text()
    width = _real_rows(name).shape[1]
    tabulated = TreeExplainer(text, width)
    monkeypatch.setattr(explain, "TABLE_MAX_SPLITS", 0)
    per_leaf = TreeExplainer(text, width)
    assert per_leaf._tables.n_groups == 0 and tabulated._leaves is None  # each really takes its own path
    x = np.vstack([_rows(name)["real, 10% missing"][:200], _probe_rows(name)[:200]])
    assert np.max(np.abs(tabulated.contributions(x) - per_leaf.contributions(x))) <= 1e-12


def test_a_deep_tree_model_equals_pred_contrib(tmp_path: Path) -> None:
    """A model of 63-leaf trees with NaN and categorical splits (the per-leaf path) equals pred_contrib to 1e-6."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3000, 6))
    x[:, 5] = rng.integers(0, 12, size=3000)
    x[rng.random(x.shape) < 0.1] = np.nan
    y = ((np.nan_to_num(x[:, 0]) + np.sin(np.nan_to_num(x[:, 1])) + (x[:, 5] % 3 == 0)) > 0.5).astype(float)
    booster = lgb.train({"objective": "binary", "num_leaves": 63, "min_data_in_leaf": 5, "verbose": -1, "seed": 1},
                        lgb.Dataset(x, y, categorical_feature=[5]), num_boost_round=20)
    ex = TreeExplainer(booster.model_to_string(), 6)
    assert ex._leaves is not None
    test = np.vstack([x[:300], rng.normal(size=(100, 6)) * 3])
    test[300:, 5] = rng.integers(-2, 15, size=100) + rng.choice([0.0, 0.5], size=100)
    assert np.max(np.abs(ex.contributions(test) - booster.predict(test, pred_contrib=True))) <= 1e-6


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("version=v4\nnum_class=1\n", "no trees"),
        ("num_tree_per_iteration=3\nmax_feature_idx=1\nTree=0\nnum_leaves=1\nleaf_value=0.5\n", "single-output"),
        ("max_feature_idx=4\nTree=0\nnum_leaves=1\nleaf_value=0.5\n", "the model has 5 features, the card 2"),
        ("max_feature_idx=1\nTree=0\nnum_leaves=1\nleaf_value=0.5\nis_linear=1\n", "linear trees"),
    ],
)
def test_unsupported_model_text_is_refused(text: str, message: str) -> None:
    """A text that is not a supported LightGBM model is a ValueError naming what is wrong."""
    with pytest.raises(ValueError, match=message):
        TreeExplainer(text, 2)


def test_a_broken_model_txt_is_a_model_load_error(tmp_path: Path) -> None:
    """A model.txt that is not a usable model fails the load with model_explainer_invalid, never later."""
    import shutil

    from engine.models.card import read_card
    from engine.models.runtime import Model

    d = tmp_path / "m"
    shutil.copytree(ARTIFACTS / "credit_default" / "1", d)
    card = read_card(d)
    onnx = (d / "model.onnx").read_bytes()
    with pytest.raises(ModelLoadError) as info:
        Model(card, d, onnx, b"max_feature_idx=15\nTree=0\nnum_leaves=2\nsplit_feature=0\n")
    assert [p.code for p in info.value.problems] == ["model_explainer_invalid"]


def _one_by_one(ex: TreeExplainer, x: np.ndarray) -> np.ndarray:
    """The request path (one row per call) over every row of ``x``."""
    return np.vstack([ex.contributions(row[None, :]) for row in x])


def test_a_thousand_tree_model_equals_pred_contrib() -> None:
    """A 1,000-tree, 15-leaf model (trees split into table groups) equals pred_contrib to 1e-6, batched and row by row."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2000, 8))
    x[rng.random(x.shape) < 0.05] = np.nan
    y = ((np.nan_to_num(x[:, 0]) * np.nan_to_num(x[:, 1]) + np.nan_to_num(x[:, 2])) > 0).astype(float)
    booster = lgb.train({"objective": "binary", "num_leaves": 15, "min_data_in_leaf": 5, "verbose": -1, "seed": 2},
                        lgb.Dataset(x, y), num_boost_round=1000)
    assert booster.num_trees() == 1000
    ex = TreeExplainer(booster.model_to_string(), 8)
    test = np.vstack([x[:200], rng.normal(size=(100, 8)) * 2])
    expected = booster.predict(test, pred_contrib=True, num_threads=1)
    assert np.max(np.abs(ex.contributions(test) - expected)) <= 1e-6
    assert np.max(np.abs(_one_by_one(ex, test[:60]) - expected[:60])) <= 1e-6


def test_zero_as_missing_and_values_near_zero_equal_pred_contrib() -> None:
    """Zero-as-missing splits and values at ±1e-35 (LightGBM's zero threshold), ±1e-40, 0 and NaN equal pred_contrib on both paths."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(3000, 5))
    x[rng.random(x.shape) < 0.2] = 0.0
    x[rng.random(x.shape) < 0.05] = np.nan
    y = ((np.nan_to_num(x[:, 0]) + (x[:, 1] == 0) - np.nan_to_num(x[:, 2])) > 0.3).astype(float)
    for params in ({"zero_as_missing": True}, {}):
        booster = lgb.train({"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1, "seed": 1, **params},
                            lgb.Dataset(x, y), num_boost_round=40)
        ex = TreeExplainer(booster.model_to_string(), 5)
        assert (1 in ex._splits.missing) == bool(params)  # the zero-as-missing model has missing type Zero
        test = x[:300].copy()
        edge = [1.0000000180025095e-35, -1.0000000180025095e-35, 1e-36, -1e-36, 1e-40, -1e-40, 0.0, -0.0, np.nan]
        test[::3, :] = rng.choice(edge, size=(100, 5))
        expected = booster.predict(test, pred_contrib=True, num_threads=1)
        assert np.max(np.abs(ex.contributions(test) - expected)) <= 1e-6, params
        assert np.max(np.abs(_one_by_one(ex, test) - expected)) <= 1e-6, params


def test_a_categorical_feature_before_an_unused_one_equals_pred_contrib() -> None:
    """Categorical splits on a middle feature, with the last feature never split on, equal pred_contrib on both paths."""
    rng = np.random.default_rng(9)
    x = rng.normal(size=(2000, 5))
    x[:, 1] = rng.integers(0, 20, size=2000)
    x[:, 4] = 1.0  # constant: never split on, yet part of every row
    y = ((x[:, 1] % 4 == 1) | (np.nan_to_num(x[:, 0]) > 1)).astype(float)
    booster = lgb.train({"objective": "binary", "num_leaves": 7, "min_data_in_leaf": 5, "verbose": -1, "seed": 3},
                        lgb.Dataset(x, y, categorical_feature=[1]), num_boost_round=30)
    ex = TreeExplainer(booster.model_to_string(), 5)
    assert ex._splits.categorical.any() and 4 not in ex._splits.feature
    test = x[:200].copy()
    test[::4, 1] = rng.choice([-1.0, -0.5, 0.5, 25.0, 3.7, np.nan], size=50)
    expected = booster.predict(test, pred_contrib=True, num_threads=1)
    assert np.max(np.abs(ex.contributions(test) - expected)) <= 1e-6
    assert np.max(np.abs(_one_by_one(ex, test) - expected)) <= 1e-6


@pytest.mark.parametrize("name", list(LIGHTGBM_MODELS))
def test_explain_batch_ranks_every_row_as_explain_does(name: str) -> None:
    """Model.explain_batch gives each row exactly Model.explain's ranked pairs, most score-raising first."""
    model = load_model(ARTIFACTS / name / "1")
    x = with_missing(_real_rows(name)[:200], seed=2, rate=0.3).astype(model.dtype)
    batch = model.explain_batch(x)
    one = [model.explain(row[None, :]) for row in x]
    assert batch == one
    assert all(pairs[0][1] > pairs[-1][1] for pairs in one)  # ranked, not in feature order
