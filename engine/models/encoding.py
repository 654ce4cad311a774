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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from engine.errors import FieldError, InvalidInput

__all__ = ["LIGHTGBM_ZERO", "NAN", "FeatureSpec", "compile_row_encoder", "encode_value", "make_encoder"]

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


def compile_row_encoder(
    features: Sequence[FeatureSpec], zero: float, dtype: type[np.floating], label: str = "model",
) -> Callable[[Mapping[str, object]], np.ndarray]:
    """One generated function turning a mapping of values into a model's (1, n) row of ``dtype``.

    Each value is encoded as ``make_encoder`` encodes it (the plain cases inline: None is NaN, a
    float is itself, an int or Decimal its nearest double, ``True``/``False`` are 1.0/0.0, a text category its index; anything else goes
    through the feature's encoder, which raises ``InvalidInput`` for a wrong type), then a value
    within ``±zero`` becomes 0.0 (``LIGHTGBM_ZERO`` for LightGBM models, else 0.0: -0.0 becomes
    0.0). Feature names and categories are constants of the function's namespace, never source text.
    """
    consts: dict[str, Any] = {"_Decimal": Decimal, "_NAN": NAN, "_Z": zero, "_mZ": -zero, "_array": np.array, "_dtype": dtype}
    lines = ["def encode(values):", "    _g = values.get"]
    for i, spec in enumerate(features):
        consts[f"_n{i}"] = spec.name
        consts[f"_e{i}"] = make_encoder(spec)
        lines += [f"    v = _g(_n{i})", "    if v is None:", f"        x{i} = _NAN"]
        if spec.type == "numeric":
            lines += ["    elif type(v) is float:", f"        x{i} = v", "    elif type(v) is int or type(v) is _Decimal:", f"        x{i} = float(v)"]
        elif spec.type == "boolean":
            lines += ["    elif v is True:", f"        x{i} = 1.0", "    elif v is False:", f"        x{i} = 0.0"]
        elif spec.type == "categorical":
            consts[f"_c{i}"] = {c: float(j) for j, c in enumerate(spec.categories)}
            lines += ["    elif type(v) is str:", f"        x{i} = _c{i}.get(v, _NAN)"]
        lines += ["    else:", f"        x{i} = _e{i}(v)", f"    if _mZ <= x{i} <= _Z:", f"        x{i} = 0.0"]
    lines.append("    return _array([[" + ", ".join(f"x{i}" for i in range(len(features))) + "]], _dtype)")
    namespace: dict[str, Any] = {"__builtins__": {"type": type, "float": float, "int": int, "str": str}, **consts}
    exec(compile("\n".join(lines) + "\n", f"<verdict encode {label}>", "exec"), namespace)  # built from feature types only
    encode: Callable[[Mapping[str, object]], np.ndarray] = namespace["encode"]
    return encode
