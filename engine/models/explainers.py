"""Explainers: a model's per-feature contributions (log-odds) behind its reasons, by the card's kind.

``EXPLAINERS`` is the registry, one builder per explainer kind a card may name
(``CardArtifact.kind``): ``lightgbm_treeshap`` (exact TreeSHAP over LightGBM's ``model.txt``,
``engine.models.explain``; Lundberg et al. 2018, Algorithm 2) and ``linear_contributions``
(coefficient times standardised value minus its training mean). A new kind is a builder here and a
value of the card's ``kind``; a test checks the two lists are the same.

Every explainer's ``contributions(x)`` takes rows of shape (rows, n) float64 and returns (rows, n+1):
the contributions in feature order and, last, the bias, summing to the raw (log-odds) score.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Protocol

import numpy as np

from engine.errors import ModelLoadError
from engine.models.explain import TreeExplainer

__all__ = ["EXPLAINERS", "Explainer", "LinearExplainer", "build_explainer"]


class Explainer(Protocol):
    """What a model needs of an explainer (immutable after building: no lock on the request path)."""

    def contributions(self, x: np.ndarray) -> np.ndarray: ...


class LinearExplainer:
    """Contributions of a standardised logistic model: coef * (z - mean_z), z = (impute(x) - mu) / sd."""

    def __init__(self, intercept: float, fill: np.ndarray, center: np.ndarray, scale: np.ndarray,
                 coef: np.ndarray, mean_z: np.ndarray) -> None:
        self.intercept = intercept
        self.fill, self.center, self.scale, self.coef, self.mean_z = fill, center, scale, coef, mean_z

    @classmethod
    def from_json(cls, data: bytes, names: Sequence[str]) -> LinearExplainer:
        doc = json.loads(data)
        by_name = {f["name"]: f for f in doc["features"]}
        cols = [by_name[n] for n in names]

        def arr(key: str) -> np.ndarray:
            return np.array([c[key] for c in cols], dtype=np.float64)

        return cls(float(doc["intercept"]), arr("fill"), arr("center"), arr("scale"), arr("coef"), arr("mean_z"))

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """(rows, n+1): per-feature contributions and, last, the bias (intercept + sum coef*mean_z)."""
        x = np.asarray(x, dtype=np.float64)
        filled = np.where(np.isnan(x), self.fill, x)
        z = (filled - self.center) / self.scale
        contrib = self.coef * (z - self.mean_z)
        bias = self.intercept + float(np.dot(self.coef, self.mean_z))
        return np.concatenate([contrib, np.full((x.shape[0], 1), bias)], axis=1)


def _tree(data: bytes, names: Sequence[str], path: Path) -> Explainer:
    try:
        return TreeExplainer(data.decode("utf-8"), len(names))
    except (ValueError, IndexError, KeyError, UnicodeDecodeError) as exc:  # a text that is not a usable model
        raise ModelLoadError(str(path), f"cannot read the LightGBM trees: {exc}", "model_explainer_invalid") from exc


def _linear(data: bytes, names: Sequence[str], path: Path) -> Explainer:
    return LinearExplainer.from_json(data, names)


#: Explainer kind (the card's ``artifacts.explainer.kind``) -> builder(file bytes, feature names, file path).
EXPLAINERS: Mapping[str, Callable[[bytes, Sequence[str], Path], Explainer]] = MappingProxyType({
    "lightgbm_treeshap": _tree,
    "linear_contributions": _linear,
})


def build_explainer(kind: str, data: bytes, names: Sequence[str], path: Path) -> Explainer:
    """The explainer of ``kind`` for the file ``path`` (its bytes ``data``) of a model with features ``names``.

    Raises ``ModelLoadError`` (``model_explainer_invalid``) when the file is not a usable explainer
    and ``NotImplementedError`` for a kind the registry does not have.
    """
    builder = EXPLAINERS.get(kind)
    if builder is None:
        raise NotImplementedError(f"unknown explainer kind {kind!r}")
    return builder(data, names, path)
