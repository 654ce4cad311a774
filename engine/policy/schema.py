"""Closed schemas of the files policy owners edit: flows, rule files and routing files.

Every model is frozen and forbids unknown keys, so a typo in a key is an error with its line,
never a silently ignored setting. The loader turns validation errors into ``Problem``s.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from engine.closed import ClosedText
from engine.limits import MAX_INPUT_FIELDS
from engine.state.spec import BehaviourSpec

__all__ = [
    "ActionName",
    "ChallengerSpec",
    "DefaultSpec",
    "FieldSpec",
    "FlowFile",
    "InputSpec",
    "PsiSpec",
    "ModelRef",
    "RoutingFile",
    "RuleFile",
    "RuleSpec",
    "ScreeningSpec",
    "StepBudgetSpec",
    "TableRowSpec",
    "TableSpec",
]

ActionName = Literal["APPROVE", "REVIEW", "DECLINE"]
# The patterns, named so that engine.policy.schema_messages can say each in words.
IDENTIFIER_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"
RULE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"
REASON_CODE_PATTERN = r"^[A-Z][A-Z0-9_]*$"
VERSION_PATTERN = RULE_ID_PATTERN  # a version has the same form as a rule id
RULESET_PATTERN = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN, max_length=64)]
RuleId = Annotated[str, Field(pattern=RULE_ID_PATTERN, max_length=64)]
ReasonCode = Annotated[str, Field(pattern=REASON_CODE_PATTERN, max_length=64)]
VersionName = Annotated[str, Field(pattern=VERSION_PATTERN, max_length=32)]
RulesetName = Annotated[str, Field(pattern=RULESET_PATTERN, max_length=96)]


_Frozen = ClosedText  # the one frozen base model (engine.closed)


class FieldSpec(_Frozen):
    """One input field of a flow."""

    type: Literal["integer", "number", "string", "category", "boolean"]
    required: bool = False
    description: str = ""
    min: float | None = None
    max: float | None = None
    values: tuple[str, ...] | None = None
    max_length: int = Field(default=256, ge=1, le=65536)
    case: Literal["upper", "lower"] | None = Field(default=None, description="string fields: normalise the case")
    sensitive: Literal["mask_pan", "hash", "redact"] | None = None
    identifies: Literal["card", "customer", "device", "ip", "email", "email_domain"] | None = Field(
        default=None,
        description="what the value identifies: a rule may look it up in a custom list of that kind "
        "(`device_id in list('blocked_devices')`; docs/lists.md)",
    )
    protected: bool = Field(
        default=False,
        description="a prohibited basis (e.g. marital status under Reg B): lint refuses a model of the flow that "
        "uses it, directly or through a derived field (engine.policy.protected, docs/compliance.md)",
    )
    default: bool | int | float | str | None = Field(
        default=None,
        description="the value an absent (or null) optional field takes; without it the field is missing, "
        "and a model receives it as missing (docs/policies.md, 'Missing values and defaults')",
    )

    @model_validator(mode="after")
    def _default_fits(self) -> FieldSpec:
        d = self.default
        if d is None:
            return self
        if self.required:
            raise ValueError("a required field cannot have a 'default' (it is never absent)")
        if self.type == "boolean" and not isinstance(d, bool):
            raise ValueError(f"the default of a boolean field must be true or false, not {d!r}")
        if self.type in ("integer", "number"):
            if isinstance(d, bool) or not isinstance(d, (int, float)) or d != d or d in (float("inf"), float("-inf")):
                raise ValueError(f"the default of a {self.type} field must be a finite number, not {d!r}")
            if self.type == "integer" and d != int(d):
                raise ValueError(f"the default of an integer field must be a whole number, not {d!r}")
            if (self.min is not None and d < self.min) or (self.max is not None and d > self.max):
                raise ValueError(f"the default {d!r} is outside min/max")
        if self.type in ("string", "category") and not isinstance(d, str):
            raise ValueError(f"the default of a {self.type} field must be text, not {d!r}")
        if self.type == "category" and d not in (self.values or ()):
            raise ValueError(f"the default {d!r} is not one of the field's values")
        return self

    @model_validator(mode="after")
    def _consistent(self) -> FieldSpec:
        if self.type == "category" and not self.values:
            raise ValueError("a category field needs its allowed 'values'")
        if self.type != "category" and self.values is not None:
            raise ValueError("'values' applies to category fields only")
        if self.type not in ("integer", "number") and (self.min is not None or self.max is not None):
            raise ValueError("'min'/'max' apply to integer and number fields only")
        if self.case is not None and self.type != "string":
            raise ValueError("'case' applies to string fields only")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        if self.values is not None and len(set(self.values)) != len(self.values):
            raise ValueError("'values' lists a value twice")
        return self


class InputSpec(_Frozen):
    """The input schema of a flow version."""

    unknown_fields: Literal["reject", "ignore"] = "reject"
    fields: dict[Identifier, FieldSpec] = Field(max_length=MAX_INPUT_FIELDS, description="at most 256 (engine.limits)")


class ModelRef(_Frozen):
    """A model the flow runs, from model_artifacts/<name>/<version>/."""

    name: Identifier
    version: VersionName
    output: Identifier = Field(description="name of the score in `scores` and in rule conditions")
    max_reasons: int = Field(default=3, ge=1, le=4)
    reasons: dict[Identifier, ReasonCode] = Field(
        default_factory=dict, description="model feature -> reason code given when it drives a decision"
    )


class ScreeningSpec(_Frozen):
    """A sanctions/PEP screening step: one name field against one list from lists/<list>/<version>/."""

    list: Identifier = Field(description="the list's directory under lists/")
    version: VersionName
    name: Identifier = Field(description="input field holding the person's or company's name")
    dob: Identifier | None = Field(default=None, description="input field with the date of birth, YYYY-MM-DD")
    country: Identifier | None = Field(default=None, description="input field with the ISO 3166 alpha-2 country")
    output: Identifier = Field(
        default="sanctions", description="prefix of the features it adds: <output>_match_score, _list, _entity_id",
    )


class PsiSpec(_Frozen):
    """PSI thresholds of the flow's models (engine.monitor): 0.1 watch and 0.25 act by default, the
    credit-scoring convention (Siddiqi, *Credit Risk Scorecards*, Wiley 2006, ch. 8)."""

    watch: float = Field(default=0.1, gt=0, le=10, description="PSI from which an input or score is graded 'watch'")
    act: float = Field(default=0.25, gt=0, le=10, description="PSI from which it is graded 'act' (above watch)")

    @model_validator(mode="after")
    def _ordered(self) -> PsiSpec:
        if not self.watch < self.act:
            raise ValueError(f"psi: watch {self.watch:g} must be below act {self.act:g}")
        return self


class StepBudgetSpec(_Frozen):
    """A step's latency budget and what happens when it misses it or fails (engine.runtime.fallback)."""

    budget_ms: float = Field(gt=0, le=60_000, description="milliseconds the step may take")
    on_miss: Literal["rules_only", "action", "error"] = Field(
        description="rules_only: decide with the step's output missing; action: a fixed REVIEW/DECLINE "
        "with `reason`; error: DEADLINE_EXCEEDED (budget) or UNAVAILABLE (failure)",
    )
    action: ActionName | None = Field(default=None, description="on_miss: action only; REVIEW or DECLINE, never APPROVE")
    reason: ReasonCode | None = Field(default=None, description="on_miss: action only; a code of the flow's reasons")

    @model_validator(mode="after")
    def _action_fits(self) -> StepBudgetSpec:
        if self.on_miss == "action":
            if self.action is None or self.reason is None:
                raise ValueError("on_miss: action needs both 'action' (REVIEW or DECLINE) and 'reason'")
            if self.action == "APPROVE":
                raise ValueError(
                    "a fallback never approves: a step that missed its budget or failed must not let a request "
                    "through unseen; use REVIEW or DECLINE (docs/fallbacks.md)"
                )
        elif self.action is not None or self.reason is not None:
            raise ValueError(f"'action' and 'reason' apply to on_miss: action only, not {self.on_miss}")
        return self


