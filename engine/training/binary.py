"""Training a LightGBM binary classifier end to end: CV, final model, ONNX, parity, card."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from engine.models.card import ModelCard
from engine.models.encoding import LIGHTGBM_ZERO, FeatureSpec
from engine.models.runtime import load_model
from engine.training.artifacts import file_sha256, library_versions, now_iso, staged_dir, write_model_dir, write_training_baseline
from engine.training.dataset import DataOptions, Prepared, card_data_notes, prepare, reading_messages
from engine.training.errors import DataError, TrainingError
from engine.training.fairness import age_check, fairness_report
from engine.training.faithfulness import faithfulness
from engine.training.learned import chance_warning, refuse_if_constant
from engine.training.lightgbm_trainer import (
    CVResult,
    LightGBMSettings,
    check_splittable,
    cross_validate,
    iteration_selection,
    lightgbm_params,
    train_final,
)
from engine.training.metrics import binary_metrics, calibration_table
from engine.training.onnx_export import PARITY_TOLERANCE, lightgbm_to_onnx, max_abs_diff, with_missing
from engine.training.probes import lightgbm_splits, probe_base, probe_rows
from engine.training.progress import Progress, ProgressEvent, silent
from engine.training.report import fairness_section, faithfulness_section, write_report

__all__ = ["ModelSpec", "TrainedModel", "card_features", "train_lightgbm"]

MISSING_LIGHTGBM = (
    "Missing inputs (None, NaN, unknown categories) are encoded as NaN and passed to the trees: each "
    "split sends NaN along the default direction LightGBM learned for it (for features that had no "
    "missing values in training, as the value 0). No imputation."
)


@dataclass(frozen=True)
class ModelSpec:
    """What to build: the data options plus the model's identity and hyper-parameters."""

    name: str
    data: DataOptions
    version: str = "1"
    description: str = ""
    output_meaning: str = ""
    data_label: str | None = None  # how the card names the data file (default: the path as given)
    monotone: Mapping[str, int] = field(default_factory=dict)
    settings: LightGBMSettings = field(default_factory=LightGBMSettings)
    tuning_grid: tuple[Mapping[str, Any], ...] = ()  # settings overrides to choose from by CV AUC
    cutoffs: tuple[float, ...] = ()  # score cut-offs for the fairness report (default 0.5 with --protected/--age)


@dataclass(frozen=True)
class TrainedModel:
    """A trained, exported, parity-checked model, ready to be written."""

    card: dict[str, Any]
    files: Mapping[str, bytes]
    prepared: Prepared
    cv: CVResult
    oof_metrics: Mapping[str, float]

    def write(self, out: Path, report: bool = False) -> ModelCard:
        """Write the model directory (``model.onnx``, ``model.txt``, ``card.json``).

        With ``report``, the served model's reason-code faithfulness is measured and recorded in the
        card, and ``report.md`` with its ROC and histogram PNGs is written beside it.
        """
        out = Path(out)
        with staged_dir(out) as tmp:  # nothing appears at ``out`` unless every step below succeeds
            card = write_model_dir(tmp, self.card, self.files, previous=out)
            p = self.prepared
            write_training_baseline(tmp, p.x)  # the drift monitor's bins (engine.monitor)
            if not report:
                return card
            quantile = max(0.9, 1.0 - float(p.y.mean()))
            faith = faithfulness(load_model(tmp), p.x, quantile=quantile, seed=int(self.card["training"]["seed"]))
            doc = card.model_dump(mode="json", by_alias=True, exclude_none=True)
            doc["metrics"]["faithfulness"] = faith
            card = write_model_dir(tmp, doc, self.files, previous=out)
            sections = [faithfulness_section(faith)]
            if card.fairness is not None:
                sections.append(fairness_section(card.fairness))
            write_report(tmp, card.model_dump(mode="json", by_alias=True, exclude_none=True), p.y, self.cv.oof,
                         self.cv.fold_of_row, extra_sections=sections)
        return card


