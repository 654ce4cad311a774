"""Model runtime: a verified model directory loaded into an ONNX session that scores and explains.

A model directory holds ``card.json`` (``engine.models.card``), ``model.onnx`` and, for LightGBM
models, ``model.txt`` (the native booster the ONNX graph was converted from, read by
``engine.models.explain.TreeExplainer`` for exact TreeSHAP contributions without LightGBM itself,
so serving does not need the training stack). Every artifact is verified against the sha256 the
card records *before* any session is created; a model that fails verification never serves
(``ModelLoadError``).

A row is encoded by ``engine.models.encoding`` (shared with training) and has the dtype of the
graph's input: float64 for the LightGBM graphs (double thresholds, see
``engine.training.onnx_export``), float32 for a graph that declares float input. The explainer
(``engine.models.explainers``) always receives the same values widened to float64, so the reasons
explain exactly the row that was scored. For LightGBM models a value within ``±LIGHTGBM_ZERO`` is
encoded as 0, as LightGBM itself reads its input (its dense-row reader keeps only
``|x| > kZeroThreshold`` or NaN), so the graph's ``-1e-35`` zero splits route such a value as the
trained model does.

Private APIs of the libraries this package relies on, named here once;
``tests/unit/test_models_private_apis.py`` fails loudly when an upgrade removes or changes one:

- onnxruntime: ``InferenceSession._sess.run(output_names, feed, run_options)``, the native session's
  run without the Python wrapper's per-call validation of the feed (~10 µs of a ~30 µs row,
  measured). Without it ``Model`` falls back to the public ``InferenceSession.run``: correct, slower.
- LightGBM: ``kZeroThreshold`` (``1e-35f``, ``include/LightGBM/meta.h``), copied as
  ``engine.models.encoding.LIGHTGBM_ZERO``; and the text model format of ``model.txt``
  (``Booster.model_to_string``) that ``engine.models.explain.TreeExplainer`` parses.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from engine.errors import ModelLoadError
from engine.models.card import CARD_FILE, CardArtifact, ModelCard, parse_card, read_file
from engine.models.encoding import LIGHTGBM_ZERO, FeatureSpec, compile_row_encoder
from engine.models.explainers import Explainer, build_explainer
from engine.models.onnx_runtime import ort

__all__ = ["Model", "load_model", "session_options", "sha256_bytes"]


def sha256_bytes(data: bytes) -> str:
    """Hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def session_options() -> ort.SessionOptions:
    """Session options tuned for single-row latency (see NOTES.md): one thread, sequential."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return so


class Model:
    """A loaded, verified model: encode a mapping of values, score rows, explain a score."""

    def __init__(
        self,
        card: ModelCard,
        directory: Path,
        onnx_bytes: bytes,
        explainer_bytes: bytes | None,
        card_sha256: str | None = None,
    ) -> None:
        self.card = card
        self.name = card.name
        self.version = card.version
        self.directory = directory
        self.sha256 = card.artifacts.onnx.sha256
        # Every file that decides: the card (feature order, category encodings, output column)
        # and each artifact it verifies (the graph, the explainer behind the reasons).
        files = {CARD_FILE: card_sha256 or sha256_bytes(card.to_json().encode("utf-8"))}
        for art in (card.artifacts.onnx, card.artifacts.explainer):
            if art is not None:
                files[art.file] = art.sha256
        self.files: Mapping[str, str] = MappingProxyType(dict(sorted(files.items())))
        self.content_sha256 = sha256_bytes("".join(f"{k}\0{v}\n" for k, v in self.files.items()).encode())
        self.features: tuple[FeatureSpec, ...] = card.feature_specs()
        self.feature_names: tuple[str, ...] = tuple(f.name for f in self.features)
        # Reasons are ranked by a stable sort on the contribution alone over the features in name
        # order: ties keep name order, as sorting on (-contribution, name) would, in a third of the time.
        self._by_name = np.array(sorted(range(len(self.features)), key=self.feature_names.__getitem__), dtype=np.int64)
        self._names_by_name = tuple(self.feature_names[i] for i in self._by_name)
        self._width = len(self.features)
        self._zero = LIGHTGBM_ZERO if card.algorithm == "lightgbm" else 0.0
        self._session, self._input_name, self.dtype = _checked_session(card, directory / card.artifacts.onnx.file, onnx_bytes)
        # One generated function per model version: the features' encodings inline (engine.models.encoding)
        self._encode = compile_row_encoder(self.features, self._zero, self.dtype, f"{card.name} {card.version}")
        self._output_names = [card.output.onnx_output]
        # The single-row path calls the session's native run directly with run options made once:
        # InferenceSession.run re-validates the feed names and builds default options on every
        # call (~10 µs of a ~30 µs row, measured). Input names and shape were checked above.
        self._run_options = ort.RunOptions()
        native = getattr(self._session, "_sess", None)
        self._run = native.run if native is not None and hasattr(native, "run") else self._session.run
        self._index = card.output.index
        self._explainer_bytes = explainer_bytes
        self._explainer_lock = threading.RLock()
        # Built now, never on a request: a lazy build would cost the first explained request the
        # parse of the trees and the tabulation of their contributions (0.1-0.3 s, engine.models.explain).
        self._explainer: Explainer | None = self._build_explainer() if explainer_bytes is not None else None
        self._warm_up()

    def _warm_up(self) -> None:
        """Score (and explain) one row of missing values now, so the first request after a load or a
        hot reload does not pay onnxruntime's first run: 1.8 ms against 13-46 µs after it for
        card_fraud/1 on this machine — past a 50 ms score budget under load, a fallback nobody asked for."""
        row = self._encode({})
        self.score(row)
        if self._explainer is not None:
            self.contributions(row)

    @property
    def has_explainer(self) -> bool:
        """Whether ``explain`` can give reasons (LightGBM and logistic models; not anomaly detectors)."""
        return self._explainer_bytes is not None

    def __repr__(self) -> str:
        return f"Model({self.name!r}, version={self.version!r}, sha256={self.sha256[:12]}…)"

    # hot path -----------------------------------------------------------------------------

    def encode(self, values: Mapping[str, object]) -> np.ndarray:
        """One (1, n) row (dtype ``self.dtype``) for ``values``; absent keys are missing (NaN).

        Raises InvalidInput naming a feature whose value has the wrong type (engine.models.encoding)."""
        return self._encode(values)

    def score(self, x: np.ndarray) -> float:
        """The score of one encoded (1, n) row (see ``card.output.meaning``); other dtypes are converted."""
        if x.dtype != self.dtype:
            x = np.ascontiguousarray(x, dtype=self.dtype)
            if self._zero:
                x = np.where(np.abs(x) <= self._zero, 0.0, x).astype(self.dtype)
        return float(self._run(self._output_names, {self._input_name: x}, self._run_options)[0][0, self._index])

    def score_batch(self, x: np.ndarray) -> np.ndarray:
        """Scores of many encoded rows, shape (n,)."""
        x = np.ascontiguousarray(x, dtype=self.dtype)
        if self._zero:
            x = np.where(np.abs(x) <= self._zero, 0.0, x).astype(self.dtype)
        out = self._session.run(self._output_names, {self._input_name: x})[0]
        return np.asarray(out[:, self._index] if out.ndim == 2 else out, dtype=np.float64)

    # reasons ------------------------------------------------------------------------------

    def explain(self, x: np.ndarray) -> tuple[tuple[str, float], ...]:
        """Every feature's contribution to the score of one row, most score-raising first.

        LightGBM: exact TreeSHAP contributions in log-odds of the trees the ONNX graph was
        converted from (``engine.models.explain``; equal to LightGBM's ``pred_contrib``, and they sum,
        with the bias, to the raw score). Logistic: coefficient times
        (standardised value minus its training mean), in log-odds.
        """
        contrib = self.contributions(x)[self._by_name].tolist()
        return tuple(sorted(zip(self._names_by_name, contrib, strict=True), key=itemgetter(1), reverse=True))

    def explain_batch(self, x: np.ndarray) -> list[tuple[tuple[str, float], ...]]:
        """``explain`` of each row of an (m, n) array, from one batched explainer call (equal values)."""
        contrib = self.contributions_batch(x)[:, self._by_name]
        order = np.argsort(-contrib, axis=1, kind="stable")  # descending; ties keep name order, as ``explain``
        names = np.array(self._names_by_name, dtype=object)[order].tolist()
        values = np.take_along_axis(contrib, order, axis=1).tolist()
        return [tuple(zip(n, v, strict=True)) for n, v in zip(names, values, strict=True)]

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature contributions (log-odds) of one row, in feature order, shape (n,)."""
        if not (type(x) is np.ndarray and x.dtype == np.float64 and self.dtype is np.float64):  # a scored row is used as is
            x = np.asarray(x, dtype=self.dtype).astype(np.float64)
        return self._contributions_with_bias(x.reshape(1, self._width))[0, : self._width]

    def contributions_batch(self, x: np.ndarray) -> np.ndarray:
        """Per-feature contributions (log-odds) of many rows, shape (rows, n)."""
        x = np.asarray(x, dtype=self.dtype).astype(np.float64).reshape(-1, self._width)
        return self._contributions_with_bias(x)[:, : self._width]

    def raw_score(self, x: np.ndarray) -> float:
        """The raw (log-odds) score of one row as the explainer sees it: sum of contributions + bias."""
        x = np.asarray(x, dtype=self.dtype).astype(np.float64).reshape(1, self._width)
        return float(self._contributions_with_bias(x)[0].sum())

    def _contributions_with_bias(self, x: np.ndarray) -> np.ndarray:
        explainer = self._load_explainer()
        out: np.ndarray = explainer.contributions(x)  # immutable after load: no lock on the request path
        return out

    def _load_explainer(self) -> Explainer:
        if self._explainer is not None:
            return self._explainer
        with self._explainer_lock:
            if self._explainer is None:
                self._explainer = self._build_explainer()
        return self._explainer

    def _build_explainer(self) -> Explainer:
        art = self.card.artifacts.explainer
        if art is None or art.kind is None or self._explainer_bytes is None:
            raise NotImplementedError(f"model {self.name!r} ({self.card.algorithm}) has no explainer")
        return build_explainer(art.kind, self._explainer_bytes, self.feature_names, self.directory / art.file)


