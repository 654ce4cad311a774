"""Compile one parsed flow version, with its rule files and models, into a CompiledFlow.

Pure: takes parsed documents and loaded models, returns the compiled flow and every problem found
(with file, line, rule id and a hint). The loader does the file I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NamedTuple

from engine.custom_lists.snapshot import ListView
from engine.errors import Problem
from engine.expr import ExprSyntaxError, ExprTypeError, names_in, parse
from engine.expr.check import LIST_PREFIX, Symbol, check, list_symbol
from engine.expr.codegen import CodegenLimit, compile_program, derived_symbol
from engine.expr.syntax import Literal, Node
from engine.policy.durable import DurableRuleset, NotExpressible, to_durable
from engine.policy.schema import FlowFile, RuleFile, RuleSpec
from engine.policy.tables import RowRule, expand_tables
from engine.policy.yamlio import LoadedYaml
from engine.runtime.fallback import STEPS, Budget, Budgets, step_of
from engine.runtime.flow import CompiledFlow, CompiledModel, CompiledRule, ScoringModel
from engine.runtime.validation import compile_validator, field_bounds
from engine.screening.lists import ScreeningList
from engine.screening.step import CompiledScreen, feature_names
from engine.state.plan import StatePlan, compile_plan
from engine.suggest import did_you_mean
from engine.types import Action, FiredRule, Reason

__all__ = ["FlowSource", "RuleSource", "compile_flow", "flow_env"]

_FIELD_TYPES = {
    "integer": "number",
    "number": "number",
    "string": "string",
    "category": "string",
    "boolean": "bool",
}
_MODEL_FEATURE_TYPES = {"numeric": {"number"}, "categorical": {"string"}, "boolean": {"bool"}}


@dataclass(frozen=True)
class RuleSource:
    """A parsed rule file: where it came from, its line map and its content."""

    path: str
    doc: LoadedYaml
    file: RuleFile
    digest: str


@dataclass(frozen=True)
class FlowSource:
    """A parsed flow file."""

    path: str
    doc: LoadedYaml
    file: FlowFile
    digest: str


@dataclass
class _Ctx:
    flow: FlowSource
    problems: list[Problem] = field(default_factory=list)

    def add(self, message: str, code: str, *, loc: tuple[str | int, ...] = (), src: RuleSource | None = None, **kw: object) -> None:
        doc = src.doc if src else self.flow.doc
        path = src.path if src else self.flow.path
        self.problems.append(Problem(path=path, message=message, code=code, line=doc.line_of(loc), **kw))  # type: ignore[arg-type]


def flow_env(flow: FlowFile) -> dict[str, Symbol]:
    """The names a flow's expressions may read before derived features and scores are added."""
    env: dict[str, Symbol] = {}
    for name, spec in flow.input.fields.items():
        cats = frozenset(spec.values) if spec.values else None
        lo, hi = field_bounds(spec) if spec.type in ("integer", "number") else (None, None)
        bounds = (lo, hi) if lo is not None and hi is not None else None  # what validation holds it to
        optional = not spec.required and spec.default is None  # can it be missing?
        env[name] = Symbol(_FIELD_TYPES[spec.type], optional, "input", cats, bounds, identifies=spec.identifies)
    return env


def _expr_problem(ctx: _Ctx, exc: Exception, *, loc: tuple[str | int, ...], src: RuleSource | None, **kw: object) -> None:
    if isinstance(exc, ExprSyntaxError):
        ctx.add(f"syntax error in expression: {exc.message}, column {exc.column}", "expression_syntax", loc=loc, src=src, **kw)
    elif isinstance(exc, ExprTypeError):
        ctx.add(f"{exc.message}, column {exc.column}", exc.code, loc=loc, src=src, hint=exc.hint, **kw)


