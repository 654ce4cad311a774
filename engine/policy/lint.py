"""``verdict lint``: everything the loader finds, plus checks a load does not make.

The loader already reports, with file and line, every schema error, expression error (unknown
field, type mismatch, unknown category, ...), unknown reason code, action outside the flow's
actions, model feature the flow does not supply, model that fails verification, and change to a
released version. Lint adds (the checks of each version's rules and table rows are
engine.policy.rules_lint):

- ``unreachable_rule``: a rule (or table row) whose condition can never be true, e.g. contradictory
  ranges (``age < 18 and age > 65``) or a range outside the input schema (``age > 200``);
- ``duplicate_condition``: two rules of one flow version with the same condition;
- ``shadowed_row``: a row of a ``hit: first`` table that an earlier row always catches first;
- ``cleaning_mismatch``: a text literal compared (``==``, ``!=``, ``in``, ``not in``) with a string
  field whose input cleaning means it can never be equal: the field is declared ``case: upper``
  (or ``lower``) and the literal is not in that case, or the literal has leading or trailing
  spaces, which cleaning trims (engine/runtime/validation.py). ``country not in ['de']`` on a
  ``case: upper`` field is then true for every request. (A category literal outside the field's
  ``values`` is already a load error, ``unknown_category``: values are cleaned to the canonical
  spelling.) The check is engine.policy.cleaning_lint.
- ``protected_feature``: a model of the flow uses an input field the flow marks ``protected: true``
  (a prohibited basis such as marital status), directly or through a derived field (engine.policy.protected);
- ``missing_notice``: a flow with a ``notices:`` catalogue (adverse-action notices, engine.runtime.notice)
  lacks the applicant-facing text of a code a DECLINE can give: a DECLINE rule's or table row's
  reason, a model reason, or the default's reason when the default is DECLINE;
- ``model_not_approved``, ``model_restricted``, ``model_not_in_inventory``, ``inventory_invalid``: with
  a model inventory (``model_artifacts/registry.yaml``, engine.models.inventory), a released or routed
  (live, challenger, shadow) flow version runs a model that is not approved, or approved only for
  pinned requests, or not listed;
- ``unused_reason`` (warning): a reason code in a flow's catalogue that nothing gives;
- ``rules_only_unguarded`` (warning): a model's budget (or the state store's) falls back to ``rules_only`` (docs/fallbacks.md)
  in a flow whose default is APPROVE, and no rule or table tests ``is_null(<score>)``: a request
  whose score is missing would be approved by default (flagged as a fallback, but approved);
- ``unused_ruleset`` (warning): a rule file no flow version applies;
- problems in policy test files: the file itself (schema, flow/version directory) and, per case,
  ``unknown_test_field`` (an input field the flow version does not declare, while it rejects
  unknown fields), ``unknown_test_rule`` (an expected fired rule the version does not have) and
  ``unknown_test_reason`` (an expected reason code outside the version's catalogue) and
  ``unknown_test_score`` (an expected score no model or screening step of the version produces):
  engine.policy.testcase_lint.

Every error (of the loader or of lint) blocks activation of the flow it belongs to: at start, on
hot reload and in ``verdict release`` (engine/policy/activation.py). Problems found for one flow carry
its name (``Problem.flow``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.errors import Problem
from engine.expr.nodes import Call, Name
from engine.expr.vocabulary import children
from engine.policy.loader import LoadResult, load
from engine.policy.protected import protected_uses
from engine.policy.rules_lint import check_version
from engine.policy.sources import FlowSource, ParseTrees, RuleSource
from engine.policy.testcase_lint import check_tests
from engine.policy.testcases import TestSuite, discover

__all__ = ["LintReport", "format_lint", "lint"]


@dataclass
class LintReport:
    """Every problem found under a root, and what was checked."""

    problems: list[Problem] = field(default_factory=list)  # deduplicated, errors first
    # Every problem before deduplication, each with the flow it belongs to when known (one problem
    # of a shared rule file can hold back several flows):
    attributed: list[Problem] = field(default_factory=list)
    flows: int = 0
    versions: int = 0
    rule_files: int = 0
    rules: int = 0

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def _unguarded_rules_only(src: FlowSource, rulesets: dict[str, RuleSource], trees: ParseTrees) -> list[Problem]:
    """``rules_only_unguarded`` warnings of one flow version (see the module docstring)."""
    flow = src.file
    if flow.default.action != "APPROVE":
        return []
    skippable = [m for m in flow.models
                 if (b := flow.budgets.get(f"score.{m.name}") or flow.budgets.get("score")) is not None and b.on_miss == "rules_only"]
    stateless = (b := flow.budgets.get("state")) is not None and b.on_miss == "rules_only" and flow.behaviour is not None
    if not skippable and not stateless:
        return []
    texts: list[str] = []
    for name in flow.rulesets:
        rs = rulesets.get(name)
        if rs is not None:
            texts += [r.when for r in rs.file.rules if r.enabled]
            texts += [c for t in rs.file.tables if t.enabled for c in t.columns]
    tested: set[str] = set()
    for text in texts:
        stack = [node] if (node := trees.tree(text)) is not None else []
        while stack:
            n = stack.pop()
            if isinstance(n, Call) and n.func == "is_null" and len(n.args) == 1 and isinstance(n.args[0], Name):
                tested.add(n.args[0].name)
            stack += children(n)
    out = [
        Problem(src.path, f"budgets: model {m.name} falls back to rules_only, but no rule of {flow.flow} {flow.version} tests "
                f"is_null({m.output}): a request whose score is missing is approved by the default", "rules_only_unguarded",
                line=src.doc.line_of(("budgets",)), severity="warning",
                hint=f"add a rule `when: is_null({m.output})` with action REVIEW, or use on_miss: action (docs/fallbacks.md)")
        for m in skippable if m.output not in tested
    ]
    features = list(flow.behaviour.features) if stateless and flow.behaviour is not None else []
    if features and not tested.intersection(features):
        out.append(Problem(
            src.path, f"budgets: state falls back to rules_only, but no rule of {flow.flow} {flow.version} tests is_null of a "
            "stateful feature: a request decided without the state store is approved by the default", "rules_only_unguarded",
            line=src.doc.line_of(("budgets",)), severity="warning",
            hint=f"add a rule `when: is_null({features[0]})` with action REVIEW, or use on_miss: action (docs/fallbacks.md)"))
    return out


def _card_features(root: Path) -> Callable[[str, str], tuple[str, ...] | None]:
    """Feature names of ``model_artifacts/<name>/<version>/card.json`` (None when unreadable: the loader says why)."""
    from engine.errors import ModelLoadError
    from engine.models.card import read_card

    cache: dict[tuple[str, str], tuple[str, ...] | None] = {}

    def features(name: str, version: str) -> tuple[str, ...] | None:
        if (name, version) not in cache:
            try:
                cache[name, version] = tuple(f.name for f in read_card(root / "model_artifacts" / name / version).features)
            except ModelLoadError:  # a missing or invalid card is the loader's problem to report
                cache[name, version] = None
        return cache[name, version]

    return features


def _inventory(root: Path, result: LoadResult) -> list[Problem]:
    """The model inventory's problems: its own, and released or routed versions running unapproved models."""
    from engine.models.inventory import inventory_problems, read_inventory

    inv, problems = read_inventory(root)
    if inv is None:
        return problems
    uses, where, released, routed = {}, {}, set(), set()
    for flow, versions in result.flow_sources.items():
        for version, src in versions.items():
            uses[flow, version] = tuple((m.name, m.version) for m in src.file.models)
            where[flow, version] = (src.path, src.doc.line_of(("models",)))
            if (root / "policies" / flow / version / "release.lock").is_file():
                released.add((flow, version))
    for flow, fv in result.flows.items():
        routed |= {(flow, fv.live), *((flow, v) for v in fv.shadow)}
        if fv.challenger is not None:
            routed.add((flow, fv.challenger.version))
    found = problems + inventory_problems(inv, uses, routed, released, where)
    return [replace(p, flow=p.flow or (p.path.split("/")[1] if p.path.startswith("policies/") else None)) for p in found]


