"""Typed errors of model training; each carries a stable ``code``."""

from __future__ import annotations

from engine.errors import VerdictError

__all__ = ["DataError", "ParityError", "TrainingError"]


class TrainingError(VerdictError):
    """Training could not produce a model; ``code`` says why."""

    code = "training_error"

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


class DataError(TrainingError):
    """The data or the options do not allow training (empty file, unknown target, one class...)."""

    code = "data_error"


class ParityError(TrainingError):
    """The exported ONNX graph disagrees with the native model beyond the tolerance; nothing is written."""

    code = "parity_failed"
