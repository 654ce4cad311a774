"""Model runtime: verified loading of a model directory, fast encoding, ONNX scoring, reasons.

A model directory holds ``card.json`` (the model card, schema ``verdict.model_card/v1``),
``model.onnx`` and, for LightGBM models, ``model.txt`` (the native booster the ONNX graph was
converted from, read by ``engine.explain.TreeExplainer`` for exact TreeSHAP contributions without
LightGBM itself, so serving does not need the training stack). Every artifact is verified against the sha256
the card records *before* any session is created; a model that fails verification never serves.

Encoding rules, shared with training (``engine.training`` encodes through the same functions):
numeric -> float; boolean -> 1.0 / 0.0; categorical -> index in ``categories`` as float;
None, NaN or an unknown category -> NaN. A row has the dtype of the graph's input: float64 for the
LightGBM graphs (double thresholds, see ``engine.training.onnx_export``), float32 for a graph that
declares float input. The explainer always receives the same values widened to float64, so the
reasons explain exactly the row that was scored. For LightGBM models a value within
``±LIGHTGBM_ZERO`` (``1e-35f`` = 1.0000000180025095e-35) is encoded as 0, as LightGBM itself reads
its input (``kZeroThreshold`` in LightGBM's ``include/LightGBM/meta.h``; its dense-row reader keeps
only ``|x| > kZeroThreshold`` or NaN), so the graph's ``-1e-35`` zero splits route such a value as
the trained model does.

Size: over 600 lines and five concepts; it becomes the ``engine/models/`` package in issue 13, item 4.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from operator import itemgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.errors import FieldError, InvalidInput, ModelLoadError
from engine.explain import TreeExplainer
from engine.onnx_runtime import ort

__all__ = [
    "CARD_FILE",
    "CARD_SCHEMA",
    "LIGHTGBM_ZERO",
    "FeatureSpec",
    "Model",
    "ModelCard",
    "encode_value",
    "load_model",
    "make_encoder",
    "session_options",
    "sha256_bytes",
]

CARD_SCHEMA = "verdict.model_card/v1"
CARD_FILE = "card.json"
NAN = float("nan")
# LightGBM's kZeroThreshold, the float literal 1e-35f (include/LightGBM/meta.h): it reads |x| <= this as 0.
LIGHTGBM_ZERO = 1.0000000180025095e-35

_TRUE_TEXT = frozenset({"true", "yes", "y", "t", "1"})
_FALSE_TEXT = frozenset({"false", "no", "n", "f", "0"})


# --------------------------------------------------------------------------- card schema


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class _Open(BaseModel):
    """A card section that may carry extra, free-form evidence keys."""

    model_config = ConfigDict(frozen=True, extra="allow")


class CardFeature(_Frozen):
    """One model input, in ONNX input order."""

    name: str = Field(pattern=r"^[a-z_][a-z0-9_]*$")
    type: Literal["numeric", "categorical", "boolean"]
    categories: tuple[str, ...] | None = None
    encoding: Literal["ordinal"] | None = None
    description: str | None = None
    missing_in_training: int | None = Field(
        default=None, ge=0,
        description="training rows where the feature was missing; 0 means the model never learned a missing "
        "branch for it (LightGBM then scores a missing value as 0), None: not recorded (older cards)",
    )

    @model_validator(mode="after")
    def _categories_fit_type(self) -> CardFeature:
        if self.type == "categorical":
            if not self.categories:
                raise ValueError(f"categorical feature {self.name!r} needs a non-empty categories list")
            if len(set(self.categories)) != len(self.categories):
                raise ValueError(f"categorical feature {self.name!r} has duplicate categories")
            if self.encoding is None:
                raise ValueError(f"categorical feature {self.name!r} needs encoding 'ordinal'")
        elif self.categories is not None or self.encoding is not None:
            raise ValueError(f"{self.type} feature {self.name!r} must not have categories/encoding")
        return self


class CardOutput(_Frozen):
    """Which ONNX output (and column) is the score, and what it means."""

    meaning: str
    onnx_output: str
    index: int = Field(ge=0)


class CardArtifact(_Frozen):
    """One file of the model directory with its recorded sha256."""

    file: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    kind: Literal["lightgbm_treeshap", "linear_contributions"] | None = None


class CardArtifacts(_Frozen):
    """The served graph and, optionally, the explainer behind reason codes."""

    onnx: CardArtifact
    explainer: CardArtifact | None = None


class CardTarget(_Frozen):
    """The training target: column and positive label (absent for anomaly detectors)."""

    column: str
    positive: str


class CardData(_Open):
    """The training data: file, its sha256 and counts (extra evidence keys allowed)."""

    file: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    rows: int = Field(ge=0)
    positives: int | None = Field(default=None, ge=0)


class CardTraining(_Open):
    """How the model was trained (extra keys allowed)."""

    params: dict[str, Any] = Field(default_factory=dict)
    seed: int
    cv_folds: int | None = None
    num_trees: int | None = None


class CardParity(_Open):
    """ONNX vs native-library agreement on the training rows."""

    rows: int = Field(ge=0)
    max_abs_diff: float = Field(ge=0)


class ModelCard(_Frozen):
    """The validated content of ``card.json``."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    schema_: Literal["verdict.model_card/v1"] = Field(alias="schema")
    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    version: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    algorithm: Literal["lightgbm", "logistic", "isolation_forest"]
    task: Literal["binary_classification", "anomaly_detection"]
    description: str
    output: CardOutput
    features: tuple[CardFeature, ...] = Field(min_length=1)
    missing_values: str
    artifacts: CardArtifacts
    target: CardTarget | None = None
    data: CardData
    training: CardTraining
    metrics: dict[str, Any] = Field(default_factory=dict)
    parity: CardParity
    libraries: dict[str, str] = Field(default_factory=dict)
    fairness: dict[str, Any] | None = Field(
        default=None, description="fair-lending report per protected group (engine.training.fairness); absent "
        "when the model was trained without --protected/--age",
    )
    created_at: str

    @field_validator("features")
    @classmethod
    def _unique_names(cls, v: tuple[CardFeature, ...]) -> tuple[CardFeature, ...]:
        names = [f.name for f in v]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate feature names: {', '.join(dupes)}")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.task == "binary_classification" and self.target is None:
            raise ValueError("a binary_classification card needs a target")
        if self.algorithm == "isolation_forest" and self.task != "anomaly_detection":
            raise ValueError("isolation_forest models are anomaly_detection models")
        explainer = self.artifacts.explainer
        if self.algorithm == "lightgbm" and (explainer is None or explainer.kind != "lightgbm_treeshap"):
            raise ValueError("a lightgbm card needs an explainer artifact of kind lightgbm_treeshap")
        if self.algorithm == "logistic" and (explainer is None or explainer.kind != "linear_contributions"):
            raise ValueError("a logistic card needs an explainer artifact of kind linear_contributions")
        return self

    def feature_specs(self) -> tuple[FeatureSpec, ...]:
        """The features as the runtime's small immutable specs."""
        return tuple(FeatureSpec(f.name, f.type, tuple(f.categories or ())) for f in self.features)

    def to_json(self) -> str:
        """The card as canonical, human-diffable JSON text."""
        return json.dumps(self.model_dump(mode="json", by_alias=True, exclude_none=True), indent=2, ensure_ascii=False) + "\n"


