"""Feature encoding: one raw input value to the float a model reads, shared by serving and training.

``engine.training`` builds its matrices through the same functions (Feast/Tecton's rule: the same
feature code serves training and serving, so they cannot skew). Rules: numeric -> float; boolean ->
1.0 / 0.0 (also from the texts in ``_TRUE_TEXT``/``_FALSE_TEXT``); categorical -> index in
``categories`` as float; None, NaN or an unknown category -> NaN. A value of the wrong type raises
``InvalidInput`` naming the field.

``LIGHTGBM_ZERO`` is LightGBM's ``kZeroThreshold`` (the float literal ``1e-35f`` in LightGBM's
``include/LightGBM/meta.h``): LightGBM reads ``|x| <= 1e-35f`` as 0, and ``engine.models.runtime``
encodes such values as 0 for LightGBM models so the ONNX graph routes them as the trained model does.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from engine.errors import FieldError, InvalidInput

__all__ = ["LIGHTGBM_ZERO", "NAN", "FeatureSpec", "encode_value", "make_encoder"]

NAN = float("nan")
# LightGBM's kZeroThreshold, the float literal 1e-35f (include/LightGBM/meta.h): it reads |x| <= this as 0.
LIGHTGBM_ZERO = 1.0000000180025095e-35

_TRUE_TEXT = frozenset({"true", "yes", "y", "t", "1"})
_FALSE_TEXT = frozenset({"false", "no", "n", "f", "0"})


@dataclass(frozen=True)
class FeatureSpec:
    """One model input: its name, type and (for categoricals) the ordered categories."""

    name: str
    type: str
    categories: tuple[str, ...] = ()


def _encode_numeric(name: str) -> Callable[[object], float]:
    def enc(v: object) -> float:
        if v is None:
            return NAN
        if isinstance(v, (float, int, Decimal)):  # bool is an int: True -> 1.0; a derived Decimal: the nearest double
            return float(v)
        if isinstance(v, str):
            try:
                return float(v)
            except ValueError:
                pass
        raise InvalidInput([FieldError(name, f"expected a number, got {type(v).__name__}", "type")])

    return enc


def _encode_boolean(name: str) -> Callable[[object], float]:
    def enc(v: object) -> float:
        if v is None:
            return NAN
        if v is True:
            return 1.0
        if v is False:
            return 0.0
        if isinstance(v, (int, float)):
            return NAN if math.isnan(v) else (1.0 if v else 0.0)
        if isinstance(v, str):
            t = v.strip().lower()
            if t in _TRUE_TEXT:
                return 1.0
            if t in _FALSE_TEXT:
                return 0.0
        raise InvalidInput([FieldError(name, f"expected a boolean, got {v!r}", "type")])

    return enc


def _encode_categorical(categories: Sequence[str]) -> Callable[[object], float]:
    index = {c: float(i) for i, c in enumerate(categories)}
    get = index.get

    def enc(v: object) -> float:
        if isinstance(v, str):
            return get(v, NAN)
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return NAN
        return get(str(v), NAN)

    return enc


def make_encoder(spec: FeatureSpec) -> Callable[[object], float]:
    """The function turning one raw value of ``spec`` into its float code (see module doc)."""
    if spec.type == "numeric":
        return _encode_numeric(spec.name)
    if spec.type == "boolean":
        return _encode_boolean(spec.name)
    if spec.type == "categorical":
        return _encode_categorical(spec.categories)
    raise ValueError(f"unknown feature type {spec.type!r}")


def encode_value(spec: FeatureSpec, value: object) -> float:
    """Encode one value (slow path: builds the encoder; use ``make_encoder`` in loops)."""
    return make_encoder(spec)(value)
