"""Typed errors of the decision log (subclasses of the engine's error classes)."""

from __future__ import annotations

from engine.errors import DecisionFailed, VerdictError

__all__ = ["AuditCorrupt", "AuditError", "AuditUnavailable"]


class AuditError(VerdictError):
    """The decision log cannot be opened, read or written."""

    code = "audit_error"


class AuditUnavailable(DecisionFailed):
    """A decision could not be made durable in the log, so it is not returned (INTERNAL)."""

    code = "audit_unavailable"


class AuditCorrupt(AuditError):
    """The log holds a record that is not what the writer wrote (not a crash's torn tail)."""

    code = "audit_corrupt"
