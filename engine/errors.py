"""Typed errors of the engine.

Every error has a stable string ``code``. The gRPC layer maps each class to a status code in one
table (``engine.grpc.status``); nothing reaches a client as UNKNOWN.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DeadlineExceeded",
    "DecisionFailed",
    "FieldError",
    "FlowNotFound",
    "FlowUnavailable",
    "IdempotencyConflict",
    "InvalidInput",
    "ModelLoadError",
    "NotReady",
    "StateConflict",
    "StateUnavailable",
    "PermissionDenied",
    "PolicyError",
    "Problem",
    "RequestTooLarge",
    "StepFailed",
    "StepTimedOut",
    "Unauthenticated",
    "VerdictError",
    "VersionNotFound",
    "clip",
    "format_problem",
]


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, ending in "…" when it was cut."""
    return text if len(text) <= limit else text[: max(0, limit - 1)] + "…"


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
    flow: str | None = None  # the flow it holds back, when known (per-flow activation, engine.policy.activation)

    def __str__(self) -> str:
        """The one text of a problem, as ``verdict lint``, the reload log and status print it:
        ``path:line: rule X: [code] message (hint: ...)``, ``field F`` in place of a rule when it
        names no rule, and ``warning:`` before a warning's code (docs/testing.md shows it)."""
        parts = [self.path + (f":{self.line}" if self.line else "")]
        if self.rule:
            parts.append(f"rule {self.rule}")
        elif self.field:
            parts.append(f"field {self.field}")
        parts.append(("warning: " if self.severity != "error" else "") + f"[{self.code}] {self.message}")
        text = ": ".join(parts)
        if self.hint:
            text += f" (hint: {self.hint})"
        return text


def format_problem(p: Problem) -> str:
    """``str(p)``: the one problem formatter, as a function for ``map`` and the callers of lint's old name."""
    return str(p)


class VerdictError(Exception):
    """Base class of every error the engine raises on purpose."""

    code: str = "verdict_error"  # a class default; a subclass may give an instance a narrower code


class InvalidInput(VerdictError):
    """The request's input does not fit the flow's input schema; lists the bad fields.

    ``errors`` are the listed field errors (at most ``engine.limits.MAX_FIELD_ERRORS`` when they
    come from a validator) and ``omitted`` counts the further bad fields that were not listed.
    """

    code = "invalid_input"

    def __init__(self, errors: list[FieldError] | tuple[FieldError, ...], omitted: int = 0) -> None:
        self.errors = tuple(errors)
        self.omitted = max(0, int(omitted))
        text = "; ".join(str(e) for e in self.errors) or "invalid input"
        if self.omitted:
            text += f"; and {self.omitted} more"
        super().__init__(text)


class RequestTooLarge(VerdictError):
    """The request is larger than the configured limits (bytes, fields or string length)."""

    code = "request_too_large"


class FlowNotFound(VerdictError):
    """No flow of that name is loaded."""

    code = "flow_not_found"

    def __init__(self, flow: str, known: list[str] | None = None) -> None:
        from engine.suggest import did_you_mean

        self.flow = flow
        msg = f"flow {flow!r} not found"
        if known:
            hint = did_you_mean(flow, known)
            msg += f"; {hint}" if hint else ""
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
            msg += f"; known versions: {', '.join(sorted(known)[:20])}" + (" …" if len(known) > 20 else "")
        VerdictError.__init__(self, msg)


class FlowUnavailable(VerdictError):
    """The flow exists under the policy root but none of its versions could be loaded.

    Carries the flow's load problems; the status message names the flow and the first problem so
    a caller (and its operator) sees why. Fixed by correcting the files, not by retrying.
    """

    code = "flow_unavailable"

    def __init__(self, flow: str, problems: list[Problem] | tuple[Problem, ...]) -> None:
        self.flow = flow
        self.problems = tuple(problems)
        n = len(self.problems)
        msg = f"flow {flow!r} is not loaded: its files have {n} problem{'s' if n != 1 else ''}"
        if self.problems:
            first = str(self.problems[0])
            msg += f"; first: {first[:300]}"  # bounded: trailing metadata over ~8 KiB is refused by clients
        super().__init__(msg + " (see `verdict status` or `verdict lint`)")


class IdempotencyConflict(VerdictError):
    """A request id was reused with a different request."""

    code = "idempotency_conflict"


class NotReady(VerdictError):
    """The service has no loaded policy state yet."""

    code = "not_ready"


class ListsUnavailable(VerdictError):
    """The server keeps no custom-list store (``--lists off``, or no decision log directory)."""

    code = "lists_unavailable"


class StateUnavailable(VerdictError):
    """The state store (engine.state: an SQLite file held locked too long, an unreachable Redis) did not
    answer; nothing was decided or recorded: retry (gRPC UNAVAILABLE)."""

    code = "state_unavailable"


class StateConflict(VerdictError):
    """Other servers kept changing the stateful-feature histories a request reads (engine.state.redis_store);
    nothing was decided or recorded: retry."""

    code = "state_conflict"


class DeadlineExceeded(VerdictError):
    """The caller's deadline passed before the decision was made: nothing was decided or logged."""

    code = "deadline_exceeded"


class StepTimedOut(DeadlineExceeded):
    """A step missed its latency budget and the flow declares ``on_miss: error`` (engine.runtime.fallback)."""

    code = "step_timed_out"

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


class StepFailed(VerdictError):
    """A step failed (or found no free worker) and the flow declares ``on_miss: error`` (engine.runtime.fallback).

    ``reason`` is ``error`` or ``busy``. Transient by nature: a retry may succeed (UNAVAILABLE).
    """

    code = "step_failed"

    def __init__(self, step: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.step = step
        self.reason = reason


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


class Unauthenticated(VerdictError):
    """The call carries no valid credential (client certificate or bearer token) where one is required."""

    code = "unauthenticated"


class PermissionDenied(VerdictError):
    """The caller is authenticated but may not call this method or decide with this flow."""

    code = "permission_denied"
