"""Are reason codes faithful to the model? Move the top reason to a favourable value; does the score drop?

For each high-score row (a "decline": score at or above a quantile of the scores), take the feature
with the largest positive contribution (the first reason code), replace its value by the candidate
value the explainer credits with the smallest contribution for that feature (what the reason points
to as the remedy), and score the changed row with the served ONNX graph. The rate is the share of
declines whose score went down.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.models.runtime import Model

__all__ = ["candidate_values", "faithfulness"]


def candidate_values(model: Model, x: np.ndarray) -> list[np.ndarray]:
    """Per feature, the values to try: categories, 0/1, or the 5th..95th percentiles seen in ``x``."""
    out = []
    for j, f in enumerate(model.features):
        if f.type == "categorical":
            out.append(np.arange(len(f.categories), dtype=np.float32))
        elif f.type == "boolean":
            out.append(np.array([0.0, 1.0], dtype=np.float32))
        else:
            col = x[:, j][~np.isnan(x[:, j])]
            qs = np.unique(np.quantile(col, np.linspace(0.05, 0.95, 19))) if len(col) else np.array([0.0])
            out.append(qs.astype(np.float32))
    return out


def faithfulness(model: Model, x: np.ndarray, quantile: float = 0.9, max_rows: int = 300, seed: int = 0) -> dict[str, Any]:
    """The share of declines (score >= ``quantile`` of ``x``'s scores) whose score falls when the top reason is fixed."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    scores = model.score_batch(x)
    threshold = float(np.quantile(scores, quantile))
    idx = np.flatnonzero(scores >= threshold)
    rng = np.random.default_rng(seed)
    if len(idx) > max_rows:
        idx = np.sort(rng.choice(idx, size=max_rows, replace=False))
    cands = candidate_values(model, x)
    contrib = model.contributions_batch(x[idx])
    tested = lowered = 0
    drops: list[float] = []
    by_feature: dict[str, list[int]] = {}
    for row, c in zip(idx, contrib, strict=True):
        j = int(np.argmax(c))
        if c[j] <= 0:
            continue
        trial = np.repeat(x[row : row + 1], len(cands[j]), axis=0)
        trial[:, j] = cands[j]
        best = trial[int(np.argmin(model.contributions_batch(trial)[:, j]))]
        new = model.score(best.reshape(1, -1))
        tested += 1
        ok = new < scores[row]
        lowered += int(ok)
        drops.append(float(scores[row] - new))
        name = model.features[j].name
        by_feature.setdefault(name, [0, 0])
        by_feature[name][0] += 1
        by_feature[name][1] += int(ok)
    return {
        "definition": (
            f"declines = rows scoring at or above the {quantile:.0%} quantile; the top reason feature is set to "
            "the candidate value with the smallest contribution; rate = share whose served score fell"
        ),
        "threshold": threshold,
        "declines": len(idx),
        "tested": tested,
        "lowered": lowered,
        "rate": (lowered / tested) if tested else None,
        "median_score_drop": float(np.median(drops)) if drops else 0.0,
        "by_top_feature": {k: {"declines": v[0], "lowered": v[1]} for k, v in sorted(by_feature.items())},
    }
