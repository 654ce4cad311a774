"""An anomaly detector for operational risk: IsolationForest over account behaviour, exported with skl2onnx.

The served score is the isolation-forest anomaly score of Liu et al. (2008), ``2^(-E[h(x)]/c(psi))``
in (0, 1]: about 0.5 for ordinary behaviour, towards 1 for behaviour that is easy to isolate. It
equals ``-IsolationForest.score_samples`` of the fitted scikit-learn pipeline (median imputation,
then the forest). The ONNX graph is built directly (Imputer + one TreeEnsembleRegressor) because
skl2onnx's converter emits a graph of thousands of nodes that takes milliseconds per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper
from sklearn.ensemble import IsolationForest
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline

from engine.models.card import ModelCard
from engine.training.artifacts import file_sha256, library_versions, now_iso, staged_dir, write_model_dir, write_training_baseline
from engine.training.binary import card_features
from engine.training.dataset import DataOptions, Prepared, card_data_notes, prepare, reading_messages
from engine.training.derived import DerivedFeature
from engine.training.metrics import auc
from engine.training.onnx_export import INPUT_NAME, PARITY_TOLERANCE, canonical_bytes, max_abs_diff, with_missing
from engine.training.probes import probe_base, probe_rows, sklearn_splits
from engine.training.progress import Progress, ProgressEvent, silent
from engine.training.report import write_report

__all__ = ["AnomalySpec", "TrainedAnomaly", "train_anomaly"]

OUTPUT = "anomaly_score"
MISSING_ANOMALY = (
    "Missing inputs (None, NaN, unknown categories) are encoded as NaN and replaced inside the ONNX graph by "
    "the feature's training median before the forest."
)


@dataclass(frozen=True)
class AnomalySpec:
    """What to build: data (the label, if any, is used only to report how anomalies relate to it)."""

    name: str
    data: Path
    features: tuple[str, ...]
    derived: tuple[DerivedFeature, ...] = ()
    label: str | None = None  # optional column to evaluate against, never used for fitting
    label_positive: str = "1"
    version: str = "1"
    description: str = ""
    data_label: str | None = None
    n_estimators: int = 100
    max_samples: int = 256
    seed: int = 42


@dataclass(frozen=True)
class TrainedAnomaly:
    """A fitted, exported, parity-checked anomaly detector."""

    card: dict[str, Any]
    files: dict[str, bytes]
    prepared: Prepared
    scores: np.ndarray

    def write(self, out: Path, report: bool = False) -> ModelCard:
        """Write ``model.onnx`` and ``card.json`` (and the report) into ``out``."""
        with staged_dir(Path(out)) as tmp:  # nothing appears at ``out`` unless every step succeeds
            card = write_model_dir(tmp, self.card, self.files, previous=Path(out))
            write_training_baseline(tmp, self.prepared.x)  # the drift monitor's bins (engine.monitor)
            if report:
                y = self.prepared.y if self.card["metrics"].get("label_auc") is not None else None
                write_report(tmp, card.model_dump(mode="json", by_alias=True, exclude_none=True), y, self.scores, None)
        return card


def _c(n: np.ndarray) -> np.ndarray:
    """Average path length of an unsuccessful BST search over n points (Liu et al.), vectorised."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    out[n == 2] = 1.0
    big = n > 2
    out[big] = 2.0 * (np.log(n[big] - 1.0) + np.euler_gamma) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def _float32_floor(t: float) -> np.float32:
    """The largest float32 <= t: for float32 x, ``x <= t`` iff ``x <= _float32_floor(t)``."""
    f = np.float32(t)
    return np.nextafter(f, np.float32(-np.inf)) if float(f) > t else f


def _to_onnx(pipe: Pipeline, n: int) -> bytes:
    """One Imputer, one TreeEnsembleRegressor summing path lengths, then 2^(-sum / (T c(psi))).

    skl2onnx's IsolationForest converter emits thousands of nodes (1-3 ms per row); this graph
    computes the same score in one tree-ensemble node. Parity with scikit-learn is checked.
    """
    imp: SimpleImputer = pipe.named_steps["impute"]
    forest: IsolationForest = pipe.named_steps["forest"]
    if forest.max_features != 1.0 or any(len(f) != n for f in forest.estimators_features_):
        raise ValueError("feature subsampling is not supported by the exporter")
    attrs: dict[str, Any] = {k: [] for k in (  # lists of node attributes, passed to make_node as keywords
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        "target_treeids", "target_nodeids", "target_ids", "target_weights")}
    for t, est in enumerate(forest.estimators_):
        tree = est.tree_
        depth = np.zeros(tree.node_count, dtype=np.float64)
        for node in range(tree.node_count):  # children always follow their parent
            for child in (tree.children_left[node], tree.children_right[node]):
                if child != -1:
                    depth[child] = depth[node] + 1
        path = depth + _c(tree.n_node_samples)  # decision path length (depth + 1) + c(n) - 1
        for node in range(tree.node_count):
            leaf = tree.children_left[node] == -1
            attrs["nodes_treeids"].append(t)
            attrs["nodes_nodeids"].append(node)
            attrs["nodes_featureids"].append(0 if leaf else int(tree.feature[node]))
            attrs["nodes_values"].append(0.0 if leaf else float(_float32_floor(float(tree.threshold[node]))))
            attrs["nodes_modes"].append("LEAF" if leaf else "BRANCH_LEQ")
            attrs["nodes_truenodeids"].append(0 if leaf else int(tree.children_left[node]))
            attrs["nodes_falsenodeids"].append(0 if leaf else int(tree.children_right[node]))
            attrs["nodes_missing_value_tracks_true"].append(0)
            if leaf:
                attrs["target_treeids"].append(t)
                attrs["target_nodeids"].append(node)
                attrs["target_ids"].append(0)
                attrs["target_weights"].append(float(path[node]))
    scale = -1.0 / (len(forest.estimators_) * float(_c(np.array([forest.max_samples_]))[0]))
    ml = "ai.onnx.ml"
    nodes = [
        helper.make_node("Imputer", [INPUT_NAME], ["imputed"], domain=ml, name="impute",
                         imputed_value_floats=[float(v) for v in imp.statistics_], replaced_value_float=float("nan")),
        helper.make_node("TreeEnsembleRegressor", ["imputed"], ["path_length_sum"], domain=ml, name="forest",
                         n_targets=1, aggregate_function="SUM", post_transform="NONE", **attrs),
        helper.make_node("Mul", ["path_length_sum", "neg_inv_norm"], ["exponent"], name="normalise"),
        helper.make_node("Pow", ["two", "exponent"], [OUTPUT], name="anomaly_score"),
    ]
    graph = helper.make_graph(
        nodes, "verdict_isolation_forest",
        [helper.make_tensor_value_info(INPUT_NAME, onnx.TensorProto.FLOAT, ["N", n])],
        [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, ["N", 1])],
        initializer=[numpy_helper.from_array(np.array([scale], dtype=np.float32), "neg_inv_norm"),
                     numpy_helper.from_array(np.array([2.0], dtype=np.float32), "two")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 15), helper.make_opsetid(ml, 3)],
                              producer_name="verdict")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return canonical_bytes(model, "verdict_isolation_forest")


