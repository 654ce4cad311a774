"""LightGBM binary classifier: stratified k-fold CV with early stopping, then a final model.

Deterministic for a seed: ``deterministic=True``, a fixed ``num_threads``, ``force_row_wise=True``
and seeded folds. The final model is trained on all rows for the folds' mean best iteration.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from engine.training.errors import DataError
from engine.training.metrics import binary_metrics
from engine.training.progress import Progress, ProgressEvent, silent

__all__ = ["CVResult", "LightGBMSettings", "cross_validate", "lightgbm_params", "train_final"]


@dataclass(frozen=True)
class LightGBMSettings:
    """Hyper-parameters and the validation protocol."""

    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.8
    bagging_fraction: float = 0.8
    bagging_freq: int = 1
    lambda_l2: float = 1.0
    max_bin: int = 255
    max_rounds: int = 300
    early_stopping_rounds: int = 50
    early_stopping_fraction: float = 0.15  # of each training fold, held out to pick the iteration
    folds: int = 5
    seed: int = 42
    num_threads: int = 1  # 2 threads spin-wait on a busy 2-core machine: 10x slower, same trees
    extra: Mapping[str, Any] = field(default_factory=dict)


def lightgbm_params(s: LightGBMSettings, monotone: Sequence[int] | None = None) -> dict[str, Any]:
    """The LightGBM parameter dict for ``s`` (recorded in the card)."""
    params: dict[str, Any] = {
        "objective": "binary",
        "metric": "auc",
        "learning_rate": s.learning_rate,
        "num_leaves": s.num_leaves,
        "min_data_in_leaf": s.min_data_in_leaf,
        "feature_fraction": s.feature_fraction,
        "bagging_fraction": s.bagging_fraction,
        "bagging_freq": s.bagging_freq,
        "lambda_l2": s.lambda_l2,
        "max_bin": s.max_bin,
        "seed": s.seed,
        "deterministic": True,
        "force_row_wise": True,
        "num_threads": s.num_threads,
        "verbosity": -1,
    }
    if monotone and any(monotone):
        params["monotone_constraints"] = list(monotone)
        params["monotone_constraints_method"] = "basic"
    params.update(s.extra)
    return params


@dataclass(frozen=True)
class CVResult:
    """Out-of-fold predictions, per-fold metrics and best iterations."""

    oof: np.ndarray
    fold_of_row: np.ndarray
    fold_metrics: tuple[dict[str, float], ...]
    best_iterations: tuple[int, ...]

    @property
    def final_rounds(self) -> int:
        return max(1, int(round(float(np.mean(self.best_iterations)))))


def _dataset(x: np.ndarray, y: np.ndarray, names: Sequence[str], cats: Sequence[int],
             params: Mapping[str, Any], reference: lgb.Dataset | None = None) -> lgb.Dataset:
    return lgb.Dataset(
        x, label=y, feature_name=list(names), categorical_feature=list(cats),
        params={"max_bin": params["max_bin"], "verbosity": -1}, reference=reference, free_raw_data=False,
    )


def _ticker(progress: Progress, fold: int, folds: int, max_rounds: int) -> Any:
    def callback(env: Any) -> None:
        if env.iteration % 10 == 0 or env.iteration + 1 == env.end_iteration:
            metric = env.evaluation_result_list[0][2] if env.evaluation_result_list else None
            progress(ProgressEvent("tick", "", fold, folds, env.iteration + 1, max_rounds, metric))

    return callback


def cross_validate(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], cats: Sequence[int],
    settings: LightGBMSettings, params: Mapping[str, Any], progress: Progress = silent,
) -> CVResult:
    """Stratified k-fold CV; early stopping on a slice of each training fold, never on the scored fold.

    Each held-out fold is scored by a model that never saw it, not even to choose its iteration
    count, so the fold metrics are not optimistically biased by early stopping.
    """
    positives = int(y.sum())
    folds = settings.folds
    if min(positives, len(y) - positives) < folds:
        raise DataError(
            f"each class needs at least {folds} rows for {folds}-fold CV "
            f"(positives {positives}, negatives {len(y) - positives})", "data_too_small",
        )
    skf = StratifiedKFold(n_splits=folds, shuffle=True, random_state=settings.seed)
    oof = np.zeros(len(y), dtype=np.float64)
    fold_of_row = np.zeros(len(y), dtype=np.int32)
    metrics, best = [], []
    for k, (tr, va) in enumerate(skf.split(np.zeros(len(y)), y), start=1):
        fit, stop = train_test_split(
            tr, test_size=settings.early_stopping_fraction, stratify=y[tr], random_state=settings.seed + k,
        )
        fit, stop = np.sort(fit), np.sort(stop)
        dtrain = _dataset(x[fit], y[fit], names, cats, params)
        dvalid = _dataset(x[stop], y[stop], names, cats, params, reference=dtrain)
        booster = lgb.train(
            dict(params), dtrain, num_boost_round=settings.max_rounds, valid_sets=[dvalid],
            callbacks=[
                lgb.early_stopping(settings.early_stopping_rounds, verbose=False),
                _ticker(progress, k, folds, settings.max_rounds),
            ],
        )
        it = booster.best_iteration or booster.current_iteration()
        oof[va] = booster.predict(x[va], num_iteration=it)
        fold_of_row[va] = k
        m = binary_metrics(y[va], oof[va])
        m["best_iteration"] = float(it)
        metrics.append(m)
        best.append(int(it))
        progress(ProgressEvent(
            "cv", f"  fold {k}/{folds}: AUC {m['auc']:.4f}  KS {m['ks']:.4f}  best iteration {it}",
            k, folds, it, settings.max_rounds, m["auc"],
        ))
    return CVResult(oof, fold_of_row, tuple(metrics), tuple(best))


def train_final(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], cats: Sequence[int],
    params: Mapping[str, Any], rounds: int,
) -> lgb.Booster:
    """The final model on every row, for ``rounds`` boosting rounds."""
    return lgb.train(dict(params), _dataset(x, y, names, cats, params), num_boost_round=rounds)
