"""Typed errors of the decision log (subclasses of the engine's error classes)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.errors import DecisionFailed, VerdictError

if TYPE_CHECKING:
    from engine.audit.follow import Gap

__all__ = ["AuditCorrupt", "AuditError", "AuditUnavailable", "LogGap", "SegmentVanished"]


class AuditError(VerdictError):
    """The decision log cannot be opened, read or written."""

    code = "audit_error"


class AuditUnavailable(DecisionFailed):
    """A decision could not be made durable in the log, so it is not returned (INTERNAL)."""

    code = "audit_unavailable"


class AuditCorrupt(AuditError):
    """The log holds a record that is not what the writer wrote (not a crash's torn tail)."""

    code = "audit_corrupt"


class LogGap(AuditError):
    """Part of the log was not there to read (a missing or vanished segment, missing records).

    ``gap`` (``engine.audit.follow.Gap``) says where and which records; readers raise it unless
    their caller allows gaps (``--allow-gaps``), in which case the gap is stated in the output.
    """

    code = "audit_gap"

    def __init__(self, gap: Gap) -> None:
        self.gap = gap
        super().__init__(str(gap))


class SegmentVanished(AuditError):
    """A segment file listed a moment ago could not be opened: it was moved or removed meanwhile."""

    code = "audit_segment_vanished"

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"{path} disappeared while the log was read (rotated or archived?)")
