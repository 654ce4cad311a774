"""What a review case is: its states, the dispositions an analyst gives, and outcome labels.

A case is opened for each REVIEW decision of a live, pinned or challenger route (never a shadow's:
a shadow's answer was not returned to anyone). Its life::

    open ──claim/assign──▶ assigned ──decide──▶ decided
      └────────────────────decide─────────────────▲

``decide`` takes a disposition (approve, decline or escalate), a note and the actor; a decided case
is final (a second ``decide`` is refused, so a calling system never receives two answers for one
decision). ``escalate`` is a final answer of the first-line queue: the calling system hands the
application to its second line.

Outcomes are what later happened to a decision (the label of the training set):
``chargeback``, ``confirmed_fraud``, ``default`` (bad) and ``repaid`` (good), each with its date.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = [
    "BAD_OUTCOMES",
    "Case",
    "CaseEvent",
    "CaseQuery",
    "CaseState",
    "Disposition",
    "OutcomeKind",
    "OutcomeLabel",
    "Priority",
]


class CaseState(StrEnum):
    """Where a case is in its life."""

    OPEN = "open"
    ASSIGNED = "assigned"
    DECIDED = "decided"


class Disposition(StrEnum):
    """The analyst's final answer to a REVIEW."""

    APPROVE = "approve"
    DECLINE = "decline"
    ESCALATE = "escalate"


class Priority(StrEnum):
    """A case's priority; ``rank`` orders a queue (0 first)."""

    HIGH = "high"
    NORMAL = "normal"
    LOW = "low"

    @property
    def rank(self) -> int:
        return ("high", "normal", "low").index(self.value)


class OutcomeKind(StrEnum):
    """What later happened to a decision; ``chargeback``, ``confirmed_fraud`` and ``default`` are bad."""

    CHARGEBACK = "chargeback"
    CONFIRMED_FRAUD = "confirmed_fraud"
    DEFAULT = "default"
    REPAID = "repaid"

    @property
    def bad(self) -> bool:
        return self in BAD_OUTCOMES


BAD_OUTCOMES = frozenset({OutcomeKind.CHARGEBACK, OutcomeKind.CONFIRMED_FRAUD, OutcomeKind.DEFAULT})


@dataclass(frozen=True, slots=True)
class Case:
    """One review case, as stored.

    Times are epoch seconds (UTC). ``record`` is the decision record as the decision log keeps it
    (masked input, reasons with their messages, fired rules, scores, model hashes, model
    contributions as reasons of source ``model``): never the raw input. ``links`` are the values
    (masked or keyed-hashed, as logged) that tie it to earlier cases; ``linked`` the ids of those.
    """

    case_id: str  # equals the decision id: one case per decision
    queue: str
    priority: Priority
    state: CaseState
    flow: str
    version: str
    route: str
    decision_id: str
    request_id: str
    opened_at: float
    due_at: float  # the SLA deadline: opened_at + the queue's SLA for the priority
    assignee: str = ""
    disposition: Disposition | None = None
    note: str = ""
    decided_by: str = ""
    decided_at: float | None = None
    decided_seq: int | None = None  # position in the disposition stream (the cursor of WatchCases)
    record: dict[str, Any] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    linked: tuple[str, ...] = ()

    def overdue(self, now: float) -> bool:
        """True when not decided and past its SLA deadline at ``now``."""
        return self.state is not CaseState.DECIDED and now > self.due_at


@dataclass(frozen=True, slots=True)
class CaseQuery:
    """Which cases ``CaseStore.list_cases`` returns: every filter given must hold (None: any).

    ``limit`` is capped at ``engine.cases.store.MAX_PAGE``; ``offset`` pages on.
    """

    state: CaseState | None = None
    flow: str | None = None
    queue: str | None = None
    priority: Priority | None = None
    assignee: str | None = None
    request_id: str | None = None
    limit: int = 100
    offset: int = 0


@dataclass(frozen=True, slots=True)
class CaseEvent:
    """One disposition in the stream sent back to calling systems (ListCaseDecisions, WatchCases).

    ``seq`` is its cursor: strictly increasing in the order dispositions were committed.
    """

    seq: int
    disposition: Disposition
    case_id: str
    flow: str
    version: str
    actor: str
    decided_at: float
    note: str
    decision_id: str
    request_id: str


@dataclass(frozen=True, slots=True)
class OutcomeLabel:
    """An outcome attached to a decision: by ``decision_id`` (or found by ``request_id``).

    ``occurred`` is the date it happened (ISO ``YYYY-MM-DD``); ``source`` says where it came from
    (``import:<file>``, ``case:<case id>``, ``rpc:<caller>``).
    """

    decision_id: str
    kind: OutcomeKind
    occurred: str
    source: str
    request_id: str = ""
