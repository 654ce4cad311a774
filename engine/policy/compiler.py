"""Compile one parsed flow version, with its rule files and models, into a CompiledFlow.

Pure: takes parsed documents and loaded models, returns the compiled flow and every problem found
(with file, line, rule id and a hint). The loader does the file I/O. Its steps, in
``compile_flow``'s order: screening steps, the state plan, derived features
(``engine.policy.derived``), model binding (``engine.policy.binding``), the default outcome,
budgets, the rules and tables (``engine.policy.tables``), then the generated program.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from engine.custom_lists.snapshot import ListView
from engine.errors import Problem
from engine.expr import ExprSyntaxError, ExprTypeError, names_in
from engine.expr.check import LIST_PREFIX, Symbol, check, list_symbol
from engine.expr.codegen import CodegenLimit, Program, compile_program
from engine.expr.nodes import Literal, Node
from engine.policy.binding import bind_models
from engine.policy.derived import compile_derived, derived_reads
from engine.policy.durable import NotExpressible, to_durable
from engine.policy.durable_ruleset import DurableRuleset
from engine.policy.schema import FlowFile, RuleSpec
from engine.policy.sources import CompileContext, FlowSource, ParseTrees, RuleSource, expr_problem
from engine.policy.tables import RowRule, expand_tables
from engine.runtime.fallback import STEPS, Budget, Budgets, step_of
from engine.runtime.flow import CompiledFlow, CompiledModel, CompiledRule, ScoringModel
from engine.runtime.validation import compile_validator, field_bounds
from engine.screening.lists import ScreeningList
from engine.screening.step import CompiledScreen, feature_names
from engine.state.plan import StatePlan
from engine.state.plan_compile import compile_plan
from engine.suggest import did_you_mean
from engine.types import Action, FiredRule, Reason

__all__ = ["compile_flow", "flow_env"]

_FIELD_TYPES = {
    "integer": "number",
    "number": "number",
    "string": "string",
    "category": "string",
    "boolean": "bool",
}


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


def _default_outcome(ctx: CompileContext, flow: FlowFile, catalogue: Mapping[str, str]) -> tuple[Action, Reason | None]:
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
    ctx: CompileContext,
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
        table_rules, table_problems = expand_tables(src.file.tables, src.path, src.doc, env, ctx.trees)
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
                node = prebuilt if prebuilt is not None else ctx.trees.parse(spec.when)
                t = check(node, env)
            except (ExprSyntaxError, ExprTypeError) as exc:
                expr_problem(ctx, exc, loc=(*loc, "when"), src=src, rule=spec.id)
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
    trees: ParseTrees | None = None,
) -> tuple[CompiledFlow | None, list[Problem]]:
    """Compile a flow version; returns (flow, problems) and the flow is None if any problem is an error.

    ``custom_lists``: the view whose declared lists ``x in list('name')`` may read (none without it).
    ``events``: event type -> field -> "number"/"string", the types its stateful features may read.
    ``trees``: the load's parse trees (``ParseTrees``): every expression is parsed there, once, and
    lint reads the same trees; a fresh one when not given.
    """
    ctx = CompileContext(source, trees=trees if trees is not None else ParseTrees())
    flow = source.file
    env = flow_env(flow)
    if custom_lists is not None:
        env.update({LIST_PREFIX + name: list_symbol(kind.value) for name, kind in custom_lists.kinds.items()})
    catalogue = dict(flow.reasons)
    screens = _screens(ctx, flow, env, lists or {})
    state = _state_plan(ctx, flow, env, events or {})
    derived, never_missing = compile_derived(ctx, flow, env)
    bound, model_index = bind_models(ctx, flow, models, env, catalogue, never_missing)
    default_action, default_reason = _default_outcome(ctx, flow, catalogue)
    budgets = compile_budgets(ctx, flow, catalogue)
    rules, conditions, condition_at, durable_rules = _compile_rules(ctx, flow, rulesets, env, catalogue, model_index)

    if any(p.severity == "error" for p in ctx.problems):
        return None, ctx.problems
    generated = _generate(ctx, env, derived, _Rules(rules, conditions, condition_at, durable_rules), custom_lists)
    if generated is None:
        return None, ctx.problems
    program, durable = generated
    compiled = CompiledFlow(
        flow=flow.flow,
        version=flow.version,
        description=flow.description,
        revision=revision,
        validator=compile_validator(flow.input, f"{flow.flow} {flow.version}"),
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


def _generate(
    ctx: CompileContext, env: dict[str, Symbol], derived: list[tuple[str, Node]], rules: _Rules, custom_lists: ListView | None,
) -> tuple[Program, DurableRuleset | None] | None:
    """The flow's generated program (engine.expr.codegen) and its durable-rules network, if any;
    None when either cannot be built (an ``expression_too_complex`` or ``compile_failed`` problem in ``ctx``)."""
    flow = ctx.flow.file
    try:
        program = compile_program(env, derived, rules.conditions, label=f"{flow.flow} {flow.version}", lists=custom_lists)
        durable = DurableRuleset(rules.durable_rules, env, label=f"{flow.flow}_{flow.version}") if rules.durable_rules else None
    except CodegenLimit as exc:
        _codegen_problem(ctx, exc, derived, rules.condition_at)
        return None
    except Exception as exc:  # noqa: BLE001 - any failure to compile is a problem with the flow, never a crash
        ctx.add(f"the flow cannot be compiled: {type(exc).__name__}: {exc}", "compile_failed", loc=("flow",),
                hint="simplify the longest expressions (split them into derived features) and report this as a bug")
        return None
    return program, durable


def compile_budgets(ctx: CompileContext, flow: FlowFile, catalogue: Mapping[str, str]) -> Budgets:
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
    ctx: CompileContext, exc: CodegenLimit, derived: Sequence[tuple[str, Node]], condition_at: Sequence[tuple[RuleSource, tuple[str | int, ...], str]]
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


def _screens(ctx: CompileContext, flow: FlowFile, env: dict[str, Symbol], lists: Mapping[tuple[str, str], ScreeningList]) -> list[CompiledScreen]:
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


def _state_plan(ctx: CompileContext, flow: FlowFile, env: dict[str, Symbol], events: Mapping[str, Mapping[str, str]]) -> StatePlan | None:
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