def _order_derived(ctx: _Ctx, parsed: dict[str, Node]) -> list[str]:
    """Derived names in dependency order; reports cycles."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = " -> ".join([*trail[trail.index(name):], name])
            ctx.add(f"derived features depend on each other in a cycle: {cycle}", "derived_cycle", loc=("derived", name))
            return
        state[name] = 1
        for dep in sorted(names_in(parsed[name])):
            if dep in parsed:
                visit(dep, [*trail, name])
        state[name] = 2
        order.append(name)

    for name in parsed:
        visit(name, [])
    return order


def _check_model_feature(ctx: _Ctx, model: str, card: object, name: str, sym: Symbol, can_be_missing: bool, loc: tuple[str | int, ...]) -> None:
    """Warnings where the flow can send a model a value its card says it never learned to score.

    ``model_never_saw_missing``: the flow can send the feature missing, but the card records no
    missing value in training (LightGBM then scores missing as 0: a missing boolean as false).
    ``model_unknown_category``: a category value the flow accepts is not in the card's categories
    (the model receives it as missing).
    """
    spec = next((f for f in getattr(card, "features", ()) if f.name == name), None)
    if spec is None:
        return
    if can_be_missing and spec.missing_in_training == 0:
        field = f"input.fields.{name}" if sym.kind == "input" else f"derived.{name}"
        where = ("input", "fields", name) if sym.kind == "input" else ("derived", name)  # where a fix goes
        ctx.add(
            f"model {model} never saw {name!r} missing in training, but the flow can send it missing "
            "(the model scores a missing value as 0" + (", i.e. false)" if spec.type == "boolean" else ")"),
            "model_never_saw_missing",
            loc=where,
            field=name,
            severity="warning",
            hint=f"declare a default for {field} (docs/policies.md), make the field required, "
            "or retrain the model on data where it is missing",
        )
    if spec.type == "categorical" and sym.categories:
        unknown = sorted(set(sym.categories) - set(spec.categories or ()))
        if unknown:
            ctx.add(
                f"model {model} does not know {len(unknown)} value(s) of {name!r} the flow accepts: "
                f"{', '.join(unknown)} (scored as missing)",
                "model_unknown_category",
                loc=("input", "fields", name) if sym.kind == "input" else loc,
                field=name,
                severity="warning",
                hint="retrain the model with these values, or map them to known ones in a derived feature",
            )


def _compile_derived(ctx: _Ctx, flow: FlowFile, env: dict[str, Symbol]) -> tuple[list[tuple[str, Node]], set[str]]:
    """Derived features: parse all, order by dependency, type-check in order, adding each to `env`.

    Returns the (name, expression) pairs in evaluation order, and the names of those that can
    never be missing; problems go to `ctx`.
    """
    parsed: dict[str, Node] = {}
    for name, text in flow.derived.items():
        if name in env:
            ctx.add(f"derived feature {name!r} has the name of an input field", "duplicate_name", loc=("derived", name))
            continue
        try:
            parsed[name] = parse(text)
        except ExprSyntaxError as exc:
            _expr_problem(ctx, exc, loc=("derived", name), src=None, field=name)
    derived: list[tuple[str, Node]] = []
    for name in _order_derived(ctx, parsed):
        try:
            env[name] = derived_symbol(parsed[name], env)  # type, can it be missing, bounds
        except ExprTypeError as exc:
            _expr_problem(ctx, exc, loc=("derived", name), src=None, field=name)
            env[name] = Symbol("number", True, "derived")  # keep going; errors already reported
            continue
        derived.append((name, parsed[name]))

    # A derived number with finite bounds computed only from values that cannot be missing is never
    # missing (``amount / price`` with price >= 1), although the checker calls every division nullable.
    never_missing = {
        name for name, node in derived
        if env[name].bounds is not None and all(n in env and not env[n].nullable for n in names_in(node))
    }
    return derived, never_missing


# Long (69 lines): per model, the checks of its features, reasons, explainer and output name, then the binding.
def _bind_models(
    ctx: _Ctx,
    flow: FlowFile,
    models: Mapping[tuple[str, str], ScoringModel],
    env: dict[str, Symbol],
    catalogue: Mapping[str, str],
    never_missing: set[str],
) -> tuple[list[CompiledModel], dict[str, int]]:
    """Models: resolve each, check its features are supplied with compatible types, add its score to `env`.

    Returns the bound models in the flow's order and each score's name -> index in that list.
    """
    bound: list[CompiledModel] = []
    model_index: dict[str, int] = {}
    for i, ref in enumerate(flow.models):
        loc: tuple[str | int, ...] = ("models", i)
        model = models.get((ref.name, ref.version))
        if model is None:
            ctx.add(
                f"model {ref.name} version {ref.version} is not available",
                "unknown_model",
                loc=loc,
                hint=f"expected model_artifacts/{ref.name}/{ref.version}/ with model.onnx and card.json",
            )
            continue
        for feat in getattr(model, "features", ()):
            sym = env.get(feat.name)
            if sym is None:
                ctx.add(
                    f"model {ref.name} needs feature {feat.name!r}, which the flow does not supply",
                    "model_feature_missing",
                    loc=loc,
                    field=feat.name,
                    hint="add it as an input field or a derived feature with the same name",
                )
            elif sym.type not in _MODEL_FEATURE_TYPES.get(feat.type, {sym.type}):
                ctx.add(
                    f"model {ref.name} feature {feat.name!r} is {feat.type} but the flow supplies a {sym.type}",
                    "model_feature_type",
                    loc=loc,
                    field=feat.name,
                )
            else:
                _check_model_feature(ctx, ref.name, getattr(model, "card", None), feat.name, sym,
                                     sym.nullable and feat.name not in never_missing, loc)
        feature_names = {f.name for f in getattr(model, "features", ())}
        reasons: dict[str, tuple[str, str]] = {}
        for feat, code in ref.reasons.items():
            if feature_names and feat not in feature_names:
                ctx.add(f"model {ref.name} has no feature {feat!r}", "unknown_model_feature", loc=(*loc, "reasons", feat))
            if code not in catalogue:
                ctx.add(f"reason code {code} is not in the flow's reasons", "unknown_reason", loc=(*loc, "reasons", feat))
            reasons[feat] = (code, catalogue.get(code, code))
        explains = bool(getattr(model, "has_explainer", True))
        if not explains and ref.reasons:
            ctx.add(
                f"model {ref.name} has no explainer, so it can give none of the reasons mapped under 'reasons'",
                "model_has_no_explainer",
                loc=(*loc, "reasons"),
                hint="remove 'reasons' (a rule reading its score gives the rule's own reason), or use a model "
                "whose card lists an explainer (LightGBM, logistic)",
            )
        if ref.output in env:
            ctx.add(f"model output {ref.output!r} clashes with another name", "duplicate_name", loc=(*loc, "output"))
        # A score the flow may decide without (budgets: rules_only) can be missing: rules are guarded.
        skippable = (flow.budgets.get(f"score.{ref.name}") or flow.budgets.get("score"))
        env[ref.output] = Symbol("number", skippable is not None and skippable.on_miss == "rules_only", "score")
        model_index[ref.output] = len(bound)
        positions = {name: j for j, name in enumerate(getattr(model, "feature_names", ()))}
        bound.append(CompiledModel(model, ref.output, ref.max_reasons, reasons, explains, MappingProxyType(positions)))
    return bound, model_index


def _default_outcome(ctx: _Ctx, flow: FlowFile, catalogue: Mapping[str, str]) -> tuple[Action, Reason | None]:
    """The default outcome (action, reason) when no rule fires; a REVIEW or DECLINE needs a reason."""
    default_action = Action[flow.default.action]
    default_reason: Reason | None = None
    if flow.default.reason:
        if flow.default.reason not in catalogue:
            ctx.add(f"reason code {flow.default.reason} is not in the flow's reasons", "unknown_reason", loc=("default", "reason"))
        default_reason = Reason(flow.default.reason, catalogue.get(flow.default.reason, ""), "rule", "default")
    elif default_action != Action.APPROVE:
        ctx.add("a default of REVIEW or DECLINE needs a 'reason'", "missing_reason", loc=("default",))
    return default_action, default_reason


class _Rules(NamedTuple):
    """The rules of a flow, compiled: each with its condition and where that condition was written."""

    rules: list[CompiledRule]
    conditions: list[Node]  # one per rule; Literal(False) for a rule durable-rules evaluates
    condition_at: list[tuple[RuleSource, tuple[str | int, ...], str]]  # where each condition was written
    durable_rules: list[tuple[int, Node]]  # (index in `rules`, condition) of `engine: durable` rulesets


# Long (82 lines): per rule, the checks of its id, reason, action and condition, then the rule itself.
def _compile_rules(
    ctx: _Ctx,
    flow: FlowFile,
    rulesets: Mapping[str, RuleSource],
    env: dict[str, Symbol],
    catalogue: Mapping[str, str],
    model_index: Mapping[str, int],
) -> _Rules:
    """Rules from every ruleset, in a deterministic order (outcomes never depend on it)."""
    allowed_actions = set(flow.actions)
    rules: list[CompiledRule] = []
    conditions: list[Node] = []
    condition_at: list[tuple[RuleSource, tuple[str | int, ...], str]] = []  # where each condition was written
    durable_rules: list[tuple[int, Node]] = []  # (index in `rules`, condition) of `engine: durable` rulesets
    seen_ids: dict[str, str] = {}
    for j, name in enumerate(flow.rulesets):
        src = rulesets.get(name)
        if src is None:
            hint = did_you_mean(name, rulesets) or "check the 'ruleset:' name at the top of the rule file"
            ctx.add(f"ruleset {name!r} not found under rules/", "unknown_ruleset", loc=("rulesets", j), hint=hint)
            continue
        entries: list[tuple[RuleSpec | RowRule, tuple[str | int, ...], Node | None]] = [
            (spec, ("rules", k), None) for k, spec in enumerate(src.file.rules) if spec.enabled
        ]
        table_rules, table_problems = expand_tables(src.file.tables, src.path, src.doc, env)
        ctx.problems.extend(table_problems)
        entries += [(row, row.row.loc, row.node) for row in table_rules]
        for spec, loc, prebuilt in entries:
            where = f"{src.path}:{src.doc.line_of(loc)}"
            if spec.id in seen_ids:
                ctx.add(f"rule id {spec.id} is used twice (also at {seen_ids[spec.id]})", "duplicate_rule", loc=(*loc, "id"), src=src, rule=spec.id)
                continue
            seen_ids[spec.id] = where
            if spec.reason not in catalogue:
                ctx.add(
                    f"reason code {spec.reason} is not in the reasons of flow {flow.flow} {flow.version}",
                    "unknown_reason",
                    loc=(*loc, "reason"),
                    src=src,
                    rule=spec.id,
                    hint="add it under 'reasons:' in the flow file",
                )
            if spec.action not in allowed_actions:
                ctx.add(f"action {spec.action} is not among the flow's actions {sorted(allowed_actions)}", "action_not_allowed", loc=(*loc, "action"), src=src, rule=spec.id)
            try:
                node = prebuilt if prebuilt is not None else parse(spec.when)
                t = check(node, env)
            except (ExprSyntaxError, ExprTypeError) as exc:
                _expr_problem(ctx, exc, loc=(*loc, "when"), src=src, rule=spec.id)
                continue
            if t.type != "bool":
                ctx.add(f"the condition is a {t.type}, not a true/false test", "not_a_condition", loc=(*loc, "when"), src=src, rule=spec.id, hint="compare it, e.g. 'x > 0'")
                continue
            on_durable = src.file.engine == "durable"
            if on_durable:
                try:
                    to_durable(node, env)
                except NotExpressible as exc:
                    ctx.add(f"durable-rules cannot evaluate this condition: {exc.reason}", "not_expressible_in_durable", loc=(*loc, "when"), src=src, rule=spec.id, hint="rewrite it, or remove 'engine: durable' from the rule file (docs/durable-rules.md)")
                    continue
            used = tuple(sorted(model_index[n] for n in names_in(node) if n in model_index))
            message = spec.message or catalogue.get(spec.reason, spec.reason)
            action = Action[spec.action]
            rules.append(
                CompiledRule(
                    id=spec.id,
                    ruleset=name,
                    action=action,
                    reason_code=spec.reason,
                    message=message,
                    priority=spec.priority,
                    models=used,
                    source=where,
                    condition=spec.when,
                    fired=FiredRule(spec.id, name, action, spec.reason, spec.priority, bool(used)),
                )
            )
            if on_durable:
                durable_rules.append((len(conditions), node))
            conditions.append(Literal(False) if on_durable else node)  # durable rules never fire in the compiled function
            condition_at.append((src, (*loc, "when"), spec.id))
    return _Rules(rules, conditions, condition_at, durable_rules)


def compile_flow(
    source: FlowSource,
    rulesets: Mapping[str, RuleSource],
    models: Mapping[tuple[str, str], ScoringModel],
    revision: str,
    lists: Mapping[tuple[str, str], ScreeningList] | None = None,
    custom_lists: ListView | None = None,
    events: Mapping[str, Mapping[str, str]] | None = None,
) -> tuple[CompiledFlow | None, list[Problem]]:
    """Compile a flow version; returns (flow, problems) and the flow is None if any problem is an error.

    ``custom_lists``: the view whose declared lists ``x in list('name')`` may read (none without it).
    ``events``: event type -> field -> "number"/"string", the types its stateful features may read.
    """
    ctx = _Ctx(source)
    flow = source.file
    env = flow_env(flow)
    if custom_lists is not None:
        env.update({LIST_PREFIX + name: list_symbol(kind.value) for name, kind in custom_lists.kinds.items()})
    catalogue = dict(flow.reasons)
    screens = _screens(ctx, flow, env, lists or {})
    state = _state_plan(ctx, flow, env, events or {})
    derived, never_missing = _compile_derived(ctx, flow, env)
    bound, model_index = _bind_models(ctx, flow, models, env, catalogue, never_missing)
    default_action, default_reason = _default_outcome(ctx, flow, catalogue)
    budgets = compile_budgets(ctx, flow, catalogue)
    rules, conditions, condition_at, durable_rules = _compile_rules(ctx, flow, rulesets, env, catalogue, model_index)

    if any(p.severity == "error" for p in ctx.problems):
        return None, ctx.problems
    try:
        program = compile_program(env, derived, conditions, label=f"{flow.flow} {flow.version}", lists=custom_lists)
        durable = DurableRuleset(durable_rules, env, label=f"{flow.flow}_{flow.version}") if durable_rules else None
    except CodegenLimit as exc:
        _codegen_problem(ctx, exc, derived, condition_at)
        return None, ctx.problems
    except Exception as exc:  # noqa: BLE001 - any failure to compile is a problem with the flow, never a crash
        ctx.add(f"the flow cannot be compiled: {type(exc).__name__}: {exc}", "compile_failed", loc=("flow",),
                hint="simplify the longest expressions (split them into derived features) and report this as a bug")
        return None, ctx.problems
    compiled = CompiledFlow(
        flow=flow.flow,
        version=flow.version,
        description=flow.description,
        revision=revision,
        validator=compile_validator(flow.input),
        program=program,
        models=bound,
        rules=rules,
        default_action=default_action,
        default_reason=default_reason,
        durable=durable,
        prepare_key=prepare_key(flow, bound),
        notices=flow.notices,
        screens=screens,
        budgets=budgets,
        psi=(flow.psi.watch, flow.psi.act),
        custom_lists=custom_lists,
        state=state,
        derived_reads=derived_reads(derived, screens),
    )
    return compiled, ctx.problems


def derived_reads(derived: Sequence[tuple[str, Node]], screens: Sequence[CompiledScreen] = ()) -> dict[str, frozenset[str]]:
    """Derived and screening feature -> the input names it reads, directly or through earlier
    features (``derived`` in evaluation order, as ``_compile_derived`` returns it; ``screens`` run
    first, each of its three features reading the step's name, date-of-birth and country fields)."""
    reads: dict[str, frozenset[str]] = {}
    for screen in screens:
        fields = frozenset(f for f in (screen.name_field, screen.dob_field, screen.country_field) if f)
        reads.update(dict.fromkeys(feature_names(screen.output), fields))
    for name, node in derived:
        direct = names_in(node)
        reads[name] = frozenset(direct.union(*(reads[n] for n in direct if n in reads)))
    return reads


def compile_budgets(ctx: _Ctx, flow: FlowFile, catalogue: Mapping[str, str]) -> Budgets:
    """The flow's ``budgets:`` as engine.runtime.fallback's compiled Budgets; every bad entry is a problem at its line:
    ``unknown_step`` (not a step of engine.runtime.fallback.STEPS, or ``score.<model>`` of no model of the flow),
    ``rules_only_not_allowed`` (a step the rules cannot do without) and ``unknown_reason``."""
    out: dict[str, Budget] = {}
    models = {m.name for m in flow.models}
    for key, spec in flow.budgets.items():
        step = step_of(key)
        loc = ("budgets", key)
        name = key.split(".", 1)[1] if "." in key else ""
        if step is None or (name and (step.name != "score" or name not in models)):
            known = ", ".join([*STEPS, *(f"score.{m}" for m in sorted(models))])
            ctx.add(f"budgets: unknown step {key!r}", "unknown_step", loc=loc, hint=f"the steps are {known} (docs/fallbacks.md)")
            continue
        if spec.on_miss == "rules_only" and not step.skippable:
            ctx.add(f"budgets: {key}: rules_only applies to steps the rules can do without (model scores), not to this one",
                    "rules_only_not_allowed", loc=(*loc, "on_miss"), hint="use on_miss: action (REVIEW or DECLINE) or error")
        if spec.reason is not None and spec.reason not in catalogue:
            ctx.add(f"budgets: {key}: reason {spec.reason} is not in the flow's reasons", "unknown_reason", loc=(*loc, "reason"))
        out[key] = Budget(
            key, spec.budget_ms / 1000.0, spec.on_miss,
            Action[spec.action] if spec.action else None, spec.reason or "", catalogue.get(spec.reason or "", ""),
            preempt=step is not None and step.preempt,
        )
    return Budgets(out)


def _codegen_problem(
    ctx: _Ctx, exc: CodegenLimit, derived: Sequence[tuple[str, Node]], condition_at: Sequence[tuple[RuleSource, tuple[str | int, ...], str]]
) -> None:
    """Report the derived feature or rule whose generated code CPython cannot compile."""
    hint = "split it into derived features, each a part of the expression"
    if exc.kind == "derived":
        name = derived[exc.index][0]
        ctx.add(f"derived feature {name}: {exc.message}", "expression_too_complex", loc=("derived", name), field=name, hint=hint)
    elif exc.kind == "condition":
        src, loc, rule = condition_at[exc.index]
        ctx.add(exc.message, "expression_too_complex", loc=loc, src=src, rule=rule, hint=hint)
    else:
        ctx.add(f"the flow cannot be compiled: {exc.message}", "compile_failed", loc=("flow",), hint=hint)


def _screens(ctx: _Ctx, flow: FlowFile, env: dict[str, Symbol], lists: Mapping[tuple[str, str], ScreeningList]) -> list[CompiledScreen]:
    """Bind the flow's screening steps to their lists and fields; add their features to ``env``."""
    out: list[CompiledScreen] = []
    for i, spec in enumerate(flow.screening):
        loc = ("screening", i)
        lst = lists.get((spec.list, spec.version))
        if lst is None:
            ctx.add(f"screening list {spec.list} version {spec.version} is not available", "unknown_list", loc=loc,
                    hint=f"expected lists/{spec.list}/{spec.version}/ with list.yaml and its entity file")
        for key in ("name", "dob", "country"):
            field_name = getattr(spec, key)
            if field_name is None:
                continue
            sym = env.get(field_name)
            if sym is None or sym.kind != "input":
                ctx.add(f"screening {key} field {field_name!r} is not an input field", "unknown_field", loc=(*loc, key), field=field_name)
            elif sym.type not in ("string", "category"):
                ctx.add(f"screening {key} field {field_name!r} is a {sym.type}, not text", "type_error", loc=(*loc, key), field=field_name)
        score, list_name, entity = feature_names(spec.output)
        for n in (score, list_name, entity):
            if n in env:
                ctx.add(f"screening feature {n!r} clashes with another name", "duplicate_name", loc=(*loc, "output"))
        env[score] = Symbol("number", False, "screening", None, (0.0, 1.0))
        env[list_name] = Symbol("string", False, "screening")
        env[entity] = Symbol("string", False, "screening")
        if lst is not None:
            out.append(CompiledScreen(lst, spec.name, spec.dob, spec.country, spec.output))
    return out


def _state_plan(ctx: _Ctx, flow: FlowFile, env: dict[str, Symbol], events: Mapping[str, Mapping[str, str]]) -> StatePlan | None:
    """The flow's behaviour section compiled (engine.state.plan); its features join ``env``."""
    if flow.behaviour is None:
        return None

    def report(message: str, code: str, loc: tuple[str | int, ...], hint: str | None) -> None:
        ctx.add(message, code, loc=loc, hint=hint, field=str(loc[2]) if len(loc) > 2 else None)

    # A flow that may decide without the store (budgets: state rules_only) can miss every stateful feature.
    skippable = (budget := flow.budgets.get("state")) is not None and budget.on_miss == "rules_only"
    return compile_plan(flow.behaviour, flow.flow, env, report, events, skippable)


def prepare_key(flow: FlowFile, models: Sequence[CompiledModel]) -> str:
    """What turns an input into a version's values: its input schema, derived features and models.

    Two versions with the same key validate, derive and score any input alike, so a shadow
    version can reuse the values of the version that decided (engine.runtime.shadow).
    """
    doc: dict[str, Any] = {
        "input": flow.input.model_dump(mode="json"),
        "derived": list(flow.derived.items()),
        "models": [[b.model.name, b.model.version, b.model.content_sha256, b.output] for b in models],
    }
    if flow.behaviour is not None:  # its features are values too (only then in the key: older keys are unchanged)
        doc["behaviour"] = flow.behaviour.model_dump(mode="json")
    if flow.screening:  # screening writes features too (only then in the key: older keys are unchanged)
        doc["screening"] = [s.model_dump(mode="json") for s in flow.screening]
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
