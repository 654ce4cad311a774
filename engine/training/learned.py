"""Did the model learn anything? Refuse a model that cannot rank, flag one that ranks no better than chance.

- **Refused** (``model_learned_nothing``): the final model gives every training row the same score,
  or every cross-validation fold's model gave its held-out rows one score (each fold AUC exactly
  0.5). Such a model ranks nothing; a flow would use a constant.
- **Flagged**: the pooled out-of-fold AUC is within sampling noise of 0.5: its 95% interval,
  ``AUC ± 1.96 SE`` with the standard error of Hanley & McNeil (1982, "The meaning and use of the
  area under a receiver operating characteristic (ROC) curve", Radiology 143:29-36), reaches 0.5.
  The model is written, with the warning in the command's output and in ``metrics.warnings``.
"""

from __future__ import annotations

import math

import numpy as np

from engine.training.errors import DataError
from engine.training.lightgbm_trainer import CVResult

__all__ = ["Z_95", "auc_standard_error", "chance_warning", "refuse_if_constant"]

Z_95 = 1.959964  # two-sided 95% normal quantile


def auc_standard_error(auc: float, positives: int, negatives: int) -> float:
    """Hanley & McNeil's standard error of an AUC from ``positives`` and ``negatives`` rows.

    ``SE^2 = (A(1-A) + (n1-1)(Q1-A^2) + (n0-1)(Q2-A^2)) / (n1 n0)`` with ``Q1 = A/(2-A)`` and
    ``Q2 = 2A^2/(1+A)``. Raises ValueError when either count is zero.
    """
    if positives <= 0 or negatives <= 0:
        raise ValueError("an AUC needs at least one positive and one negative row")
    a = auc
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (positives - 1) * (q1 - a * a) + (negatives - 1) * (q2 - a * a)) / (positives * negatives)
    return math.sqrt(max(var, 0.0))


def refuse_if_constant(final_scores: np.ndarray, cv: CVResult) -> None:
    """Raise DataError ``model_learned_nothing`` when the final model or every fold's model scores a constant."""
    folds = np.unique(cv.fold_of_row)
    constant_folds = all(np.ptp(cv.oof[cv.fold_of_row == k]) == 0 for k in folds)
    constant_final = bool(np.ptp(final_scores) == 0)
    if constant_final or constant_folds:
        what = (f"the final model gives all {len(final_scores)} training rows the same score "
                f"({float(final_scores[0]):.4f})" if constant_final
                else "every cross-validation fold's model gives its held-out rows one score (each fold AUC 0.5)")
        raise DataError(
            f"the model learned nothing: {what}; no tree split or coefficient separates the rows "
            "(too few rows, or no column related to the target); nothing was written", "model_learned_nothing",
        )


def chance_warning(auc: float, y: np.ndarray) -> str | None:
    """A warning when the pooled out-of-fold ``auc`` on labels ``y`` is not distinguishable from 0.5, else None."""
    positives = int(np.sum(y))
    negatives = int(len(y) - positives)
    se = auc_standard_error(auc, positives, negatives)
    low, high = auc - Z_95 * se, auc + Z_95 * se
    if low > 0.5:
        return None
    return (f"out-of-fold AUC {auc:.3f} is not distinguishable from chance (95% interval {low:.3f}-{high:.3f}, "
            f"Hanley-McNeil, {positives} positive and {negatives} negative rows): the model may have learned nothing")