def card_features(specs: tuple[FeatureSpec, ...], columns: Mapping[str, str], x: np.ndarray | None = None) -> list[dict[str, Any]]:
    """The card's ``features`` list for ``specs``; with the training matrix ``x`` (rows, n), each
    feature's count of missing (NaN) training rows as ``missing_in_training``."""
    out = []
    for j, s in enumerate(specs):
        f: dict[str, Any] = {"name": s.name, "type": s.type}
        if s.type == "categorical":
            f["categories"] = list(s.categories)
            f["encoding"] = "ordinal"
        src = columns.get(s.name)
        if src is not None:
            f["description"] = src if src.startswith("derived:") else f"CSV column {src}"
        if x is not None:
            f["missing_in_training"] = int(np.isnan(x[:, j]).sum())
        out.append(f)
    return out


def _monotone_vector(spec: ModelSpec, prepared: Prepared) -> list[int]:
    names = prepared.names
    by_column = {col: feat for feat, col in prepared.columns.items()}
    monotone = {by_column.get(f, f): d for f, d in spec.monotone.items()}  # CSV column or feature name
    age = by_column.get(spec.data.age) if spec.data.age else None
    if age is not None:  # Reg B: risk may not rise with age (engine.training.fairness)
        if monotone.get(age, -1) != -1:
            raise DataError(f"--age {spec.data.age}: the model must be non-increasing in age, not --monotone +1",
                            "bad_option")
        monotone[age] = -1
    unknown = [f for f in monotone if f not in names]
    if unknown:
        raise DataError(f"--monotone names unknown features: {', '.join(unknown)}", "data_unknown_column")
    for f, d in monotone.items():
        if d not in (-1, 1):
            raise DataError(f"--monotone {f}: direction must be +1 or -1, not {d}", "bad_option")
        if dict(zip(names, prepared.specs, strict=True))[f].type == "categorical":
            raise DataError(f"--monotone {f}: a categorical feature cannot be monotone", "bad_option")
    return [int(monotone.get(n, 0)) for n in names]


TUNING_GRID: tuple[dict[str, Any], ...] = tuple(
    {"num_leaves": leaves, "min_data_in_leaf": min_leaf, "feature_fraction": ff}
    for leaves in (7, 15, 31) for min_leaf in (20, 50) for ff in (0.6, 0.9)
)


LIGHTGBM_ONE_VS_REST_DEFAULT = 4  # LightGBM's max_cat_to_onehot: features with more bins are split in groups


def one_vs_rest_point(prepared: Prepared) -> dict[str, Any]:
    """The settings override that makes every categorical split one category against the rest.

    Empty when no categorical feature has more categories than LightGBM already splits one-vs-rest.
    LightGBM groups the categories of a larger feature by their gradient statistics, which can fit
    noise on small data (the 10 ``purpose`` values of the 1,000-row German credit data).
    """
    most = max((len(s.categories) for s in prepared.specs if s.type == "categorical"), default=0)
    if most + 1 <= LIGHTGBM_ONE_VS_REST_DEFAULT:
        return {}
    # LightGBM compares max_cat_to_onehot with the feature's bin count: its categories plus one bin
    # (measured: 10 categories make 11 bins, with or without missing values).
    return {"extra": {"max_cat_to_onehot": most + 1}}


def _tune(spec: ModelSpec, prepared: Prepared, monotone: list[int], progress: Progress) -> tuple[LightGBMSettings, list[dict[str, Any]]]:
    """Pick the grid point with the best mean CV AUC (same folds as the reported CV).

    Then, when the data have a categorical feature LightGBM would split in groups, the winner is
    tried once more with one-vs-rest categorical splits and kept only if its CV AUC is higher.
    """
    x, y, names, cats = prepared.x, prepared.y.astype(np.float64), prepared.names, prepared.categorical_indices
    results = []
    best: tuple[float, LightGBMSettings, Mapping[str, Any]] | None = None

    def score(point: Mapping[str, Any], s: LightGBMSettings) -> None:
        nonlocal best
        cv = cross_validate(x, y, names, cats, s, lightgbm_params(s, monotone))
        auc = _mean_metric(cv, "auc")
        shown = {k: v for k, v in point.items() if k != "extra"} | dict(point.get("extra", {}))
        results.append({**shown, "cv_auc": auc})
        progress(ProgressEvent("tune", f"  tuning {shown}: CV AUC {auc:.4f}"))
        if best is None or auc > best[0]:
            best = (auc, s, point)

    for point in spec.tuning_grid:
        score(point, replace(spec.settings, **point))
    assert best is not None
    one_vs_rest = one_vs_rest_point(prepared)
    if one_vs_rest:
        winner, extra = best[2], {**best[1].extra, **one_vs_rest["extra"]}
        score({**winner, "extra": extra}, replace(best[1], extra=extra))
    return best[1], results


