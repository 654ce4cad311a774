"""LightGBM binary classifier: stratified k-fold CV with early stopping, then a final model.

Deterministic for a seed: ``deterministic=True``, a fixed ``num_threads``, ``force_row_wise=True``
and seeded folds. The final model is trained on all rows for the folds' mean best iteration.

Each fold's iteration count is chosen without the scored fold, in one of two ways
(``LightGBMSettings.iteration_selection``): ``holdout`` stops early on a stratified slice of the
training fold and scores the fold with the model fitted on the rest; ``inner_cv`` stops early on the
mean AUC of an inner stratified k-fold CV of the training fold, then refits on the whole training
fold. On small data the holdout slice is a hundred-odd rows, its AUC curve is noise and the
chosen counts scatter (23 to 122 trees across the folds of the 1,000-row German credit data);
the inner CV costs ``inner_folds`` + 1 fits per fold but uses every training row and averages the
noise away. ``auto`` picks ``inner_cv`` below ``AUTO_INNER_CV_ROWS`` rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import lightgbm as lgb
import numpy as np
from sklearn.model_selection import StratifiedKFold, train_test_split

from engine.training.errors import DataError
from engine.training.metrics import binary_metrics
from engine.training.progress import Progress, ProgressEvent, silent

__all__ = [
    "AUTO_INNER_CV_ROWS", "CVResult", "LightGBMSettings", "check_splittable", "cross_validate", "iteration_selection", "lightgbm_params",
    "train_final",
]

AUTO_INNER_CV_ROWS = 10_000  # below this, ``auto`` chooses iteration counts by inner CV


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
    early_stopping_fraction: float = 0.15  # of each training fold, held out to pick the iteration (holdout)
    iteration_selection: Literal["holdout", "inner_cv", "auto"] = "holdout"  # see the module docstring
    inner_folds: int = 3  # inner_cv: folds of the inner CV on each training fold
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
        return max(1, round(float(np.mean(self.best_iterations))))


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


def iteration_selection(settings: LightGBMSettings, rows: int) -> str:
    """How each fold's iteration count is chosen for ``rows`` rows: ``holdout`` or ``inner_cv``."""
    mode = settings.iteration_selection
    if mode == "auto":
        return "inner_cv" if rows < AUTO_INNER_CV_ROWS else "holdout"
    if mode not in ("holdout", "inner_cv"):
        raise DataError(f"iteration selection must be holdout, inner_cv or auto, not {mode!r}", "bad_option")
    return mode


def fitting_rows(settings: LightGBMSettings, rows: int) -> int:
    """About how many rows each CV model's trees are grown on: a training fold, less the early-stopping rows."""
    train = rows * (settings.folds - 1) // settings.folds
    if iteration_selection(settings, rows) == "inner_cv":
        return train * (settings.inner_folds - 1) // settings.inner_folds
    return int(train * (1 - settings.early_stopping_fraction))


def check_splittable(rows: int, settings: LightGBMSettings, min_data_in_leaf: Sequence[int]) -> None:
    """Refuse (DataError ``data_too_small``) data on which no tree can split under any of ``min_data_in_leaf``.

    A split leaves at least ``min_data_in_leaf`` rows on each side (LightGBM's leaf constraint), so
    a tree grown on fewer than twice that many rows is a single leaf: every score the same.
    """
    fit = fitting_rows(settings, rows)
    smallest = min(min_data_in_leaf)
    if fit < 2 * smallest:
        how = ("less an inner " f"{settings.inner_folds}-fold CV's held-out part"
               if iteration_selection(settings, rows) == "inner_cv"
               else f"less a {settings.early_stopping_fraction:.0%} early-stopping slice")
        raise DataError(
            f"{rows} rows are too few: each cross-validation tree is grown on about {fit} rows (a "
            f"{settings.folds}-fold training fold {how}) and a split needs 2 x min_data_in_leaf = {2 * smallest}; "
            f"use more data, or --no-tune with --min-data-in-leaf at most {max(1, fit // 2)}", "data_too_small",
        )


def _fit_holdout(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], cats: Sequence[int], settings: LightGBMSettings,
    params: Mapping[str, Any], progress: Progress, k: int,
) -> tuple[lgb.Booster, int]:
    """Fit on the training fold less a stratified slice; early stopping on that slice."""
    fit, stop = train_test_split(
        np.arange(len(y)), test_size=settings.early_stopping_fraction, stratify=y, random_state=settings.seed + k,
    )
    fit, stop = np.sort(fit), np.sort(stop)
    dtrain = _dataset(x[fit], y[fit], names, cats, params)
    dvalid = _dataset(x[stop], y[stop], names, cats, params, reference=dtrain)
    booster = lgb.train(
        dict(params), dtrain, num_boost_round=settings.max_rounds, valid_sets=[dvalid],
        callbacks=[
            lgb.early_stopping(settings.early_stopping_rounds, verbose=False),
            _ticker(progress, k, settings.folds, settings.max_rounds),
        ],
    )
    return booster, int(booster.best_iteration or booster.current_iteration())


def _fit_inner_cv(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], cats: Sequence[int], settings: LightGBMSettings,
    params: Mapping[str, Any], progress: Progress, k: int,
) -> tuple[lgb.Booster, int]:
    """Iteration count by early stopping on an inner CV's mean AUC, then a refit on the whole training fold."""
    inner = min(settings.inner_folds, int(y.sum()), int(len(y) - y.sum()))
    if inner < 2:
        raise DataError(f"fold {k}: too few rows of a class for an inner CV", "data_too_small")
    splits = StratifiedKFold(n_splits=inner, shuffle=True, random_state=settings.seed + k)
    history = lgb.cv(
        {**params, "metric": "auc"}, _dataset(x, y, names, cats, params), num_boost_round=settings.max_rounds,
        folds=list(splits.split(np.zeros(len(y)), y)),
        callbacks=[
            lgb.early_stopping(settings.early_stopping_rounds, verbose=False),
            _ticker(progress, k, settings.folds, settings.max_rounds),
        ],
    )
    aucs = cast("list[float]", history["valid auc-mean"])  # a list: a CVBooster only with return_cvbooster=True
    it = max(1, len(aucs))  # lgb.cv truncates the history at the best iteration
    return lgb.train(dict(params), _dataset(x, y, names, cats, params), num_boost_round=it), it


def cross_validate(
    x: np.ndarray, y: np.ndarray, names: Sequence[str], cats: Sequence[int],
    settings: LightGBMSettings, params: Mapping[str, Any], progress: Progress = silent,
) -> CVResult:
    """Stratified k-fold CV; iteration counts chosen within each training fold, never on the scored fold.

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
    mode = iteration_selection(settings, len(y))
    for k, (tr, va) in enumerate(skf.split(np.zeros(len(y)), y), start=1):
        if mode == "inner_cv":
            booster, it = _fit_inner_cv(x[tr], y[tr], names, cats, settings, params, progress, k)
        else:
            booster, it = _fit_holdout(x[tr], y[tr], names, cats, settings, params, progress, k)
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
