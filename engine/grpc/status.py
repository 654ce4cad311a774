"""The one table from the engine's typed errors to gRPC status codes, and how errors are sent.

Every ``VerdictError`` subclass in ``engine.errors`` has an entry (a test enforces it); an error
class not in the table uses its nearest listed base class; anything that is not a
``VerdictError`` is INTERNAL. Nothing reaches a client as UNKNOWN. For INVALID_ARGUMENT caused by
``InvalidInput`` the status message names the bad fields and the trailing metadata key
``verdict-field-errors`` carries them as a JSON list of ``{field, message, code}``; when some were
left out, ``verdict-field-errors-omitted`` says how many (and the message ends "and N more").

Every error reply fits a default client's 8 KiB metadata limit (grpc/grpc#37852: a bigger one
reaches the client as RESOURCE_EXHAUSTED instead of its status): each message is clipped to
``MAX_ERROR_MESSAGE_CHARS``, the status message to ``MAX_STATUS_MESSAGE_BYTES`` and the trailer to
``MAX_FIELD_ERRORS_TRAILER_BYTES`` (engine.limits), dropping trailing entries into the count.
Card numbers in the message and the trailer (a PAN sent as a flow name, request id or field) are
masked here, where every error leaves for a client (``engine.runtime.privacy.scrub_text``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

import grpc
import structlog

from engine import errors
from engine.cases import errors as case_errors
from engine.errors import VerdictError, clip
from engine.limits import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_FIELD_ERRORS_TRAILER_BYTES,
    MAX_QUOTED_CHARS,
    MAX_STATUS_MESSAGE_BYTES,
)
from engine.runtime.privacy import scrub_text

__all__ = [
    "FIELD_ERRORS_KEY",
    "FIELD_ERRORS_OMITTED_KEY",
    "STATUS_BY_ERROR",
    "abort",
    "field_errors_from",
    "omitted_field_errors",
    "status_for",
    "translate_errors",
]

FIELD_ERRORS_KEY = "verdict-field-errors"
FIELD_ERRORS_OMITTED_KEY = "verdict-field-errors-omitted"

STATUS_BY_ERROR: dict[type[VerdictError], grpc.StatusCode] = {
    errors.InvalidInput: grpc.StatusCode.INVALID_ARGUMENT,
    errors.FlowNotFound: grpc.StatusCode.NOT_FOUND,
    errors.VersionNotFound: grpc.StatusCode.NOT_FOUND,
    # The flow's files are broken and it has no good version: an operator must fix them, so a
    # retry would not help (not UNAVAILABLE, which clients retry).
    errors.FlowUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
    errors.RequestTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.IdempotencyConflict: grpc.StatusCode.ALREADY_EXISTS,
    errors.NotReady: grpc.StatusCode.UNAVAILABLE,
    # The operator turned the list store off: a retry will not help until the server is restarted with one.
    errors.ListsUnavailable: grpc.StatusCode.FAILED_PRECONDITION,
    errors.StateConflict: grpc.StatusCode.ABORTED,
    errors.StateUnavailable: grpc.StatusCode.UNAVAILABLE,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    # A step over its budget with `on_miss: error` (engine.runtime.fallback): the decision was not made in time.
    errors.StepTimedOut: grpc.StatusCode.DEADLINE_EXCEEDED,
    # A failed or saturated step with `on_miss: error`: transient, a retry may succeed.
    errors.StepFailed: grpc.StatusCode.UNAVAILABLE,
    errors.DecisionFailed: grpc.StatusCode.INTERNAL,
    # Loading problems are the operator's, not the caller's; a request should never meet them.
    errors.PolicyError: grpc.StatusCode.INTERNAL,
    errors.ModelLoadError: grpc.StatusCode.INTERNAL,
    errors.VerdictError: grpc.StatusCode.INTERNAL,
    # The review queue (engine.cases): an unknown case, a step its state refuses, a store that is down.
    case_errors.CaseNotFound: grpc.StatusCode.NOT_FOUND,
    case_errors.IllegalTransition: grpc.StatusCode.FAILED_PRECONDITION,
    case_errors.CaseStoreError: grpc.StatusCode.UNAVAILABLE,
    case_errors.TooManyWatchers: grpc.StatusCode.RESOURCE_EXHAUSTED,
}

_log = structlog.get_logger("verdict.grpc")


def status_for(error: BaseException) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """Status code, message and trailing metadata that report ``error`` to a client.

    The message is at most ``MAX_STATUS_MESSAGE_BYTES`` UTF-8 bytes and the field-error trailer
    at most ``MAX_FIELD_ERRORS_TRAILER_BYTES`` (both from engine.limits), whatever the error holds.
    """
    if not isinstance(error, VerdictError):
        return grpc.StatusCode.INTERNAL, f"internal error ({type(error).__name__})", ()
    code = next(STATUS_BY_ERROR[c] for c in type(error).__mro__ if c in STATUS_BY_ERROR)
    if isinstance(error, errors.InvalidInput):
        return (code, *_invalid_input(error))
    return code, _fit(scrub_text(f"[{error.code}] {error}"), MAX_STATUS_MESSAGE_BYTES), ()


def _fit(text: str, limit: int) -> str:
    """``text`` clipped to at most ``limit`` UTF-8 bytes (ending in "…" when clipped)."""
    data = text.encode("utf-8")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", errors="ignore") + "…"


def _invalid_input(error: errors.InvalidInput) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The message and trailers of an InvalidInput: as many field errors as fit both budgets."""
    fields = [
        {"field": clip(scrub_text(e.field), MAX_QUOTED_CHARS), "message": clip(scrub_text(e.message), MAX_ERROR_MESSAGE_CHARS), "code": e.code}
        for e in error.errors
    ]
    omitted = error.omitted
    while True:
        texts = [f"{f['field']}: {f['message']}" for f in fields]
        message = f"[{error.code}] " + ("; ".join(texts) or "invalid input") + (f"; and {omitted} more" if omitted else "")
        trailer = json.dumps(fields, ensure_ascii=True)
        fits = len(message.encode("utf-8")) <= MAX_STATUS_MESSAGE_BYTES and len(trailer) <= MAX_FIELD_ERRORS_TRAILER_BYTES
        if fits or len(fields) <= 1:
            break
        fields.pop()
        omitted += 1
    metadata = [(FIELD_ERRORS_KEY, trailer if fits else "[]")]
    if omitted:
        metadata.append((FIELD_ERRORS_OMITTED_KEY, str(omitted)))
    return _fit(message, MAX_STATUS_MESSAGE_BYTES), tuple(metadata)


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


def omitted_field_errors(metadata: Any) -> int:
    """How many further field errors the server counted but did not list (0 if none)."""
    for key, value in metadata or ():
        if key == FIELD_ERRORS_OMITTED_KEY:
            return int(value)
    return 0


_F = TypeVar("_F", bound=Callable[..., Any])


def translate_errors(method: _F) -> _F:
    """Decorate a servicer method so that any exception ends the call with its mapped status.

    A servicer with an ``on_error(method, code)`` attribute hears of each error and its status
    code first (the DecisionServicer counts them in the metrics).
    """

    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return method(self, request, context)
        except Exception as exc:  # noqa: BLE001 - every error must become a status, never UNKNOWN
            on_error = getattr(self, "on_error", None)
            if on_error is not None:
                on_error(method.__name__, status_for(exc)[0])
            abort(context, exc)

    wrapper.__name__ = method.__name__
    wrapper.__doc__ = method.__doc__
    wrapper.__wrapped__ = method  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]