# Long (69 lines): the training steps in the order docs/training.md gives them, each one call.
def train_lightgbm(spec: ModelSpec, progress: Progress = silent) -> TrainedModel:
    """Prepare data, (optionally tune,) cross-validate, train the final model, export to ONNX, check parity."""
    prepared = prepare(spec.data)
    for line in reading_messages(prepared):
        progress(ProgressEvent("data", f"  {line}"))
    monotone = _monotone_vector(spec, prepared)
    x, y, names, cats = prepared.x, prepared.y.astype(np.float64), prepared.names, prepared.categorical_indices
    check_splittable(len(y), spec.settings, [p.get("min_data_in_leaf", spec.settings.min_data_in_leaf)
                                             for p in spec.tuning_grid] or [spec.settings.min_data_in_leaf])
    tuning: list[dict[str, Any]] = []
    s = spec.settings
    if spec.tuning_grid:
        more = " (+1 with one-vs-rest categorical splits)" if one_vs_rest_point(prepared) else ""
        progress(ProgressEvent("tune", f"{spec.name}: tuning over {len(spec.tuning_grid)} configurations{more}"))
        s, tuning = _tune(spec, prepared, monotone, progress)
    params = lightgbm_params(s, monotone)
    progress(ProgressEvent(
        "start",
        f"{spec.name}: {len(y)} rows ({int(y.sum())} positive), {len(names)} features; "
        f"{s.folds}-fold stratified CV, early stopping after {s.early_stopping_rounds} rounds"
        + (f" on an inner {s.inner_folds}-fold CV of each training fold"
           if iteration_selection(s, len(y)) == "inner_cv" else ""),
    ))
    cv = cross_validate(x, y, names, cats, s, params, progress)
    oof = binary_metrics(y, cv.oof)
    progress(ProgressEvent("cv", f"  out-of-fold: AUC {oof['auc']:.4f}  KS {oof['ks']:.4f}  Gini {oof['gini']:.4f}"))
    rounds = cv.final_rounds
    progress(ProgressEvent("final", f"  final model on all {len(y)} rows, {rounds} trees"))
    booster = train_final(x, y, names, cats, params, rounds)
    text = booster.model_to_string()
    native = text.encode("utf-8")
    # Parity is checked against the booster as written to model.txt (what serves the reasons): the
    # text format clamps an infinite threshold (a "missing or not" split) to 1e300 (LightGBM's
    # Common::AvoidInf), and the ONNX graph is converted from the same text.
    booster = lgb.Booster(model_str=text)
    refuse_if_constant(np.asarray(booster.predict(x), dtype=np.float64), cv)
    onnx_bytes = lightgbm_to_onnx(booster, len(names))

    def predict(z: np.ndarray) -> np.ndarray:
        return np.asarray(booster.predict(z), dtype=np.float64)

    diff = max_abs_diff(predict, onnx_bytes, x, "probabilities", 1, "the training rows")
    missing = with_missing(x, s.seed)
    diff_missing = max_abs_diff(predict, onnx_bytes, missing, "probabilities", 1, "training rows with 10% cells missing")
    # The rows as the server sends them: LightGBM reads |x| <= 1e-35 as 0 (engine.models.encoding.LIGHTGBM_ZERO).
    probes = flush_zero(probe_rows(lightgbm_splits(booster), probe_base(x)))
    diff_thresholds = max_abs_diff(predict, onnx_bytes, probes, "probabilities", 1,
                                   f"{len(probes)} rows on each side of every split threshold")
    progress(ProgressEvent("parity", f"  ONNX vs LightGBM: max |diff| {diff:.2e} (with missing cells {diff_missing:.2e}, "
                                     f"at {len(probes)} threshold probes {diff_thresholds:.2e})"))
    card = _card(replace(spec, settings=s), prepared, params, cv, oof, booster, diff, diff_missing)
    fairness = _fairness(spec, prepared, cv, predict, progress)
    if fairness is not None:
        card["fairness"] = fairness
    card["parity"]["threshold_probes"] = len(probes)
    card["parity"]["max_abs_diff_at_thresholds"] = diff_thresholds
    warning = chance_warning(oof["auc"], prepared.y)
    if warning:
        card["metrics"]["warnings"] = [warning]
    if iteration_selection(s, len(y)) != "holdout":
        card["training"]["iteration_selection"] = {"method": "inner_cv", "inner_folds": s.inner_folds}
    if tuning:
        card["training"]["tuning"] = {
            "grid": tuning,
            "note": "configuration chosen by mean CV AUC on the same folds as the reported metrics "
                    "(a mild optimistic bias, like any CV-based selection)"
                    + ("; the best grid point was also tried with one-vs-rest categorical splits "
                       "(max_cat_to_onehot), as LightGBM splits the categories of larger features in groups"
                       if len(tuning) > len(spec.tuning_grid) else ""),
        }
    return TrainedModel(card=card, files={"model.onnx": onnx_bytes, "model.txt": native},
                        prepared=prepared, cv=cv, oof_metrics=oof)


