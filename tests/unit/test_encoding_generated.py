"""The generated row encoder of each model gives the rows its features' encoders give, bit for bit."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from engine.errors import InvalidInput
from engine.models.encoding import LIGHTGBM_ZERO, FeatureSpec, compile_row_encoder, make_encoder
from engine.models.runtime import load_model
from tests.unit.audit_helpers import card_payments, credit_applications

ROOT = Path(__file__).resolve().parents[2]
MODEL_DIRS = sorted(p.parent for p in (ROOT / "model_artifacts").glob("*/*/card.json"))


def reference_row(features: tuple[FeatureSpec, ...], zero: float, dtype: Any, values: dict[str, Any]) -> np.ndarray:
    """The row as the per-feature encoders build it, one value at a time (the encoding before generation)."""
    row = np.empty((1, len(features)), dtype=dtype)
    for i, spec in enumerate(features):
        v = make_encoder(spec)(values.get(spec.name))
        row[0, i] = 0.0 if -zero <= v <= zero else v
    return row


def odd_values(spec: FeatureSpec) -> list[Any]:
    """Values of every kind a feature may meet: missing, NaN, signed zeros, LightGBM's zero, ints, decimals, texts."""
    common: list[Any] = [None, float("nan"), 0.0, -0.0, 1e-36, -1e-36, LIGHTGBM_ZERO, 2.0e-35, 3, True, False, Decimal("2.5")]
    if spec.type == "categorical":
        return [*spec.categories, "not a category", 7, *common]
    if spec.type == "boolean":
        return [*common, "yes", " N ", 1.0, 0]
    return [*common, "3.25", -12.5, 1e300]


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("directory", MODEL_DIRS, ids=lambda d: f"{d.parent.name}/{d.name}")
def test_bundled_models_encode_real_and_odd_values_as_before(directory: Path) -> None:
    """For every bundled model, real inputs and every odd value of every feature give byte-equal rows (-0.0 and NaN included)."""
    model = load_model(directory)
    rows = [*credit_applications(200), *card_payments(200)]
    for values in rows:
        assert same(model.encode(values), reference_row(model.features, model._zero, model.dtype, values))
    for spec in model.features:
        for v in odd_values(spec):  # 1e300 overflows a float32 row to inf, alike in both
            values = {spec.name: v}
            try:
                want = reference_row(model.features, model._zero, model.dtype, values)
            except InvalidInput as exc:
                with pytest.raises(InvalidInput) as got:
                    model.encode(values)
                assert got.value.errors == exc.errors
                continue
            assert same(model.encode(values), want), (spec.name, v)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_float32_rows_round_as_numpy_rounds(dtype: Any) -> None:
    """A float32 graph's row holds each double rounded as numpy assigns it, for both zero rules."""
    features = (FeatureSpec("a", "numeric"), FeatureSpec("b", "boolean"), FeatureSpec("c", "categorical", ("x", "y")))
    for zero in (0.0, LIGHTGBM_ZERO):
        encode = compile_row_encoder(features, zero, dtype)
        for a in (0.1, 1 / 3, 16777217.0, -0.0, 5e-36):
            values = {"a": a, "b": True, "c": "y"}
            assert same(encode(values), reference_row(features, zero, dtype, values))


def test_a_wrong_type_names_the_feature() -> None:
    """A value no encoding accepts raises InvalidInput naming its feature, as the per-feature encoder does."""
    encode = compile_row_encoder((FeatureSpec("amount", "numeric"),), 0.0, np.float64)
    with pytest.raises(InvalidInput) as info:
        encode({"amount": ["1"]})
    assert [e.field for e in info.value.errors] == ["amount"]
