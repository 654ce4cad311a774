"""The model card (``card.json``, schema ``verdict.model_card/v1``): its closed schema and its reading.

A card says what a model takes (features in ONNX input order, with categories), what it gives (the
output and column that is the score), the sha256 of every artifact, how it was trained and on
what, and the ONNX/native parity measured at training. ``read_card`` raises ``ModelLoadError``
(codes ``model_missing_file``, ``model_unreadable``, ``model_card_invalid``) naming the file and
every invalid field.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import ConfigDict, Field, ValidationError, field_validator, model_validator

from engine.closed import Closed
from engine.errors import ModelLoadError
from engine.models.encoding import FeatureSpec

__all__ = [
    "CARD_FILE", "CARD_SCHEMA", "CardArtifact", "CardArtifacts", "CardFeature", "CardOutput", "ModelCard", "parse_card",
    "read_card", "read_file",
]

CARD_SCHEMA = "verdict.model_card/v1"
CARD_FILE = "card.json"


_Frozen = Closed  # the one frozen base model (engine.closed)


class _Open(Closed):
    """A card section that may carry extra, free-form evidence keys."""

    model_config = ConfigDict(extra="allow")


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


def read_file(path: Path) -> bytes:
    """The bytes of one file of a model directory; ``ModelLoadError`` when it is missing or unreadable."""
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise ModelLoadError(str(path), "file is missing", "model_missing_file") from exc
    except OSError as exc:
        raise ModelLoadError(str(path), f"cannot read: {exc}", "model_unreadable") from exc


def read_card(directory: Path) -> ModelCard:
    """Read and validate ``card.json`` of a model directory; ``ModelLoadError`` when it is not valid."""
    path = directory / CARD_FILE
    return parse_card(path, read_file(path))


def parse_card(path: Path, raw: bytes) -> ModelCard:
    """The card in ``raw`` (the bytes of ``path``); ``ModelLoadError`` naming every invalid field."""
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