AGE_CHECK_ROWS = 2000  # rows of the training data the Reg B age check scores at every age
DEFAULT_CUTOFF = 0.5


def _fairness(spec: ModelSpec, p: Prepared, cv: CVResult, predict: Any, progress: Progress) -> dict[str, Any] | None:
    """The card's fairness section (None without --protected/--age); raises TrainingError
    ``age_rule_violated`` when the final model scores some applicant worse at 62+ than younger."""
    d = spec.data
    if not d.protected and not d.age:
        return None
    age_result = None
    if d.age:
        name = next(f for f, col in p.columns.items() if col == d.age)
        j = p.names.index(name)
        rows = p.x[np.random.default_rng(spec.settings.seed).permutation(len(p.x))[:AGE_CHECK_ROWS]]
        observed = p.x[:, j][~np.isnan(p.x[:, j])]
        ages = sorted({float(a) for a in np.unique(observed)} | {18.0, 61.0, 62.0, 99.0})
        age_result = age_check(predict, rows, j, ages)
        progress(ProgressEvent("fairness", f"  Reg B age check: {age_result['violations']} of {age_result['rows']} "
                                           f"rows score worse at 62+ ({'passed' if age_result['passed'] else 'FAILED'})"))
        if not age_result["passed"]:
            raise TrainingError(
                f"the model scores {age_result['violations']} applicants worse at age 62 or over than at a younger age "
                f"(by up to {age_result['max_excess']:.4f}); Reg B 12 CFR 1002.6(b)(2)(ii) forbids it", "age_rule_violated",
            )
    report = fairness_report(p.attributes, p.y, cv.oof, spec.cutoffs or (DEFAULT_CUTOFF,), d.age, age_result)
    report = {"protected": list(d.protected), "age_column": d.age, **report}
    for f in report["flagged"]:
        progress(ProgressEvent("fairness", f"  AIR {f['air']:.3f} < 0.8: {f['attribute']} = {f['group']} at cut-off "
                                           f"{f['cutoff']:g} (reference {f['reference']})"))
    return report


def flush_zero(x: np.ndarray) -> np.ndarray:
    """``x`` with values within ±1e-35 set to 0, as LightGBM and ``Model.encode`` read them."""
    return np.where(np.abs(x) <= LIGHTGBM_ZERO, 0.0, x)


