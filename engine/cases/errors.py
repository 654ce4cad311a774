"""Errors of the review queue (each mapped to a gRPC status in engine/grpc/status.py)."""

from __future__ import annotations

from engine.errors import VerdictError

__all__ = ["CaseNotFound", "CaseStoreError", "IllegalTransition", "TooManyWatchers"]


class CaseNotFound(VerdictError):
    """No case has that id."""

    code = "case_not_found"

    def __init__(self, case_id: str) -> None:
        self.case_id = case_id
        super().__init__(f"no case {case_id!r}")


class IllegalTransition(VerdictError):
    """The case's state does not allow the step asked for (e.g. deciding a decided case)."""

    code = "illegal_transition"

    def __init__(self, case_id: str, state: str, step: str, detail: str = "") -> None:
        self.case_id = case_id
        self.state = state
        self.step = step
        msg = f"case {case_id!r} is {state}: cannot {step}"
        super().__init__(msg + (f" ({detail})" if detail else ""))


class CaseStoreError(VerdictError):
    """The case store cannot be opened or written (file, permissions, database)."""

    code = "case_store_error"


class TooManyWatchers(VerdictError):
    """Every ``WatchCases`` stream this process allows is open (``engine.limits.MAX_WATCH_STREAMS``)."""

    code = "too_many_watchers"
