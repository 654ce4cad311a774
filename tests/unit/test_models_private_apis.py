"""The private library APIs engine.models relies on (named in engine/models/runtime.py's docstring)
still exist and behave as relied on: an onnxruntime or LightGBM upgrade that removes one fails here,
by name, instead of silently slowing or changing the scores."""

from __future__ import annotations

import typing
from pathlib import Path

import numpy as np
import pytest

from engine.models.card import CardArtifact
from engine.models.encoding import LIGHTGBM_ZERO
from engine.models.explain import TreeExplainer
from engine.models.explainers import EXPLAINERS
from engine.models.onnx_runtime import ort
from engine.models.runtime import load_model

CREDIT = Path(__file__).resolve().parents[2] / "model_artifacts" / "credit_default" / "1"


def test_onnxruntime_native_run_is_there_and_used() -> None:
    """InferenceSession._sess.run exists, Model scores through it (not the fallback), and it gives the public run's score."""
    model = load_model(CREDIT)
    native = getattr(model._session, "_sess", None)
    assert native is not None and hasattr(native, "run"), "onnxruntime no longer has InferenceSession._sess.run"
    assert model._run == native.run, "Model fell back to InferenceSession.run: the native run was not found"
    row = model.encode({})
    feed = {model._input_name: row}
    assert native.run(model._output_names, feed, ort.RunOptions())[0].tolist() == model._session.run(model._output_names, feed)[0].tolist()


@pytest.fixture(scope="module")
def zero_split_booster():
    """A one-split LightGBM model learnt on x = 0 (label 0) against x = 1e-30 (label 1): it splits at kZeroThreshold."""
    lgb = pytest.importorskip("lightgbm")  # the [train] extra, part of [test]
    x = np.array([[0.0]] * 50 + [[1e-30]] * 50)
    y = np.array([0] * 50 + [1] * 50)
    params = {"objective": "binary", "min_data_in_leaf": 1, "min_data_in_bin": 1, "num_leaves": 2, "verbose": -1}
    return lgb.train(params, lgb.Dataset(x, y), num_boost_round=1)


def test_lightgbm_zero_threshold_is_still_1e_35f(zero_split_booster) -> None:
    """LightGBM's kZeroThreshold is LIGHTGBM_ZERO: its split sits there, 1e-35 scores as 0 and 2e-35 does not."""
    tree = zero_split_booster.dump_model()["tree_info"][0]["tree_structure"]
    assert tree["threshold"] == LIGHTGBM_ZERO
    at_zero, at_1e35, at_2e35 = zero_split_booster.predict(np.array([[0.0], [1e-35], [2e-35]]))
    assert at_1e35 == at_zero
    assert at_2e35 != at_zero


def test_lightgbm_model_text_is_still_read_by_our_treeshap(zero_split_booster) -> None:
    """TreeExplainer reads Booster.model_to_string()'s text format and equals LightGBM's pred_contrib."""
    rows = np.array([[0.0], [1e-30], [np.nan]])
    ours = TreeExplainer(zero_split_booster.model_to_string(), 1).contributions(rows)
    theirs = zero_split_booster.predict(rows, pred_contrib=True)
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)


def test_every_explainer_kind_a_card_may_name_has_a_builder() -> None:
    """The registry's kinds are exactly the card schema's explainer kinds (a new kind is added to both)."""
    kind = CardArtifact.model_fields["kind"].annotation
    literal = next(arg for arg in typing.get_args(kind) if arg is not type(None))
    assert set(EXPLAINERS) == set(typing.get_args(literal))
