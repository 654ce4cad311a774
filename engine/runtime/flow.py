"""A compiled, immutable flow version and its pure evaluation.

``CompiledFlow.evaluate(raw_input) -> Outcome`` validates the input, runs its screening steps
(engine.screening.step), computes derived features, scores the flow's models, evaluates every
rule, and resolves the action, ranked reasons and, for a DECLINE, the adverse-action notice
(engine.runtime.notice). It
does no file I/O, reads no clock and keeps no state between calls, so the same input always gives
the same outcome, alone or among thousands of concurrent calls. A caller with a deadline passes
``expired`` (a callable the service builds from its clock); it is asked before each model. A
caller that times the steps passes ``mark``, called with each step's name as it ends (validate,
features, score, rules, explain); the flow itself still reads no clock. A flow with latency
budgets (``budgets``, engine.runtime.fallback) is evaluated under a ``StepGuard`` the caller builds: each
step runs through it, and a step that misses its budget or fails takes the declared fallback
(rules_only: its score is missing; action: a fixed REVIEW/DECLINE; error: a typed error), recorded
in ``Outcome.fallbacks``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import DeadlineExceeded
from engine.expr.codegen import Program
from engine.runtime.fallback import Budgets, StepGuard, StepMissed
from engine.runtime.notice import principal_reasons
from engine.runtime.parts import CompiledModel, CompiledRule, ScoringModel
from engine.runtime.privacy import Masker
from engine.runtime.validation import Validator
from engine.types import Action, FallbackTaken, NoticeReason, Outcome, Reason

if TYPE_CHECKING:
    from engine.custom_lists.snapshot import ListView
    from engine.policy.durable_ruleset import DurableRuleset
    from engine.screening.step import CompiledScreen
    from engine.state.plan import StatePlan

__all__ = ["CompiledFlow", "CompiledModel", "CompiledRule", "ScoringModel"]

MAX_DECLINE_REASONS = 4


class CompiledFlow:
    """One version of one flow, compiled once and evaluated many times."""

    __slots__ = (
        "_default_reasons",
        "budgets",
        "custom_lists",
        "default_action",
        "derived_reads",
        "description",
        "durable",
        "flow",
        "masker",
        "model_versions",
        "models",
        "notices",
        "prepare_key",
        "program",
        "psi",
        "revision",
        "rules",
        "screens",
        "state",
        "validator",
        "version",
    )

    def __init__(
        self,
        *,
        flow: str,
        version: str,
        description: str,
        revision: str,
        validator: Validator,
        program: Program,
        models: Sequence[CompiledModel],
        rules: Sequence[CompiledRule],
        default_action: Action,
        default_reason: Reason | None,
        durable: DurableRuleset | None = None,
        prepare_key: str = "",
        notices: Mapping[str, str] | None = None,
        screens: Sequence[CompiledScreen] = (),
        budgets: Budgets | None = None,
        psi: tuple[float, float] = (0.1, 0.25),
        custom_lists: ListView | None = None,
        state: StatePlan | None = None,
        derived_reads: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.flow = flow
        self.version = version
        self.description = description
        self.revision = revision
        self.validator = validator
        self.masker = Masker(validator.fields)  # what the decision log stores of an input (engine.runtime.privacy)
        self.program = program
        self.models = tuple(models)
        self.rules = tuple(rules)
        self.default_action = default_action
        self._default_reasons = (default_reason,) if default_reason else ()
        self.durable = durable  # the rules of `engine: durable` rule files (indexes into `rules`)
        # Equal non-empty keys: the two versions turn any input into the same values (same input
        # schema, derived features and models), so one's values can be reused by the other.
        self.prepare_key = prepare_key
        # reason code -> applicant-facing text of an adverse-action notice (the flow's notices:)
        self.notices: Mapping[str, str] = MappingProxyType(dict(notices or {}))
        self.screens = tuple(screens)  # sanctions/PEP screening steps, run before derived features
        self.budgets = budgets if budgets is not None else Budgets({})  # latency budgets per step (engine.runtime.fallback)
        self.psi = psi  # (watch, act) PSI thresholds of its models' drift (the flow's psi:, engine.monitor)
        # The custom lists its ``x in list('name')`` tests read: the one input that changes between calls
        # without a new version (docs/lists.md); a test fixes it with ``custom_lists.using(snapshot)``.
        self.custom_lists = custom_lists
        # The behaviour section (engine.state): stateful features a StateStore computes before evaluation
        self.state = state
        # derived feature -> every name it reads, directly or through other derived features (input
        # fields, stateful and screening features): which features a masked input field leaves unknown
        self.derived_reads: Mapping[str, frozenset[str]] = MappingProxyType(dict(derived_reads or {}))
        self.model_versions: Mapping[str, str] = MappingProxyType(
            {m.model.name: f"{m.model.version}@{m.model.sha256[:12]}" for m in self.models}
        )

    def evaluate(
        self, raw: Mapping[str, Any], expired: Callable[[], bool] | None = None, *, mark: Callable[[str], None] | None = None,
        guard: StepGuard | None = None,
    ) -> Outcome:
        """Decide on one input; raises InvalidInput when it does not fit the input schema, and
        DeadlineExceeded when ``expired()`` says the caller's deadline passed before a model.
        ``mark(step)`` (optional) is called as each step ends (see the module docstring).
        ``guard`` (for a flow with ``budgets``) runs each step under its budget; a missed or failed
        step takes its fallback, and an ``error`` fallback raises StepTimedOut or StepFailed.

        A flow with stateful features (``state``) takes their values from ``raw`` beside the input
        fields (a policy test's stated history, a logged decision's ``state``); one not given is
        read as from no history (engine.state.plan.StatePlan.given). A server computes them
        itself instead (engine.state.store.decide_with_state) and refuses them from callers."""
        if guard is not None:
            return self._evaluate_guarded(raw, expired, mark, guard)
        values = self._validate(raw)
        if mark is not None:
            mark("validate")
        return self.evaluate_clean(values, expired, mark=mark)

    def with_state(self, raw: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        """``raw`` plus the stateful-feature values of another evaluation that this version takes: its
        own features (``state``) or its input fields of the same name (a version whose caller sent
        the counters). A replayed or shadow evaluation gets what the decision read this way."""
        names = {f.name for f in self.state.features} if self.state is not None else set()
        out = dict(raw)
        out.update((k, v) for k, v in state.items() if (k in names or k in self.validator.fields) and k not in raw)
        return out

    def evaluate_clean(
        self, values: dict[str, Any], expired: Callable[[], bool] | None = None, *, mark: Callable[[str], None] | None = None
    ) -> Outcome:
        """Decide on already validated values (the dict is extended with derived features)."""
        scores: dict[str, float] = {}
        self._screen(values, scores)
        self.program.derive(values)
        if mark is not None:
            mark("features")
        rows: list[np.ndarray] = []
        for bound in self.models:
            x = _encode(bound, values, expired)
            s = bound.model.score(x)
            values[bound.output] = s
            scores[bound.output] = s
            rows.append(x)
        if mark is not None:
            mark("score")
        hits = self.hits(values)
        if mark is None:
            return self._resolve(hits, values, scores, rows)
        mark("rules")
        outcome = self._resolve(hits, values, scores, rows)
        mark("explain")
        return outcome

    def _evaluate_guarded(
        self, raw: Mapping[str, Any], expired: Callable[[], bool] | None, mark: Callable[[str], None] | None, guard: StepGuard,
    ) -> Outcome:
        """``evaluate`` with every step run by ``guard``; applies the fallback of a step that misses."""
        mark = mark if mark is not None else _no_mark
        try:
            values: dict[str, Any] = guard.run("validate", self._validate, raw)
            mark("validate")
        except StepMissed as missed:
            return self._fallback(missed, {}, [])
        return self.evaluate_guarded(values, expired, mark, guard)

    def evaluate_guarded(
        self, values: dict[str, Any], expired: Callable[[], bool] | None, mark: Callable[[str], None] | None, guard: StepGuard,
        taken: Sequence[FallbackTaken] = (),
    ) -> Outcome:
        """``evaluate_clean`` with every step after validation run by ``guard``, applying the fallback of
        a step that misses; ``taken``: fallbacks already taken before (the state store's ``rules_only``)."""
        mark = mark if mark is not None else _no_mark
        scores: dict[str, float] = {}
        taken = list(taken)
        try:
            if self.screens:
                guard.run("screening", self._screen, values, scores)
            guard.run("features", self.program.derive, values)
            mark("features")
            rows: list[np.ndarray] = []
            for bound in self.models:
                x = _encode(bound, values, expired)
                rows.append(x)
                try:
                    s = guard.run("score." + bound.model.name, bound.model.score, x)
                except StepMissed as missed:
                    if missed.budget.on_miss != "rules_only":
                        raise
                    taken.append(missed.taken)
                    values[bound.output] = None  # missing: rules over it follow docs/expressions.md
                    continue
                values[bound.output] = s
                scores[bound.output] = s
            mark("score")
            hits = guard.run("rules", self.hits, values)
            mark("rules")
            outcome: Outcome = guard.run("explain", self._resolve, hits, values, scores, rows)
            mark("explain")
        except StepMissed as missed:
            return self._fallback(missed, scores, taken)
        return replace(outcome, fallbacks=tuple(taken)) if taken else outcome

    def _validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The validated input, with the stateful features ``raw`` states beside it (see ``evaluate``)."""
        if self.state is None:
            return self.validator(raw)
        raw, given = self.state.given(raw)
        values = self.validator(raw)
        values.update(given)
        return values

    def _screen(self, values: dict[str, Any], scores: dict[str, float]) -> None:
        for step in self.screens:
            scores[step.score_name] = step.apply(values)

    def without_state(
        self, missed: StepMissed, values: dict[str, Any], expired: Callable[[], bool] | None, mark: Callable[[str], None] | None,
        guard: StepGuard,
    ) -> tuple[Outcome, dict[str, Any]]:
        """The outcome when the state store missed its budget or failed (``missed``), and the stateful
        features it used: ``rules_only`` decides with every stateful feature missing (None; rules read
        them as docs/expressions.md says, ``is_null(txn_count_1h)`` holds); ``action`` gives the fixed
        outcome; ``error`` raises StepTimedOut or StepFailed."""
        if missed.budget.on_miss != "rules_only" or self.state is None:
            return self._fallback(missed, {}, []), {}
        state: dict[str, Any] = {f.name: None for f in self.state.features}
        values.update(state)
        return self.evaluate_guarded(values, expired, mark, guard, (missed.taken,)), state

    def _fallback(self, missed: StepMissed, scores: dict[str, float], taken: list[FallbackTaken]) -> Outcome:
        """The outcome of an ``action`` fallback; raises the typed error of an ``error`` one."""
        budget = missed.budget
        if budget.on_miss != "action" or budget.action is None:
            raise missed.as_error() from missed
        reasons = (Reason(budget.reason, budget.message, "fallback", ""),)
        notice = principal_reasons(budget.action, reasons, (), self.notices)
        return Outcome(budget.action, reasons, (), dict(scores), {}, notice, (*taken, missed.taken))

    def derive(self, values: dict[str, Any]) -> None:
        """Add the screening features and derived features to validated ``values`` (in place): what
        ``evaluate_clean`` does before the models run. A batch calls it per row, then scores a chunk."""
        for step in self.screens:
            step.apply(values)
        self.program.derive(values)

    def hits(self, values: dict[str, Any]) -> list[int]:
        """Indexes (into ``rules``) of every rule that holds for validated, derived and scored ``values``."""
        hits = self.program.fired(values)
        if self.durable is not None:
            hits += self.durable.fired(values)
        return hits

    def models_to_explain(self, hits: Sequence[int]) -> list[int]:
        """Indexes (into ``models``) whose reasons the outcome of ``hits`` gives, in the order it asks.

        A model is explained when a rule of the winning action reads its score and the model has an
        explainer (``_resolve``); a batch computes exactly these explanations for many rows at once.
        """
        if not hits:
            return []
        rules = self.rules
        action = max(rules[i].action for i in hits)
        out: list[int] = []
        for i in hits:
            rule = rules[i]
            if rule.action == action:
                out.extend(m for m in rule.models if m not in out and self.models[m].explains)
        return out

    def evaluate_scored(
        self,
        values: dict[str, Any],
        hits: list[int],
        rows: Sequence[np.ndarray] | None = None,
        explanations: Mapping[int, Sequence[tuple[str, float]]] | None = None,
    ) -> Outcome:
        """Decide on validated, derived values whose scores and explanations were computed elsewhere.

        A batch (``engine.batch``) validates and derives each row, scores a whole chunk per model at
        once, finds each row's ``hits`` and computes the TreeSHAP explanations of
        ``models_to_explain(hits)`` for all rows at once. ``values`` holds each model's score under
        its output name, ``rows`` the encoded (1, n) row of each model and ``explanations`` model
        index -> ``Model.explain`` of that row (a model absent from it is explained here). Only
        the resolution of action and reasons runs. Equals ``evaluate`` of the same raw input when
        scores and explanations are the same (tests compare them).
        """
        scores = {step.score_name: values[step.score_name] for step in self.screens}
        scores.update((bound.output, values[bound.output]) for bound in self.models)
        return self._resolve(hits, values, scores, list(rows) if rows is not None else None, explanations)

    def evaluate_prepared(self, features: Mapping[str, Any]) -> Outcome:
        """Decide on the features of another version's outcome with the same ``prepare_key``.

        Validation, derived features and model scores are those of that outcome (they are
        equal by construction); only this version's rules and reasons run. Model rows are
        encoded again only when a model-driven rule needs its reasons. The result equals
        ``evaluate`` of the same raw input (tests compare them).
        """
        values = dict(features)
        scores = {step.score_name: values[step.score_name] for step in self.screens}
        scores.update((bound.output, values[bound.output]) for bound in self.models)
        hits = self.program.fired(values)
        if self.durable is not None:
            hits += self.durable.fired(values)
        return self._resolve(hits, values, scores, None)

    def _resolve(
        self, hits: list[int], values: dict[str, Any], scores: dict[str, float], rows: list[np.ndarray] | None,
        explanations: Mapping[int, Sequence[tuple[str, float]]] | None = None,
    ) -> Outcome:
        if not hits:
            default_notice = principal_reasons(self.default_action, self._default_reasons, (), self.notices)
            return Outcome(self.default_action, self._default_reasons, (), scores, values, default_notice, rows=tuple(rows or ()))
        rules = self.rules
        fired = sorted((rules[i] for i in hits), key=lambda r: (-r.action, -r.priority, r.id))
        action = fired[0].action
        reasons: list[Reason] = []
        seen: set[str] = set()
        explained: set[int] = set()
        for rule in fired:
            if rule.reason_code not in seen:
                seen.add(rule.reason_code)
                reasons.append(Reason(rule.reason_code, rule.message, "rule", rule.id))
            if rule.action == action:
                for m in rule.models:
                    if m not in explained and self.models[m].explains and self.models[m].output in scores:
                        explained.add(m)
                        x = rows[m] if rows is not None else self.models[m].model.encode(values)
                        given = explanations.get(m) if explanations is not None else None
                        self._model_reasons(m, x, rule.id, reasons, seen, given)
        notice: tuple[NoticeReason, ...] = ()
        if action == Action.DECLINE:
            del reasons[MAX_DECLINE_REASONS:]
            notice = principal_reasons(action, reasons, [r.fired for r in fired], self.notices)
        return Outcome(action, tuple(reasons), tuple(r.fired for r in fired), scores, values, notice, rows=tuple(rows or ()))

    def _model_reasons(
        self, m: int, x: np.ndarray, rule_id: str, out: list[Reason], seen: set[str],
        explained: Sequence[tuple[str, float]] | None = None,
    ) -> None:
        bound = self.models[m]
        given = 0
        row = x[0]
        for feature, contribution in explained if explained is not None else bound.model.explain(x):
            if contribution <= 0 or given >= bound.max_reasons:
                break
            entry = bound.reasons.get(feature)
            if entry is None or entry[0] in seen:
                continue
            position = bound.positions.get(feature)
            if position is not None and row[position] != row[position]:
                # Missing (NaN) in this request: its absence raised the score, but the reason's text
                # states a value (NEW_DEVICE: "a device not seen before") the request did not carry.
                continue
            seen.add(entry[0])
            out.append(Reason(entry[0], entry[1], "model", rule_id, feature, float(contribution)))
            given += 1


def _no_mark(step: str) -> None:
    """A ``mark`` that records nothing."""


def _encode(bound: CompiledModel, values: Mapping[str, Any], expired: Callable[[], bool] | None) -> np.ndarray:
    """The model's encoded row of ``values``; raises DeadlineExceeded first when ``expired()`` says so."""
    if expired is not None and expired():
        raise DeadlineExceeded(f"the caller's deadline passed before model {bound.model.name} ran")
    return bound.model.encode(values)
