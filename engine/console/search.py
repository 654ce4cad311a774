"""Decision search over the decision log, through its own readers (``engine.audit.source``).

Filters (all optional, combined with AND): decision id, request id, customer (any input field
whose name contains ``customer`` equal to the text, as the log holds it: masked fields match only
their masked form), flow, version, action, reason code, and a time range on the record's ``ts``.
The log is read in chain order and the newest ``limit`` matches are kept; at most ``max_scan``
records are read per search (bounded cost; the page says when the bound was reached). Records
are shown as logged: the log only holds masked input, and the console never un-masks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Query", "SearchResult", "search"]

_TEXT = ("decision_id", "request_id", "customer", "flow", "version", "action", "reason", "since", "until")


@dataclass(frozen=True)
class Query:
    """A decision search; empty strings mean "any". ``since``/``until`` are ISO-8601 (UTC) prefixes."""

    decision_id: str = ""
    request_id: str = ""
    customer: str = ""
    flow: str = ""
    version: str = ""
    action: str = ""
    reason: str = ""
    since: str = ""
    until: str = ""

    @classmethod
    def of(cls, params: Mapping[str, str]) -> Query:
        return cls(**{k: str(params.get(k, "")).strip()[:200] for k in _TEXT})

    @property
    def empty(self) -> bool:
        return not any(getattr(self, k) for k in _TEXT)

    def matches(self, r: Mapping[str, Any]) -> bool:
        """Whether decision record `r` passes every filter."""
        if self.decision_id and r.get("decision_id") != self.decision_id:
            return False
        if self.request_id and r.get("request_id") != self.request_id:
            return False
        if self.flow and r.get("flow") != self.flow:
            return False
        if self.version and r.get("version") != self.version:
            return False
        if self.action and r.get("action") != self.action.upper():
            return False
        if self.reason and not any(x.get("code") == self.reason for x in r.get("reasons", ())):
            return False
        ts = str(r.get("ts", ""))
        if (self.since and ts < self.since) or (self.until and ts[: len(self.until)] > self.until):
            return False
        if self.customer:
            inputs = r.get("input") or {}
            if not any("customer" in k.lower() and str(v) == self.customer for k, v in inputs.items()):
                return False
        return True


@dataclass
class SearchResult:
    """The newest matches (newest first), how many records were read, and whether the scan stopped early."""

    records: list[dict[str, Any]] = field(default_factory=list)
    scanned: int = 0
    truncated: bool = False
    gaps: list[str] = field(default_factory=list)


def search(records: Iterable[dict[str, Any]], query: Query, *, limit: int = 100, max_scan: int = 200_000) -> SearchResult:
    """The newest `limit` decision records of `records` (in chain order) matching `query`."""
    kept: deque[dict[str, Any]] = deque(maxlen=limit)
    out = SearchResult()
    for r in records:
        if out.scanned >= max_scan:
            out.truncated = True
            break
        out.scanned += 1
        if r.get("kind", "decision") == "decision" and query.matches(r):
            kept.append(r)
    out.records = list(reversed(kept))
    return out
