"""``verdict lint``: everything the loader finds, plus checks a load does not make.

The loader already reports, with file and line, every schema error, expression error (unknown
field, type mismatch, unknown category, ...), unknown reason code, action outside the flow's
actions, model feature the flow does not supply, model that fails verification, and change to a
released version. Lint adds:

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

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.errors import Problem
from engine.expr import Node
from engine.expr.nodes import BoolOp, Call, Name
from engine.expr.vocabulary import children, show
from engine.policy.cleaning_lint import cleaning_mismatches
from engine.policy.loader import LoadResult, load
from engine.policy.protected import protected_uses
from engine.policy.satisfy import Domain, covers, domains_of, never_true
from engine.policy.sources import FlowSource, ParseTrees, RuleSource
from engine.policy.tables import TableRow, row_tree, table_rows
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


def _canon(node: Node) -> str:
    """A text of the condition that is the same for `a and b` and `b and a`."""
    if isinstance(node, BoolOp):
        return f"{node.op}(" + ",".join(sorted(_canon(i) for i in node.items)) + ")"
    return show(node)


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


@dataclass(frozen=True)
class _Seen:
    rule: str
    where: str


# Long (98 lines): one pass over a version's rules, table rows, models and reasons (their parse trees are
# the load's ParseTrees: nothing is parsed again here).
def _check_version(src: FlowSource, rulesets: dict[str, RuleSource], trees: ParseTrees, out: list[Problem]) -> int:  # noqa: C901 (one pass over a version's parts, each check a few lines, sharing the version's seen conditions)
    flow = src.file
    domains = domains_of(flow.input.fields)
    inputs = {name: spec for name, spec in flow.input.fields.items() if name not in flow.derived}
    used = {code for ref in flow.models for code in ref.reasons.values()}
    used.update(b.reason for b in flow.budgets.values() if b.reason)  # a fallback's fixed action gives it
    if flow.default.reason:
        used.add(flow.default.reason)
    conditions: dict[str, _Seen] = {}
    count = 0
    # code -> what gives it, for every reason a DECLINE can carry (adverse-action notices)
    declines: dict[str, str] = {code: f"model {ref.name}/{ref.version}" for ref in flow.models for code in ref.reasons.values()}
    if flow.default.reason and flow.default.action == "DECLINE":
        declines.setdefault(flow.default.reason, "the default")

    def same_condition(node: Node, rid: str, rs: RuleSource, loc: tuple[str | int, ...]) -> None:
        key = _canon(node)
        where = f"{rs.path}:{rs.doc.line_of(loc)}"
        earlier = conditions.get(key)
        if earlier is None:
            conditions[key] = _Seen(rid, where)
            return
        out.append(
            Problem(
                rs.path, f"rule {rid} has the same condition as rule {earlier.rule} ({earlier.where}): {show(node)}",
                "duplicate_condition", line=rs.doc.line_of(loc), rule=rid,
                hint="merge the two rules, or change one of the conditions",
            )
        )

    def unreachable(node: Node, rid: str, rs: RuleSource, loc: tuple[str | int, ...], what: str) -> None:
        why = never_true(node, domains)
        if why is not None:
            out.append(
                Problem(rs.path, f"{what} can never fire in {flow.flow} {flow.version}: {why}", "unreachable_rule",
                        line=rs.doc.line_of(loc), rule=rid, hint="fix the condition, or remove it")
            )
        out.extend(
            Problem(rs.path, f"{what} in {flow.flow} {flow.version}: {why}", "cleaning_mismatch",
                    line=rs.doc.line_of(loc), rule=rid, hint="write the literal as cleaning leaves the value")
            for why in cleaning_mismatches(node, inputs)
        )

    for name in flow.rulesets:
        rs = rulesets.get(name)
        if rs is None:
            continue  # reported by the loader
        for k, spec in enumerate(rs.file.rules):
            if not spec.enabled:
                continue
            count += 1
            used.add(spec.reason)
            if spec.action == "DECLINE":
                declines.setdefault(spec.reason, f"rule {spec.id}")
            node = trees.tree(spec.when)
            if node is None:
                continue
            unreachable(node, spec.id, rs, ("rules", k, "when"), f"rule {spec.id}")
            same_condition(node, spec.id, rs, ("rules", k, "when"))
        rows, _ = table_rows(rs.file.tables, rs.path, rs.doc)
        by_table: dict[str, list[TableRow]] = defaultdict(list)
        for row in rows:
            count += 1
            used.add(row.reason)
            if row.action == "DECLINE":
                declines.setdefault(row.reason, f"table {row.table} row {row.index + 1}")
            by_table[row.table].append(row)
            node = row_tree(row, trees)
            if node is None:
                continue
            unreachable(node, row.id, rs, row.loc, f"table {row.table} row {row.index + 1}")
            if row.hit == "collect":
                same_condition(node, row.id, rs, row.loc)
        for table in rs.file.tables:
            if table.enabled and table.hit == "first":
                _shadowed(table.columns, by_table[table.id], domains, rs, trees, out)
    # A ruleset that is missing, or a rule file with schema errors (its invalid rules left out), would
    # make its reasons read as unused: the problem is already reported, so say nothing more.
    invalid = {p.path for p in out if p.code == "schema" and p.severity == "error"}
    if any(name not in rulesets or rulesets[name].path in invalid for name in flow.rulesets):
        return count
    if flow.notices:
        for code, what in sorted(declines.items()):
            if code not in flow.notices:
                out.append(
                    Problem(src.path, f"{flow.flow} {flow.version} can DECLINE with reason {code} ({what}) but its notices: "
                            "catalogue has no applicant-facing text for it", "missing_notice",
                            line=src.doc.line_of(("notices",)),
                            hint=f"add '{code}: <text for the applicant>' under notices: (docs/compliance.md)")
                )
    out.extend(
        Problem(src.path, f"reason code {code} is in the catalogue of {flow.flow} {flow.version} but no rule, table row, model or default gives it",
                "unused_reason", line=src.doc.line_of(("reasons", code)), severity="warning",
                hint="remove it, or give it from a rule")
        for code in flow.reasons
        if code not in used
    )
    return count


def _shadowed(
    columns: tuple[str, ...], rows: list[TableRow], domains: dict[str, Domain], rs: RuleSource, trees: ParseTrees, out: list[Problem],
) -> None:
    cells = [[trees.tree(c.condition) if c.condition is not None else None for c in row.cells] for row in rows]
    broken = {
        k for k, row in enumerate(rows) if any(c.condition is not None and cells[k][n] is None for n, c in enumerate(row.cells))
    }  # a cell that does not parse is reported by the loader; it must not read as '-'
    for j, later in enumerate(rows):
        if j in broken:
            continue
        for i in range(j):
            if i in broken:
                continue
            earlier = rows[i]
            if all(
                covers(cells[i][c], cells[j][c], column.strip(), domains.get(column.strip()))
                for c, column in enumerate(columns)
            ):
                out.append(
                    Problem(
                        rs.path,
                        f"table {later.table} row {later.index + 1} can never fire: row {earlier.index + 1} "
                        f"(line {rs.doc.line_of(earlier.loc)}) matches every input it matches, and the table fires only the first matching row",
                        "shadowed_row", line=rs.doc.line_of(later.loc), rule=later.id,
                        hint="move the narrower row above the wider one, or remove it",
                    )
                )
                break


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
            report.rules += _check_version(src, result.rule_sources, result.trees, found)
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