def _mean_metric(cv: CVResult, key: str) -> float:
    return float(np.mean([m[key] for m in cv.fold_metrics]))


def _validation_note(s: LightGBMSettings, rows: int) -> str:
    if iteration_selection(s, rows) == "inner_cv":
        return (
            f"Iteration count of each fold chosen by early stopping ({s.early_stopping_rounds} rounds) on the mean "
            f"AUC of an inner stratified {s.inner_folds}-fold CV of the training fold, then refitted on the whole "
            "training fold; the scored fold is never used for fitting or for choosing the iteration count."
        )
    return (
        f"Early stopping ({s.early_stopping_rounds} rounds) on a stratified "
        f"{s.early_stopping_fraction:.0%} of each training fold; the scored fold is never "
        "used for fitting or for choosing the iteration count."
    )


# Long (65 lines): one literal, the model card, in the order of its schema.
def _card(spec: ModelSpec, p: Prepared, params: dict[str, Any], cv: CVResult, oof: Mapping[str, float],
          booster: lgb.Booster, diff: float, diff_missing: float) -> dict[str, Any]:
    d = spec.data
    meaning = spec.output_meaning or f"probability that {d.target} is {d.positive!r}"
    return {
        "schema": "verdict.model_card/v1",
        "name": spec.name,
        "version": spec.version,
        "algorithm": "lightgbm",
        "task": "binary_classification",
        "description": spec.description or f"LightGBM binary classifier of {d.target} = {d.positive!r}",
        "output": {"meaning": meaning, "onnx_output": "probabilities", "index": 1},
        "features": card_features(p.specs, p.columns, p.x),
        "missing_values": MISSING_LIGHTGBM,
        "artifacts": {
            "onnx": {"file": "model.onnx", "sha256": ""},
            "explainer": {"file": "model.txt", "sha256": "", "kind": "lightgbm_treeshap"},
        },
        "target": {"column": d.target, "positive": d.positive},
        "data": {
            "file": spec.data_label or str(d.data),
            "sha256": file_sha256(d.data),
            "rows": len(p.y),
            "positives": int(p.y.sum()),
            "rows_in_file": p.table.rows,
            "rows_dropped_missing_target": p.dropped_missing_target,
            "labels": dict(sorted(p.labels.items())),
            "columns": dict(p.columns),
        } | card_data_notes(p),
        "training": {
            "params": params,
            "seed": spec.settings.seed,
            "cv_folds": spec.settings.folds,
            "num_trees": booster.num_trees(),
            "max_rounds": spec.settings.max_rounds,
            "early_stopping_rounds": spec.settings.early_stopping_rounds,
            "best_iterations": list(cv.best_iterations),
            "final_rounds": "mean of the folds' best iterations",
            "validation_note": _validation_note(spec.settings, len(p.y)),
        },
        "metrics": {
            "cv_auc": _mean_metric(cv, "auc"),
            "cv_ks": _mean_metric(cv, "ks"),
            "cv_gini": _mean_metric(cv, "gini"),
            "cv_brier": _mean_metric(cv, "brier"),
            "cv_logloss": _mean_metric(cv, "logloss"),
            "cv_auc_std": float(np.std([m["auc"] for m in cv.fold_metrics])),
            "oof": dict(oof),
            "folds": [dict(m) for m in cv.fold_metrics],
            "calibration_oof": calibration_table(p.y, cv.oof),
            "calibration_folds": [
                calibration_table(p.y[cv.fold_of_row == k], cv.oof[cv.fold_of_row == k], bins=5)
                for k in range(1, spec.settings.folds + 1)
            ],
            "note": "cv_* are means over the held-out folds; oof pools the out-of-fold predictions",
        },
        "parity": {
            "rows": len(p.y),
            "max_abs_diff": diff,
            "max_abs_diff_with_missing": diff_missing,
            "tolerance": PARITY_TOLERANCE,
        },
        "libraries": library_versions(),
        "created_at": now_iso(),
    }