# --------------------------------------------------------------------------- encoding


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


# --------------------------------------------------------------------------- runtime


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

    # Long (69 lines): checks the card against the graph one fact after another; it splits when
    # engine/models.py becomes a package (issue 13, item 4).
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
        self._encoders = tuple((f.name, make_encoder(f)) for f in self.features)
        self._width = len(self.features)
        self._zero = LIGHTGBM_ZERO if card.algorithm == "lightgbm" else 0.0
        onnx_path = directory / card.artifacts.onnx.file
        try:
            self._session = ort.InferenceSession(
                onnx_bytes, sess_options=session_options(), providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ModelLoadError(str(onnx_path), f"onnxruntime cannot load the graph: {exc}", "model_onnx_invalid") from exc
        inputs = self._session.get_inputs()
        if len(inputs) != 1:
            raise ModelLoadError(str(onnx_path), f"expected one graph input, found {len(inputs)}", "model_input_mismatch")
        shape = inputs[0].shape
        width = shape[1] if len(shape) == 2 else None
        if width != self._width:
            raise ModelLoadError(
                str(onnx_path),
                f"graph input {inputs[0].name!r} has shape {shape}; the card declares {self._width} features",
                "model_input_mismatch",
            )
        self._input_name = inputs[0].name
        kinds: dict[str, type[np.floating]] = {"tensor(float)": np.float32, "tensor(double)": np.float64}
        if inputs[0].type not in kinds:
            raise ModelLoadError(str(onnx_path), f"graph input type {inputs[0].type} is neither float nor double", "model_input_mismatch")
        self.dtype: type[np.floating] = kinds[inputs[0].type]
        outputs = {o.name for o in self._session.get_outputs()}
        if card.output.onnx_output not in outputs:
            raise ModelLoadError(
                str(onnx_path),
                f"graph has no output {card.output.onnx_output!r} (outputs: {', '.join(sorted(outputs))})",
                "model_output_mismatch",
            )
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
        # parse of the trees and the tabulation of their contributions (0.1-0.3 s, engine.explain).
        self._explainer: Any = self._build_explainer() if explainer_bytes is not None else None

    @property
    def has_explainer(self) -> bool:
        """Whether ``explain`` can give reasons (LightGBM and logistic models; not anomaly detectors)."""
        return self._explainer_bytes is not None

    def __repr__(self) -> str:
        return f"Model({self.name!r}, version={self.version!r}, sha256={self.sha256[:12]}…)"

    # hot path -----------------------------------------------------------------------------

    def encode(self, values: Mapping[str, object]) -> np.ndarray:
        """One (1, n) row (dtype ``self.dtype``) for ``values``; absent keys are missing (NaN)."""
        row = np.empty((1, self._width), dtype=self.dtype)
        out = row[0]
        get = values.get
        zero = self._zero
        for i, (name, enc) in enumerate(self._encoders):
            v = enc(get(name))
            out[i] = 0.0 if -zero <= v <= zero else v  # NaN compares false and stays NaN
        return row

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
        converted from (``engine.explain``; equal to LightGBM's ``pred_contrib``, and they sum,
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
        x = np.asarray(x, dtype=self.dtype).astype(np.float64).reshape(1, self._width)
        return self._contributions_with_bias(x)[0, : self._width]

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
        kind = self.card.artifacts.explainer.kind if self.card.artifacts.explainer else None
        if kind in ("lightgbm_treeshap", "linear_contributions"):
            out: np.ndarray = explainer.contributions(x)  # both immutable after load: no lock on the request path
            return out
        raise NotImplementedError(f"model {self.name!r} ({self.card.algorithm}) has no explainer")

    def _load_explainer(self) -> Any:
        if self._explainer is not None:
            return self._explainer
        with self._explainer_lock:
            if self._explainer is None:
                self._explainer = self._build_explainer()
        return self._explainer

    def _build_explainer(self) -> Any:
        art = self.card.artifacts.explainer
        if art is None or self._explainer_bytes is None:
            raise NotImplementedError(f"model {self.name!r} ({self.card.algorithm}) has no explainer")
        if art.kind == "lightgbm_treeshap":
            try:
                return TreeExplainer(self._explainer_bytes.decode("utf-8"), self._width)
            except (ValueError, IndexError, KeyError, UnicodeDecodeError) as exc:  # a text that is not a usable model
                raise ModelLoadError(
                    str(self.directory / art.file), f"cannot read the LightGBM trees: {exc}", "model_explainer_invalid"
                ) from exc
        if art.kind == "linear_contributions":
            return LinearExplainer.from_json(self._explainer_bytes, self.feature_names)
        raise NotImplementedError(f"unknown explainer kind {art.kind!r}")


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


# --------------------------------------------------------------------------- loading


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelLoadError(str(path), "file is missing", "model_missing_file") from exc
    except OSError as exc:
        raise ModelLoadError(str(path), f"cannot read: {exc}", "model_unreadable") from exc


def read_card(directory: Path) -> ModelCard:
    """Read and validate ``card.json`` of a model directory; ``ModelLoadError`` when it is not valid."""
    path = directory / CARD_FILE
    return _parse_card(path, _read(path))


def _parse_card(path: Path, raw: bytes) -> ModelCard:
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ModelLoadError(str(path), f"not valid JSON: {exc}", "model_card_invalid") from exc
    try:
        return ModelCard.model_validate(doc)
    except ValidationError as exc:
        details = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<card>'}: {e['msg']}" for e in exc.errors()
        )
        raise ModelLoadError(str(path), f"invalid model card: {details}", "model_card_invalid") from exc


def _verified(directory: Path, artifact: CardArtifact) -> bytes:
    path = directory / artifact.file
    data = _read(path)
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
    raw = _read(directory / CARD_FILE)
    card = _parse_card(directory / CARD_FILE, raw)
    onnx_bytes = _verified(directory, card.artifacts.onnx)
    explainer = card.artifacts.explainer
    explainer_bytes = _verified(directory, explainer) if explainer is not None else None
    return Model(card, directory, onnx_bytes, explainer_bytes, sha256_bytes(raw))