# Long (62 lines): the training steps in the order docs/training.md gives them, each one call.
def train_anomaly(spec: AnomalySpec, progress: Progress = silent) -> TrainedAnomaly:
    """Fit the forest on every row, export it, check parity, describe the score distribution."""
    opts = DataOptions(spec.data, target=spec.label or "", positive=spec.label_positive,
                       features=spec.features, derived=spec.derived)
    p = prepare(opts)
    for line in reading_messages(p):
        progress(ProgressEvent("data", f"  {line}"))
    x = p.x
    progress(ProgressEvent("start", f"{spec.name}: IsolationForest on {len(x)} rows, {x.shape[1]} features"))
    pipe = Pipeline([
        ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
        ("forest", IsolationForest(n_estimators=spec.n_estimators, max_samples=spec.max_samples,
                                   random_state=spec.seed)),
    ]).fit(x)
    onnx_bytes = _to_onnx(pipe, x.shape[1])

    def native(z: np.ndarray) -> np.ndarray:
        scores: np.ndarray = -pipe.score_samples(z)
        return scores

    diff = max_abs_diff(native, onnx_bytes, x, OUTPUT, 0, "the training rows")
    diff_missing = max_abs_diff(native, onnx_bytes, with_missing(x, spec.seed), OUTPUT, 0,
                                "training rows with 10% cells missing")
    forest = pipe.named_steps["forest"]
    probes = probe_rows([sklearn_splits(e.tree_) for e in forest.estimators_], probe_base(x))
    diff_thresholds = max_abs_diff(native, onnx_bytes, probes, OUTPUT, 0,
                                   f"{len(probes)} rows on each side of every split threshold")
    progress(ProgressEvent("parity", f"  ONNX vs scikit-learn: max |diff| {diff:.2e} (with missing {diff_missing:.2e}, "
                                     f"at {len(probes)} threshold probes {diff_thresholds:.2e})"))
    scores = native(x)
    qs = {f"p{q}": float(np.quantile(scores, q / 100)) for q in (50, 90, 99, 99.9)}
    label_auc = auc(p.y, scores) if spec.label else None
    card: dict[str, Any] = {
        "schema": "verdict.model_card/v1",
        "name": spec.name,
        "version": spec.version,
        "algorithm": "isolation_forest",
        "task": "anomaly_detection",
        "description": spec.description or "IsolationForest anomaly score",
        "output": {"meaning": "isolation-forest anomaly score in (0, 1]: ~0.5 ordinary, towards 1 unusual",
                   "onnx_output": OUTPUT, "index": 0},
        "features": card_features(p.specs, p.columns),
        "missing_values": MISSING_ANOMALY,
        "artifacts": {"onnx": {"file": "model.onnx", "sha256": ""}},
        "data": {"file": spec.data_label or str(spec.data), "sha256": file_sha256(spec.data), "rows": len(x),
                 "columns": dict(p.columns)} | card_data_notes(p),
        "training": {"params": {"n_estimators": spec.n_estimators, "max_samples": spec.max_samples,
                                "contamination": "auto", "imputer": "median"},
                     "seed": spec.seed, "num_trees": spec.n_estimators,
                     "fitted_on": "every row, unsupervised (labels never used for fitting)"},
        "metrics": {"score_quantiles": qs,
                    "label_auc": label_auc,
                    "label_note": (f"AUC of the anomaly score against {spec.label} = {spec.label_positive!r} "
                                   "(evaluation only)") if spec.label else None},
        "parity": {"rows": len(x), "max_abs_diff": diff, "max_abs_diff_with_missing": diff_missing,
                   "threshold_probes": len(probes), "max_abs_diff_at_thresholds": diff_thresholds,
                   "tolerance": PARITY_TOLERANCE},
        "libraries": library_versions(),
        "created_at": now_iso(),
    }
    card["metrics"] = {k: v for k, v in card["metrics"].items() if v is not None}
    return TrainedAnomaly(card=card, files={"model.onnx": onnx_bytes}, prepared=p, scores=scores)