class DefaultSpec(_Frozen):
    """The outcome when no rule fires."""

    action: ActionName
    reason: ReasonCode | None = None


class FlowFile(_Frozen):
    """policies/<flow>/<version>/flow.yaml."""

    flow: Identifier
    version: VersionName
    description: str = ""
    input: InputSpec
    derived: dict[Identifier, str] = Field(default_factory=dict)
    models: tuple[ModelRef, ...] = ()
    screening: tuple[ScreeningSpec, ...] = Field(default=(), max_length=8, description="engine.screening.step")
    rulesets: tuple[RulesetName, ...]
    default: DefaultSpec
    reasons: dict[ReasonCode, str]
    notices: dict[ReasonCode, str] = Field(
        default_factory=dict,
        description="reason code -> applicant-facing text of the adverse-action notice (Reg B 1002.9); with it, "
        "lint requires one for every code a DECLINE can give (engine.runtime.notice, docs/compliance.md)",
    )
    actions: tuple[ActionName, ...] = ("APPROVE", "REVIEW", "DECLINE")
    psi: PsiSpec = Field(
        default_factory=PsiSpec,
        description="PSI watch/act thresholds of drift monitoring for the flow's models (verdict monitor, alerts)",
    )
    budgets: dict[str, StepBudgetSpec] = Field(
        default_factory=dict,
        description="step (validate, screening, features, score, score.<model>, state, rules, explain) -> latency "
        "budget and fallback (engine.runtime.fallback, docs/fallbacks.md)",
    )
    behaviour: BehaviourSpec | None = Field(
        default=None, description="stateful features over time, computed by Verdict (engine.state, docs/behaviour.md)",
    )

    @field_validator("rulesets")
    @classmethod
    def _unique_rulesets(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("a ruleset is listed twice")
        return v

    @model_validator(mode="after")
    def _notices_in_catalogue(self) -> FlowFile:
        stray = sorted(set(self.notices) - set(self.reasons))
        if stray:
            raise ValueError(f"notices: {', '.join(stray)} not in the flow's reasons")
        empty = sorted(code for code, text in self.notices.items() if not text.strip())
        if empty:
            raise ValueError(f"notices: empty text for {', '.join(empty)}")
        return self


class RuleSpec(_Frozen):
    """One rule of a rule file."""

    id: RuleId
    description: str = ""
    when: str
    action: ActionName
    reason: ReasonCode
    message: str | None = None
    priority: int = Field(default=50, ge=0, le=1000)
    enabled: bool = True


TableCell = str | bool | int | float


class TableRowSpec(_Frozen):
    """One row of a decision table: a test per column, and the outcome when all hold."""

    id: RuleId | None = Field(default=None, description="default: <table id>.<row number>")
    description: str = ""
    when: tuple[TableCell, ...] = Field(description="one cell per column; '-' matches any value")
    action: ActionName
    reason: ReasonCode
    message: str | None = None
    priority: int = Field(default=50, ge=0, le=1000)


class TableSpec(_Frozen):
    """A decision table: rows of conditions over a few columns, compiled into ordinary rules."""

    id: RuleId
    description: str = ""
    hit: Literal["first", "collect"] = Field(description="first: only the first matching row fires; collect: every one")
    columns: tuple[str, ...] = Field(min_length=1, max_length=32, description="an expression per column")
    rows: tuple[TableRowSpec, ...] = Field(min_length=1, max_length=500)
    enabled: bool = True


class RuleFile(_Frozen):
    """rules/**/*.yaml: a named ruleset of rules and decision tables."""

    ruleset: RulesetName
    description: str = ""
    engine: Literal["compiled", "durable"] = Field(
        default="compiled", description="durable: evaluate this ruleset with durable-rules (docs/durable-rules.md)"
    )
    rules: tuple[RuleSpec, ...] = ()
    tables: tuple[TableSpec, ...] = ()


class ChallengerSpec(_Frozen):
    """A challenger version that decides a deterministic share of the requests."""

    version: VersionName
    share: float = Field(ge=0, le=1, description="fraction of key values routed to the challenger, e.g. 0.1")
    key: Identifier = Field(description="input field whose value is hashed to route, e.g. customer_id")


class RoutingFile(_Frozen):
    """policies/<flow>/routing.yaml: which version is live, the challenger and the shadows."""

    live: VersionName
    challenger: ChallengerSpec | None = None
    shadow: tuple[VersionName, ...] = Field(default=(), description="versions evaluated on every request, never returned")

    @field_validator("shadow")
    @classmethod
    def _unique_shadows(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(v)) != len(v):
            raise ValueError("a shadow version is listed twice")
        return v
