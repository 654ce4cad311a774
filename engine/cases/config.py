"""Each flow's review queue: its name, priority rules, SLA and link fields (``review.yaml``).

A flow may have ``policies/<flow>/review.yaml`` beside its ``routing.yaml`` (flow level, so it is
not part of any released version's content lock). Closed schema; every problem is reported at
once with its line. Without the file the defaults below apply::

    queue: credit-review          # default: the flow's name
    default_priority: normal      # when no rule below matches
    priority:                     # first match wins
      - priority: high
        reasons: [PD_VERY_HIGH]   # the decision has one of these reason codes ...
      - priority: high
        score: pd                 # ... or this model score is at least ``at_least``
        at_least: 0.45
    sla_minutes: {high: 60, normal: 240, low: 1440}
    link_fields: [customer_id, device_id, card_number]

``sla_minutes`` is the time from opening to the due time, per priority. The defaults (1 h, 4 h,
24 h) follow the common fraud-operations practice of same-hour review for the riskiest cases and
next-day for the rest; set your own. ``link_fields`` are input fields whose logged value (as
masked or keyed-hashed in the decision log: never raw) ties a case to earlier cases. A value
masked with ``*`` (a card number's first 6 and last 4 digits) is not used: thousands of cards
share it. Mark a card field ``sensitive: hash`` to link by card: its keyed hash is exact.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from engine.cases.model import Priority
from engine.errors import PolicyError, Problem
from engine.policy.yamlio import YamlSyntaxError, load_yaml

__all__ = ["DEFAULT_LINK_FIELDS", "DEFAULT_SLA_MINUTES", "QueueConfig", "ReviewConfig", "is_review_file", "load_review_config", "review_problems"]

DEFAULT_SLA_MINUTES: Mapping[Priority, float] = MappingProxyType({Priority.HIGH: 60.0, Priority.NORMAL: 240.0, Priority.LOW: 1440.0})
DEFAULT_LINK_FIELDS = ("customer_id", "device_id", "card_number", "card_hash", "email")
FILE_NAME = "review.yaml"


class _Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    priority: Priority
    reasons: tuple[str, ...] = Field(default=(), description="Reason codes; any one matches.")
    score: str | None = Field(default=None, description="A model score name (the flow's scores).")
    at_least: float | None = Field(default=None, description="The score's threshold (inclusive).")

    @model_validator(mode="after")
    def _one_test(self) -> _Rule:
        if bool(self.reasons) == (self.score is not None):
            raise ValueError("a priority rule has either `reasons` or `score` with `at_least`")
        if (self.score is None) != (self.at_least is None):
            raise ValueError("`score` and `at_least` go together")
        return self


class _ReviewFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    queue: str | None = Field(default=None, min_length=1, max_length=128)
    default_priority: Priority = Priority.NORMAL
    priority: tuple[_Rule, ...] = ()
    sla_minutes: dict[Priority, Annotated[float, Field(gt=0, le=525_600)]] = Field(default_factory=dict)
    link_fields: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One flow's queue: pure rules from a decision record to (queue, priority, SLA seconds)."""

    queue: str
    default_priority: Priority = Priority.NORMAL
    rules: tuple[tuple[Priority, frozenset[str], str | None, float | None], ...] = ()
    sla_minutes: Mapping[Priority, float] = field(default_factory=lambda: DEFAULT_SLA_MINUTES)
    link_fields: tuple[str, ...] = DEFAULT_LINK_FIELDS

    def priority_of(self, record: Mapping[str, Any]) -> Priority:
        """The first rule the record matches (its reason codes, its scores), else the default."""
        codes = {str(r.get("code", "")) for r in record.get("reasons", ())}
        scores = record.get("scores", {})
        for priority, reasons, score, at_least in self.rules:
            if reasons and codes & reasons:
                return priority
            if score is not None and at_least is not None:
                value = scores.get(score)
                if isinstance(value, int | float) and value >= at_least:
                    return priority
        return self.default_priority

    def sla_seconds(self, priority: Priority) -> float:
        return 60.0 * float(self.sla_minutes.get(priority, DEFAULT_SLA_MINUTES[priority]))

    def links_of(self, record: Mapping[str, Any]) -> dict[str, str]:
        """``field -> logged value`` of the link fields present (non-empty) in the record's input."""
        data = record.get("input", {})
        out = {}
        for name in self.link_fields:
            value = data.get(name) if isinstance(data, Mapping) else None
            if value is None or value == "" or isinstance(value, dict | list) or "*" in str(value):
                continue  # a masked value (first 6 / last 4 of a card) is shared by strangers: no link
            out[name] = str(value)
        return out


@dataclass(frozen=True, slots=True)
class ReviewConfig:
    """The queues of every flow; a flow without ``review.yaml`` gets the defaults."""

    flows: Mapping[str, QueueConfig]

    def for_flow(self, flow: str) -> QueueConfig:
        return self.flows.get(flow) or QueueConfig(queue=flow)


def parse_review(text: str, flow: str, path: str) -> QueueConfig:
    """One flow's ``review.yaml``; raises ``PolicyError`` listing every problem with its line."""
    try:
        doc = load_yaml(text)
    except YamlSyntaxError as exc:
        raise PolicyError([Problem(path, str(exc), "yaml_syntax", line=exc.line, flow=flow)]) from None
    try:
        parsed = _ReviewFile.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(file)"
            problems.append(Problem(path, f"{where}: {err['msg']}", "review_schema", line=doc.line_of(loc), flow=flow))
        raise PolicyError(problems) from None
    return QueueConfig(
        queue=parsed.queue or flow,
        default_priority=parsed.default_priority,
        rules=tuple((r.priority, frozenset(r.reasons), r.score, r.at_least) for r in parsed.priority),
        sla_minutes=MappingProxyType({**DEFAULT_SLA_MINUTES, **parsed.sla_minutes}),
        link_fields=parsed.link_fields if parsed.link_fields is not None else DEFAULT_LINK_FIELDS,
    )


def review_problems(root: Path) -> list[Problem]:
    """Every problem of the ``review.yaml`` files under ``root`` (``verdict lint``, hot reload): the
    ones ``load_review_config`` raises, hence the ones the server refuses at start."""
    try:
        load_review_config(root)
    except PolicyError as exc:
        return list(exc.problems)
    return []


def is_review_file(path: str) -> bool:
    """True for a problem's path that is a ``policies/<flow>/review.yaml``."""
    parts = Path(path).parts
    return len(parts) >= 3 and parts[-1] == FILE_NAME and parts[-3] == "policies"


def load_review_config(root: Path) -> ReviewConfig:
    """Every ``policies/<flow>/review.yaml`` under ``root``; raises ``PolicyError`` with all problems,
    each with the file's path relative to ``root`` and its line."""
    flows: dict[str, QueueConfig] = {}
    problems: list[Problem] = []
    policies = Path(root) / "policies"
    for flow_dir in sorted(p for p in policies.iterdir() if p.is_dir()) if policies.is_dir() else []:
        path = flow_dir / FILE_NAME
        if not path.is_file():
            continue
        shown = f"policies/{flow_dir.name}/{FILE_NAME}"
        try:
            flows[flow_dir.name] = parse_review(path.read_text(encoding="utf-8"), flow_dir.name, shown)
        except PolicyError as exc:
            problems.extend(exc.problems)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(Problem(shown, f"cannot read: {exc}", "review_unreadable", flow=flow_dir.name))
    if problems:
        raise PolicyError(problems)
    return ReviewConfig(flows)