def _review_files(root: Path) -> list[Problem]:
    """The problems of the review queue's ``policies/<flow>/review.yaml`` files (engine.cases.config):
    the same ones ``verdict serve`` refuses to start with."""
    from engine.cases.config import review_problems

    return review_problems(root)


def lint(root: Path, result: LoadResult | None = None, suites: tuple[list[TestSuite], list[Problem]] | None = None) -> LintReport:
    """Lint everything under `root`.

    Reuses `result` (from ``engine.policy.loader.load``) and `suites` (from ``engine.policy.testcases.discover``)
    when the caller has them already. Never raises for bad files.
    """
    root = Path(root).resolve()
    result = result if result is not None else load(root)
    found: list[Problem] = list(result.problems)
    report = LintReport(rule_files=len(result.rule_sources))
    applied: set[str] = set()
    features = _card_features(root)
    for flow_name, versions in sorted(result.flow_sources.items()):
        report.flows += 1
        first = len(found)
        for _version, src in sorted(versions.items()):
            report.versions += 1
            applied.update(src.file.rulesets)
            found += protected_uses(src.file, src.path, src.doc.line_of, features, result.trees)
            if any(name in result.broken_rulesets for name in src.file.rulesets):
                continue  # a rule file it needs could not be read (reported once): no cascade of guesses
            report.rules += check_version(src, result.rule_sources, result.trees, found)
            found += _unguarded_rules_only(src, result.rule_sources, result.trees)
        found[first:] = [replace(p, flow=p.flow or flow_name) for p in found[first:]]
    every_flow_read = not any(result.broken_versions.values())
    for name, rs in sorted(result.rule_sources.items()):
        if name not in applied and every_flow_read:  # with a flow file unreadable, its rulesets are unknown
            found.append(
                Problem(rs.path, f"ruleset {name} is not applied by any flow version", "unused_ruleset",
                        line=rs.doc.line_of(("ruleset",)), severity="warning", hint="list it under 'rulesets:' in a flow file, or remove the file")
            )
    found += _inventory(root, result)
    found += _review_files(root)
    found_suites, test_problems = suites if suites is not None else discover(root)
    found += test_problems
    check_tests(found_suites, result, found)
    report.attributed = list(found)
    seen: set[tuple[object, ...]] = set()
    for p in found:
        key = (p.path, p.line, p.code, p.rule, p.message)
        if key not in seen:
            seen.add(key)
            report.problems.append(p)
    report.problems.sort(key=lambda p: (p.severity != "error", p.path, p.line or 0, p.code))
    return report


def format_lint(report: LintReport) -> str:
    """One line per problem, then a summary line."""
    lines = [str(p) for p in report.problems]
    n_err, n_warn = len(report.errors), len(report.warnings)
    checked = (
        f"{report.flows} flow{'s' if report.flows != 1 else ''}, {report.versions} version{'s' if report.versions != 1 else ''}, "
        f"{report.rule_files} rule file{'s' if report.rule_files != 1 else ''}, {report.rules} rules and table rows"
    )
    verdict = "clean" if report.ok else "FAILED"
    lines.append(f"lint {verdict}: {n_err} error{'s' if n_err != 1 else ''}, {n_warn} warning{'s' if n_warn != 1 else ''} ({checked})")
    return "\n".join(lines)
