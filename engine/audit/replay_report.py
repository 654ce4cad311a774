"""The report of a replay or backtest: what changed between two versions' decisions, and how well each did.

``ReplayReport`` counts decisions decided before (logged, or by one version) and after (by another):
action rates, the transition matrix, the rules that drive the changes, rule hit counts, mean scores
(``ExactSum``: exact, so parts counted apart and ``merge``d give the same figures bit for bit),
``Metrics`` against known outcomes and, with protected attributes, fairness per group. It reads no
files and decides nothing: ``engine.audit.replay`` (the log) and ``engine.batch.backtest`` (a history
file) feed it ``Compared`` decisions.
"""

from __future__ import annotations

import bisect
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.audit.follow import Gap
from engine.training.fairness import AGE_BANDS, AIR_THRESHOLD, MIN_GROUP_ROWS, GroupTally
from engine.types import Action

if TYPE_CHECKING:  # only an annotation here; engine.audit.replay imports this module
    from engine.audit.replay import Protected

__all__ = ["ACTIONS", "MAX_EXAMPLES", "Compared", "ExactSum", "Metrics", "ReplayReport", "ranked"]

ACTIONS = (Action.APPROVE, Action.REVIEW, Action.DECLINE)
MAX_EXAMPLES = 5

#: A decision reduced to what a comparison looks at: action, reasons (code, message, source, rule,
#: feature, contribution), fired rules (id, ruleset, action name, reason code, priority), scores.
Compared = tuple[Action, tuple[Any, ...], tuple[Any, ...], dict[str, float]]


@dataclass
class Metrics:
    """Confusion counts of one version's actions against known outcomes."""

    labelled: int = 0
    bad: int = 0
    approved: int = 0
    approved_bad: int = 0
    declined: int = 0
    declined_bad: int = 0
    flagged: int = 0  # REVIEW or DECLINE
    flagged_bad: int = 0

    def add(self, action: Action, is_bad: bool) -> None:
        self.labelled += 1
        self.bad += is_bad
        if action == Action.APPROVE:
            self.approved += 1
            self.approved_bad += is_bad
        else:
            self.flagged += 1
            self.flagged_bad += is_bad
            if action == Action.DECLINE:
                self.declined += 1
                self.declined_bad += is_bad

    def merge(self, other: Metrics) -> None:
        """Add ``other``'s counts (a replay's parts decided apart, e.g. on Spark)."""
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, Any]:
        return {
            "labelled": self.labelled,
            "bad": self.bad,
            "approval_rate": _ratio(self.approved, self.labelled),
            "bad_rate_of_approved": _ratio(self.approved_bad, self.approved),
            "decline_precision": _ratio(self.declined_bad, self.declined),
            "decline_recall": _ratio(self.declined_bad, self.bad),
            "flag_precision": _ratio(self.flagged_bad, self.flagged),
            "flag_recall": _ratio(self.flagged_bad, self.bad),
        }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


class ExactSum:
    """A sum of floats without rounding error until read, so the order of adding does not matter.

    Shewchuk's exact partials ("Adaptive Precision Floating-Point Arithmetic and Fast Robust
    Geometric Predicates", 1997; the algorithm of ``math.fsum``): ``value`` is the correctly
    rounded sum of everything added, so a replay split into parts and ``merge``d (on Spark) gives
    the same means, bit for bit, as one read in order. Non-finite values are summed apart.
    """

    __slots__ = ("partials", "special")

    def __init__(self) -> None:
        self.partials: list[float] = []
        self.special = 0.0

    def add(self, x: float) -> None:
        if not math.isfinite(x):
            self.special += x
            return
        partials = self.partials
        i = 0
        for y in partials:
            if abs(x) < abs(y):
                x, y = y, x
            hi = x + y
            lo = y - (hi - x)
            if lo:
                partials[i] = lo
                i += 1
            x = hi
        partials[i:] = [x]

    def merge(self, other: ExactSum) -> None:
        for x in other.partials:
            self.add(x)
        self.special += other.special

    @property
    def value(self) -> float:
        return math.fsum(self.partials) + self.special if self.special else math.fsum(self.partials)


