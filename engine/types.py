"""Value types shared by the core: actions, reasons, fired rules and decisions.

All are immutable. They know nothing of gRPC, files or wall-clock time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum

__all__ = ["Action", "Decision", "FallbackTaken", "FiredRule", "NoticeReason", "Outcome", "Reason"]


class Action(IntEnum):
    """What the caller should do. The integer order is the severity order."""

    APPROVE = 1
    REVIEW = 2
    DECLINE = 3

    @classmethod
    def parse(cls, text: str) -> Action:
        return cls[text.strip().upper()]


@dataclass(frozen=True, slots=True)
class Reason:
    """One reason code given with a decision."""

    code: str
    message: str
    source: str  # "rule" or "model"
    rule_id: str = ""  # the rule that gave it (source "rule") or that the model drove
    feature: str = ""  # the model feature behind it (source "model")
    contribution: float = 0.0  # the feature's contribution to the model score (source "model")


@dataclass(frozen=True, slots=True)
class NoticeReason:
    """One principal reason of an adverse-action notice, in the applicant's words (engine.runtime.notice)."""

    code: str
    text: str  # the flow's notices: entry for the code
    source: str  # "rule" or "model"
    feature: str = ""  # the model feature behind it (source "model")


@dataclass(frozen=True, slots=True)
class FiredRule:
    """A rule whose condition held."""

    id: str
    ruleset: str
    action: Action
    reason_code: str
    priority: int
    uses_model: bool = False


@dataclass(frozen=True, slots=True)
class FallbackTaken:
    """A declared fallback a decision took (engine.runtime.fallback): the step (e.g. ``score.card_fraud``),
    why (``budget``: missed its budget, ``error``: raised, ``busy``: no free worker) and the mode
    applied (``rules_only`` or ``action``)."""

    step: str
    reason: str
    mode: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """What the pure evaluation of one flow version on one input produced."""

    action: Action
    reasons: tuple[Reason, ...]
    fired: tuple[FiredRule, ...]
    scores: Mapping[str, float]
    features: Mapping[str, object] = field(default_factory=dict)
    notice: tuple[NoticeReason, ...] = ()  # a DECLINE's principal reasons when the flow has notices: (engine.runtime.notice)
    fallbacks: tuple[FallbackTaken, ...] = ()  # the declared fallbacks taken, in step order (engine.runtime.fallback)
    # Each model's encoded (1, n) row as it was scored, in CompiledFlow.models order (numpy arrays; the
    # drift monitor reads them instead of encoding again); () when this evaluation encoded none.
    rows: tuple[object, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Decision:
    """An outcome with its identity and provenance, as returned to a caller."""

    decision_id: str
    request_id: str
    flow: str
    version: str
    revision: str
    outcome: Outcome
    models: Mapping[str, str]  # model name -> "version@sha256-prefix"
    eval_us: float
    route: str = "live"  # "live", "pinned", "challenger" or "shadow"
    caller: str = ""  # the authenticated caller (certificate subject or token name); "" when unauthenticated
    steps: Mapping[str, float] = field(default_factory=dict, compare=False)  # step -> seconds, as measured (traces)
    # Stateful features (engine.state) the decision read, as of ``event_time`` (Unix seconds); logged for replay
    state: Mapping[str, object] = field(default_factory=dict)
    event_time: float | None = None
    # Custom-list answers the decision read: list name -> member or not, in the order asked (never the
    # value looked up); logged so a replay reproduces it after the lists changed (engine.custom_lists.snapshot)
    lists: Mapping[str, tuple[bool, ...]] = field(default_factory=dict)

    @property
    def action(self) -> Action:
        return self.outcome.action

    @property
    def reasons(self) -> tuple[Reason, ...]:
        return self.outcome.reasons