def _checked_session(card: ModelCard, onnx_path: Path, onnx_bytes: bytes) -> tuple[Any, str, type[np.floating]]:
    """An ONNX session of the graph, checked against the card: (session, input name, input dtype).

    Raises ``ModelLoadError``: ``model_onnx_invalid`` when onnxruntime cannot load the graph,
    ``model_input_mismatch`` unless it has one input of shape (rows, len(card.features)) and type
    float or double, ``model_output_mismatch`` when it lacks the card's output.
    """
    try:
        session = ort.InferenceSession(onnx_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelLoadError(str(onnx_path), f"onnxruntime cannot load the graph: {exc}", "model_onnx_invalid") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelLoadError(str(onnx_path), f"expected one graph input, found {len(inputs)}", "model_input_mismatch")
    shape = inputs[0].shape
    width = shape[1] if len(shape) == 2 else None
    if width != len(card.features):
        raise ModelLoadError(
            str(onnx_path),
            f"graph input {inputs[0].name!r} has shape {shape}; the card declares {len(card.features)} features",
            "model_input_mismatch",
        )
    kinds: dict[str, type[np.floating]] = {"tensor(float)": np.float32, "tensor(double)": np.float64}
    if inputs[0].type not in kinds:
        raise ModelLoadError(str(onnx_path), f"graph input type {inputs[0].type} is neither float nor double", "model_input_mismatch")
    outputs = {o.name for o in session.get_outputs()}
    if card.output.onnx_output not in outputs:
        raise ModelLoadError(
            str(onnx_path),
            f"graph has no output {card.output.onnx_output!r} (outputs: {', '.join(sorted(outputs))})",
            "model_output_mismatch",
        )
    return session, inputs[0].name, kinds[inputs[0].type]


def _verified(directory: Path, artifact: CardArtifact) -> bytes:
    path = directory / artifact.file
    data = read_file(path)
    actual = sha256_bytes(data)
    if actual != artifact.sha256:
        raise ModelLoadError(
            str(path),
            f"sha256 {actual} does not match the card's {artifact.sha256}",
            "model_sha256_mismatch",
        )
    return data


def load_model(directory: Path) -> Model:
    """Load a model directory, verifying the card and every artifact's sha256 before any session."""
    directory = Path(directory)
    raw = read_file(directory / CARD_FILE)
    card = parse_card(directory / CARD_FILE, raw)
    onnx_bytes = _verified(directory, card.artifacts.onnx)
    explainer = card.artifacts.explainer
    explainer_bytes = _verified(directory, explainer) if explainer is not None else None
    return Model(card, directory, onnx_bytes, explainer_bytes, sha256_bytes(raw))