def ranked(counter: Mapping[Any, int]) -> list[tuple[Any, int]]:
    """``counter``'s items, most first and equal counts by key: the same order however it was counted."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass
class ReplayReport:
    """Everything a replay found; ``as_dict`` is the JSON report."""

    flow: str
    version: str
    revision: str
    location: str = ""
    considered: int = 0  # logged decisions of the flow (shadow records excluded)
    replayed: int = 0
    rejected: int = 0  # the new version refused the logged input (InvalidInput)
    failed: int = 0  # the new version failed otherwise
    rejected_fields: Counter[str] = field(default_factory=Counter)
    produced_by: Counter[str] = field(default_factory=Counter)  # "version@revision[:12]" of the logged decisions
    same_version: int = 0  # logged by this very version and revision: must reproduce exactly
    same_version_differs: int = 0
    same_version_fallbacks: int = 0  # of those, decided by a fallback (timing-dependent: not expected to reproduce)
    changed: int = 0  # the action changed
    differs: int = 0  # anything changed (action, reasons, fired rules or scores)
    before: Counter[str] = field(default_factory=Counter)
    after: Counter[str] = field(default_factory=Counter)
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    drivers: Counter[tuple[str, str]] = field(default_factory=Counter)  # (rule, effect) -> changed decisions
    hits_before: Counter[str] = field(default_factory=Counter)
    hits_after: Counter[str] = field(default_factory=Counter)
    score_sums: dict[str, tuple[ExactSum, ExactSum, list[int]]] = field(default_factory=dict)  # name -> sums before, after, [n]
    examples: dict[str, list[str]] = field(default_factory=dict)  # "A->B" -> decision ids, the first in log order
    example_order: dict[str, list[int]] = field(default_factory=dict)  # "A->B" -> each example's place in the log
    outcomes_given: bool = False
    unmatched_outcomes: int = 0
    metrics_before: Metrics = field(default_factory=Metrics)
    metrics_after: Metrics = field(default_factory=Metrics)
    gaps: list[Gap] = field(default_factory=list)  # parts of the log that were not there to read
    notes: list[str] = field(default_factory=list)  # what the replayed source cannot reproduce (an older export)
    protected: Protected | None = None  # protected attributes joined by request id (never from the log)
    groups_before: GroupTally = field(default_factory=GroupTally)  # logged decisions per group
    groups_after: GroupTally = field(default_factory=GroupTally)  # new decisions per group
    unmatched_protected: int = 0  # replayed decisions whose request id the protected file lacks
    matched_outcomes: set[str] = field(default_factory=set)  # ids of the outcomes file that matched a replayed decision

    @property
    def complete(self) -> bool:
        """True when the whole log was read (no gap): the report covers every logged decision."""
        return not self.gaps

    def compare(self, before: Compared, after: Compared, example_id: str, order: int | None = None) -> None:
        """Count one decision decided ``before`` and ``after`` (as ``comparable``): rates, transitions,
        rule hits, score sums, differences, the rules behind an action change and examples of it.

        ``order`` is the decision's place in the log (default: the order of the calls); the examples
        kept are the ``MAX_EXAMPLES`` first in that order, whatever order the calls come in."""
        b_action, a_action = before[0], after[0]
        self.replayed += 1
        self.before[b_action.name] += 1
        self.after[a_action.name] += 1
        self.transitions[(b_action.name, a_action.name)] += 1
        self.hits_before.update(f[0] for f in before[2])
        self.hits_after.update(f[0] for f in after[2])
        for name in set(before[3]) | set(after[3]):
            sums = self.score_sums.get(name)
            if sums is None:
                sums = self.score_sums[name] = (ExactSum(), ExactSum(), [0])
            if name in before[3] and name in after[3]:
                sums[0].add(before[3][name])
                sums[1].add(after[3][name])
                sums[2][0] += 1
        if before != after:
            self.differs += 1
        if b_action != a_action:
            self.changed += 1
            self.drivers.update(_drivers(b_action, before[2], a_action, after[2]))
            self._example(f"{b_action.name}->{a_action.name}", example_id, self.replayed if order is None else order)

    def _example(self, transition: str, example_id: str, order: int) -> None:
        ids = self.examples.setdefault(transition, [])
        keys = self.example_order.setdefault(transition, [])
        if len(keys) >= MAX_EXAMPLES and order >= keys[-1]:
            return
        at = bisect.bisect(keys, order)
        keys.insert(at, order)
        ids.insert(at, example_id)
        del keys[MAX_EXAMPLES:], ids[MAX_EXAMPLES:]

    def mean_scores(self) -> dict[str, tuple[float, float, int]]:
        """Score name -> (mean before, mean after, decisions with the score on both sides), by name."""
        return {name: (s[0].value / s[2][0], s[1].value / s[2][0], s[2][0])
                for name, s in sorted(self.score_sums.items()) if s[2][0]}

    def merge(self, other: ReplayReport) -> None:
        """Add ``other``, a report of another part of the same log (``replay`` over each part, e.g. a
        Spark partition): the sum is the report of the whole, the same as one replay in log order
        (examples by ``order``, sums exact, ``ranked`` orders). Gaps, notes and ``location`` stay ``self``'s."""
        for name in ("considered", "replayed", "rejected", "failed", "same_version", "same_version_differs", "changed",
                     "differs", "unmatched_protected"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for counter in ("rejected_fields", "produced_by", "before", "after", "transitions", "drivers", "hits_before",
                        "hits_after"):
            getattr(self, counter).update(getattr(other, counter))
        for name, (b, a, n) in other.score_sums.items():
            mine = self.score_sums.setdefault(name, (ExactSum(), ExactSum(), [0]))
            mine[0].merge(b)
            mine[1].merge(a)
            mine[2][0] += n[0]
        for transition, ids in other.examples.items():
            for example_id, order in zip(ids, other.example_order[transition], strict=True):
                self._example(transition, example_id, order)
        self.metrics_before.merge(other.metrics_before)
        self.metrics_after.merge(other.metrics_after)
        self.groups_before.merge(other.groups_before)
        self.groups_after.merge(other.groups_after)
        self.matched_outcomes |= other.matched_outcomes

    def count_unmatched(self, outcomes: Mapping[str, bool] | None) -> None:
        """Set ``unmatched_outcomes``: ids of ``outcomes`` that matched no replayed decision."""
        if outcomes is not None:
            self.unmatched_outcomes = len(set(outcomes) - self.matched_outcomes)

    def reproduce(self, before: Compared, after: Compared, *, fallback: bool) -> None:
        """Count one decision logged by the replayed version itself: it must reproduce, unless a
        fallback took it (a step missed its budget then: timing, not policy)."""
        if fallback:
            self.same_version_fallbacks += 1
        else:
            self.same_version += 1
            self.same_version_differs += before != after

    def fairness(self) -> dict[str, Any]:
        """``before``/``after`` -> attribute -> per-group approval rate, AIR and bad rate of approved."""
        order = {self.protected.age: [b[0] for b in AGE_BANDS]} if self.protected and self.protected.age else {}
        return {"before": self.groups_before.table(order), "after": self.groups_after.table(order)}

    def rate(self, counter: Counter[str], action: str) -> float | None:
        return _ratio(counter[action], self.replayed)

    def as_dict(self) -> dict[str, Any]:
        names = [a.name for a in ACTIONS]
        scores = {name: {"mean_before": b, "mean_after": a, "n": n} for name, (b, a, n) in self.mean_scores().items()}
        rules = sorted(set(self.hits_before) | set(self.hits_after))
        out: dict[str, Any] = {
            "flow": self.flow,
            "version": self.version,
            "revision": self.revision,
            "log": self.location,
            "complete": self.complete,
            "gaps": [g.as_dict() for g in self.gaps],
            "logged_versions": dict(ranked(self.produced_by)),
            "considered": self.considered,
            "replayed": self.replayed,
            "rejected": self.rejected,
            "rejected_fields": dict(ranked(self.rejected_fields)),
            "failed": self.failed,
            "reproduction": {"logged_by_this_version": self.same_version, "differs": self.same_version_differs,
                             "fallbacks_left_out": self.same_version_fallbacks},
            "changed": self.changed,
            "changed_rate": _ratio(self.changed, self.replayed),
            "differs": self.differs,
            "actions": {
                a: {
                    "before": self.before[a],
                    "after": self.after[a],
                    "before_rate": self.rate(self.before, a),
                    "after_rate": self.rate(self.after, a),
                }
                for a in names
            },
            "transitions": {b: {a: self.transitions[(b, a)] for a in names} for b in names},
            "drivers": [
                {"rule": rule, "effect": effect, "decisions": n} for (rule, effect), n in ranked(self.drivers)
            ],
            "rule_hits": {r: {"before": self.hits_before[r], "after": self.hits_after[r]} for r in rules},
            "scores": scores,
            "examples": dict(sorted(self.examples.items())),
        }
        if self.notes:
            out["notes"] = list(self.notes)
        if self.outcomes_given:
            out["outcomes"] = {
                "unmatched_ids": self.unmatched_outcomes,
                "before": self.metrics_before.as_dict(),
                "after": self.metrics_after.as_dict(),
            }
        if self.protected is not None:
            out["fairness"] = {
                "definition": f"approval = APPROVE; AIR = a group's approval rate / the most favoured group's; flagged "
                              f"below {AIR_THRESHOLD} (four-fifths rule, 29 CFR 1607.4(D)) for groups of at least "
                              f"{MIN_GROUP_ROWS} rows",
                "attributes": list(self.protected.attributes), "unmatched_decisions": self.unmatched_protected,
                **self.fairness(),
            }
        return out


def _drivers(before_action: Action, before_fired: tuple[Any, ...], after_action: Action, after_fired: tuple[Any, ...]) -> list[tuple[str, str]]:
    """The rules that explain an action change: newly firing at the new action, or no longer firing at the old."""
    before_set = {(f[0], f[2]) for f in before_fired}
    after_set = {(f[0], f[2]) for f in after_fired}
    if after_action > before_action:
        found = [(f[0], f"now fires -> {after_action.name}") for f in after_fired if f[2] == after_action.name and (f[0], f[2]) not in before_set]
    else:
        found = [
            (f[0], f"no longer fires (was {before_action.name})")
            for f in before_fired
            if f[2] == before_action.name and (f[0], f[2]) not in after_set
        ]
    return found or [("(flow default)", f"{before_action.name} -> {after_action.name}")]
