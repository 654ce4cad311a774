"""Typed errors of the engine.

Every error has a stable string ``code``. The gRPC layer maps each class to a status code in one
table (``engine.grpc.status``); nothing reaches a client as UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "DeadlineExceeded",
    "DecisionFailed",
    "FieldError",
    "FlowNotFound",
    "IdempotencyConflict",
    "InvalidInput",
    "ModelLoadError",
    "NotReady",
    "PolicyError",
    "Problem",
    "RequestTooLarge",
    "VerdictError",
    "VersionNotFound",
]


@dataclass(frozen=True, slots=True)
class FieldError:
    """One problem with one field of a request's input."""

    field: str
    message: str
    code: str = "invalid"

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem found while loading policy files (flows, rules, model cards)."""

    path: str
    message: str
    code: str
    line: int | None = None
    rule: str | None = None
    field: str | None = None
    hint: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = self.path + (f":{self.line}" if self.line else "")
        parts = [where]
        if self.rule:
            parts.append(f"rule {self.rule}")
        if self.field:
            parts.append(f"field {self.field}")
        text = ": ".join([" ".join(parts), f"[{self.code}] {self.message}"])
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


class VerdictError(Exception):
    """Base class of every error the engine raises on purpose."""

    code: ClassVar[str] = "verdict_error"


class InvalidInput(VerdictError):
    """The request's input does not fit the flow's input schema; lists every bad field."""

    code = "invalid_input"

    def __init__(self, errors: list[FieldError] | tuple[FieldError, ...]) -> None:
        self.errors = tuple(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid input")


class RequestTooLarge(VerdictError):
    """The request is larger than the configured limits (bytes, fields or string length)."""

    code = "request_too_large"


class FlowNotFound(VerdictError):
    """No flow of that name is loaded."""

    code = "flow_not_found"

    def __init__(self, flow: str, known: list[str] | None = None) -> None:
        self.flow = flow
        msg = f"flow {flow!r} not found"
        if known:
            msg += f"; known flows: {', '.join(sorted(known))}"
        super().__init__(msg)


class VersionNotFound(FlowNotFound):
    """The flow exists but not the requested version."""

    code = "version_not_found"

    def __init__(self, flow: str, version: str, known: list[str] | None = None) -> None:
        self.flow = flow
        self.version = version
        msg = f"version {version!r} of flow {flow!r} not found"
        if known:
            msg += f"; known versions: {', '.join(sorted(known))}"
        VerdictError.__init__(self, msg)


class IdempotencyConflict(VerdictError):
    """A request id was reused with a different request."""

    code = "idempotency_conflict"


class NotReady(VerdictError):
    """The service has no loaded policy state yet."""

    code = "not_ready"


class DeadlineExceeded(VerdictError):
    """The caller's deadline passed before the decision was made: nothing was decided or logged."""

    code = "deadline_exceeded"


class DecisionFailed(VerdictError):
    """Evaluation failed for a reason that is not the caller's fault (a bug or a broken model)."""

    code = "decision_failed"


class PolicyError(VerdictError):
    """Policy files could not be loaded; carries every problem found, with file and line."""

    code = "policy_error"

    def __init__(self, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.problems = tuple(problems)
        n = len(self.problems)
        head = f"{n} problem{'s' if n != 1 else ''} found while loading policies"
        super().__init__(head + ("\n" + "\n".join(str(p) for p in self.problems) if n else ""))


class ModelLoadError(PolicyError):
    """A model artifact failed verification (sha256, card, input contract) or could not load."""

    code = "model_load_error"

    def __init__(self, path: str, message: str, code: str = "model_invalid") -> None:
        super().__init__([Problem(path=path, message=message, code=code)])
