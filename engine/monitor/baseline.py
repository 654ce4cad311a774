"""The training baseline of a model: the bins and shares PSI compares live traffic with.

Stored as ``baseline.json`` beside the model card (``model_artifacts/NAME/VERSION/``), not inside
it: the card is one of the files that decide, so a change to it would change the flow revision
(and released versions' locks); the baseline only describes the training population. Written at
training time (``engine.training``), and for a model trained before baselines existed by
``verdict monitor baseline MODEL_DIR`` from the training data the card names.

Per input (in the card's order, i.e. the column of the encoded row): for a numeric or boolean
input the training deciles as bin edges and the share of non-missing training rows in each
bin; for a categorical input the share of each category (its ordinal code is its index); and
the share of missing rows. For the score: its deciles and shares.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.monitor.psi import bin_counts, decile_edges, shares

__all__ = ["BASELINE_FILE", "Baseline", "BaselineError", "FeatureBaseline", "build_baseline", "read_baseline", "write_baseline"]

BASELINE_FILE = "baseline.json"
SCHEMA = "verdict.baseline/v1"


class BaselineError(ValueError):
    """A baseline file that cannot be read or does not fit its model."""


@dataclass(frozen=True)
class FeatureBaseline:
    """One input's training distribution: numeric bins (``edges``) or ``categories``, ``shares``
    per bin or category (summing to 1 over non-missing rows), and the ``missing`` share."""

    name: str
    kind: str  # "numeric" (numeric and boolean inputs) or "categorical"
    shares: tuple[float, ...]
    missing: float
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    def counts(self, column: np.ndarray) -> np.ndarray:
        """Live counts of an encoded column (NaN = missing or unseen) over this input's bins."""
        if self.kind == "categorical":
            codes = column[~np.isnan(column)].astype(np.int64)
            return np.bincount(codes, minlength=len(self.categories))[: len(self.categories)]
        return bin_counts(column, self.edges)


@dataclass(frozen=True)
class Baseline:
    """The training distribution of a model's inputs and score over ``rows`` training rows."""

    model: str
    version: str
    rows: int
    features: tuple[FeatureBaseline, ...]
    score_edges: tuple[float, ...]
    score_shares: tuple[float, ...]

    def to_json(self) -> str:
        """The file's text (stable key order, one document)."""
        doc = {
            "schema": SCHEMA, "model": self.model, "version": self.version, "rows": self.rows,
            "score": {"edges": list(self.score_edges), "shares": list(self.score_shares)},
            "features": [
                {"name": f.name, "kind": f.kind, "missing": f.missing, "shares": list(f.shares)}
                | ({"categories": list(f.categories)} if f.kind == "categorical" else {"edges": list(f.edges)})
                for f in self.features
            ],
        }
        return json.dumps(doc, indent=1) + "\n"


def build_baseline(model: str, version: str, specs: Sequence[Any], x: np.ndarray, scores: np.ndarray) -> Baseline:
    """The baseline of encoded training rows ``x`` (rows, n) and their ``scores`` (rows,).

    ``specs``: the card's features in column order (``name``, ``type``, ``categories``). Raises
    BaselineError when the shapes do not fit.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != len(specs) or len(scores) != x.shape[0]:
        raise BaselineError(f"{x.shape} rows for {len(specs)} features and {len(scores)} scores")
    rows = x.shape[0]
    features = []
    for i, spec in enumerate(specs):
        column = x[:, i]
        missing = float(np.isnan(column).mean()) if rows else 0.0
        if spec.type == "categorical":
            categories = tuple(spec.categories or ())
            counts = FeatureBaseline(spec.name, "categorical", (), missing, categories=categories).counts(column)
            features.append(FeatureBaseline(spec.name, "categorical", tuple(shares(counts).tolist()), missing, categories=categories))
        else:
            edges = tuple(decile_edges(column).tolist())
            features.append(FeatureBaseline(spec.name, "numeric", tuple(shares(bin_counts(column, edges)).tolist()), missing, edges=edges))
    s = np.asarray(scores, dtype=np.float64)
    score_edges = tuple(decile_edges(s).tolist())
    return Baseline(model, version, rows, tuple(features), score_edges, tuple(shares(bin_counts(s, score_edges)).tolist()))


def write_baseline(directory: Path, baseline: Baseline) -> Path:
    """Write ``directory/baseline.json``; its path."""
    path = Path(directory) / BASELINE_FILE
    path.write_text(baseline.to_json(), encoding="utf-8")
    return path


def read_baseline(directory: Path, feature_names: Sequence[str] | None = None) -> Baseline | None:
    """The baseline beside a model card, or None when the model has none.

    ``feature_names`` (the card's, in order) are checked against the file. Raises BaselineError
    naming the file when it is unreadable, malformed or for other inputs.
    """
    path = Path(directory) / BASELINE_FILE
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        if doc.get("schema") != SCHEMA:
            raise BaselineError(f"{path}: schema is {doc.get('schema')!r}, expected {SCHEMA!r}")
        features = tuple(_feature(f) for f in doc["features"])
        baseline = Baseline(
            str(doc["model"]), str(doc["version"]), int(doc["rows"]), features,
            tuple(float(e) for e in doc["score"]["edges"]), tuple(float(s) for s in doc["score"]["shares"]),
        )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, BaselineError):
            raise
        raise BaselineError(f"{path}: not a valid baseline ({type(exc).__name__}: {exc})") from exc
    if feature_names is not None and tuple(f.name for f in features) != tuple(feature_names):
        raise BaselineError(f"{path}: inputs {[f.name for f in features]} are not the card's {list(feature_names)}")
    return baseline


def _feature(f: Mapping[str, Any]) -> FeatureBaseline:
    kind = f["kind"]
    if kind not in ("numeric", "categorical"):
        raise BaselineError(f"feature {f.get('name')!r}: kind {kind!r} is not numeric or categorical")
    shares_ = tuple(float(s) for s in f["shares"])
    if kind == "categorical":
        categories = tuple(str(c) for c in f["categories"])
        if len(shares_) != len(categories):
            raise BaselineError(f"feature {f['name']!r}: {len(shares_)} shares for {len(categories)} categories")
        return FeatureBaseline(str(f["name"]), kind, shares_, float(f["missing"]), categories=categories)
    edges = tuple(float(e) for e in f["edges"])
    if len(shares_) != len(edges) + 1:
        raise BaselineError(f"feature {f['name']!r}: {len(shares_)} shares for {len(edges)} edges")
    return FeatureBaseline(str(f["name"]), kind, shares_, float(f["missing"]), edges=edges)
