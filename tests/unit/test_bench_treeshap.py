"""The single-row TreeSHAP fast path of engine.models equals LightGBM's own pred_contrib."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.models import TreeShap, load_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["credit_default", "card_fraud"])
def test_single_row_contributions_equal_predict_contrib(name: str) -> None:
    """On 1,000 seeded rows (10% missing cells) the C-API path equals Booster.predict(pred_contrib=True) to 1e-9."""
    model = load_model(ROOT / "model_artifacts" / name / "1")
    explainer = model._explainer
    assert isinstance(explainer, TreeShap)  # built at load, not on the first request
    rng = np.random.default_rng(7)
    x = (rng.normal(size=(1000, len(model.features))) * rng.choice([1, 10, 1000], size=len(model.features))).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    expected = explainer.booster.predict(x, pred_contrib=True, num_threads=1)
    got = np.vstack([explainer.contributions_row(x[i : i + 1]) for i in range(len(x))])
    assert got.shape == expected.shape
    assert np.max(np.abs(got - expected)) <= 1e-9
    assert np.abs(expected[:, :-1]).max() > 0.01  # the rows reach real contributions
    assert np.allclose(model.contributions(x[0:1]), expected[0, :-1], atol=1e-12)


def test_wrong_row_width_is_refused() -> None:
    """A row of the wrong width is a ValueError, never a read past the buffer."""
    model = load_model(ROOT / "model_artifacts" / "credit_default" / "1")
    with pytest.raises(ValueError):
        model._explainer.contributions_row(np.zeros((1, len(model.features) - 1), dtype=np.float32))
