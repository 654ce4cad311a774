"""The one table from the engine's typed errors to gRPC status codes, and how errors are sent.

Every ``VerdictError`` subclass in ``engine.errors`` has an entry (a test enforces it); an error
class not in the table uses its nearest listed base class; anything that is not a
``VerdictError`` is INTERNAL. Nothing reaches a client as UNKNOWN. For INVALID_ARGUMENT caused by
``InvalidInput`` the status message names every bad field and the trailing metadata key
``verdict-field-errors`` carries them as a JSON list of ``{field, message, code}``. Card numbers
in the message and the trailer (a PAN sent as a flow name, request id or field) are masked here,
where every error leaves for a client (``engine.privacy.scrub_text``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc
import structlog

from engine import errors
from engine.errors import VerdictError
from engine.privacy import scrub_text

__all__ = [
    "FIELD_ERRORS_KEY",
    "STATUS_BY_ERROR",
    "abort",
    "field_errors_from",
    "status_for",
    "translate_errors",
]

FIELD_ERRORS_KEY = "verdict-field-errors"

STATUS_BY_ERROR: dict[type[VerdictError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.FlowNotFound: grpc.StatusCode.NOT_FOUND,
    errors.VersionNotFound: grpc.StatusCode.NOT_FOUND,
    errors.RequestTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.IdempotencyConflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.NotReady: grpc.StatusCode.UNAVAILABLE,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    errors.DecisionFailed: grpc.StatusCode.INTERNAL,
    # Loading problems are the operator's, not the caller's; a request should never meet them.
    errors.PolicyError: grpc.StatusCode.INTERNAL,
    errors.ModelLoadError: grpc.StatusCode.INTERNAL,
    errors.VerdictError: grpc.StatusCode.INTERNAL,
}

_log = structlog.get_logger("verdict.grpc")


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """Status code, message and trailing metadata that report ``error`` to a client."""
    if not isinstance(error, VerdictError):
        return grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__})", ()
    code = next(STATUS_BY_ERROR[c] for c in type(error).__mro__ if c in STATUS_BY_ERROR)
    message = scrub_text(f"[{error.code}] {error}")
    metadata: tuple[tuple[str, str], ...] = ()
    if isinstance(error, errors.InvalidInput):
        fields = [{"field": scrub_text(e.field), "message": scrub_text(e.message), "code": e.code} for e in error.errors]
        metadata = ((FIELD_ERRORS_KEY, json.dumps(fields, ensure_ascii=True)),)
    return code, message, metadata


def abort(context: grpc.ServicerContext, error: BaseException) -> NoReturn:
    """End the call with the status that reports ``error`` (logs unexpected ones)."""
    code, message, metadata = status_for(error)
    if code is grpc.StatusCode.INTERNAL:
        _log.error("decision_internal_error", error=str(error), error_type=type(error).__name__, exc_info=error)
    if metadata:
        context.set_trailing_metadata(metadata)
    context.abort(code, message)


def field_errors_from(metadata: Any) -> list[dict[str, str]]:
    """The field errors a client finds in a call's trailing metadata (empty if none)."""
    for key, value in metadata or ():
        if key == FIELD_ERRORS_KEY:
            return list(json.loads(value))
    return []


_F = TypeVar("_F", bound=Callable[..., Any])


def translate_errors(method: _F) -> _F:
    """Decorate a servicer method so that any exception ends the call with its mapped status."""

    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error must become a status, never UNKNOWN
            abort(context, exc)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    wrapper.__wrapped__ = method  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
