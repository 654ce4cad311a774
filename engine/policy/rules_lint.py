"""Lint of one flow version's rules and table rows (``verdict lint``, ``engine.policy.lint``).

``check_version`` reads each condition's parse tree from the load's ``ParseTrees`` (nothing is
parsed again) and reports, with file, line and rule: ``unreachable_rule`` (a condition no input
the schema allows can satisfy, engine.policy.satisfy), ``cleaning_mismatch``
(engine.policy.cleaning_lint), ``duplicate_condition`` (two rules or ``collect`` rows of the version
with the same condition, in any order of ``and``/``or``), ``shadowed_row`` (a ``hit: first`` row an
earlier row always catches), then ``missing_notice`` and ``unused_reason`` over the version's reason
catalogue. Pure: no file I/O.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from engine.errors import Problem
from engine.expr import Node
from engine.expr.nodes import BoolOp
from engine.expr.vocabulary import show
from engine.policy.cleaning_lint import cleaning_mismatches
from engine.policy.satisfy import Domain, covers, domains_of, never_true
from engine.policy.schema import FlowFile
from engine.policy.sources import FlowSource, ParseTrees, RuleSource
from engine.policy.tables import TableRow, row_tree, table_rows

__all__ = ["check_version"]


def _canon(node: Node) -> str:
    """A text of the condition that is the same for `a and b` and `b and a`."""
    if isinstance(node, BoolOp):
        return f"{node.op}(" + ",".join(sorted(_canon(i) for i in node.items)) + ")"
    return show(node)


@dataclass(frozen=True)
class _Seen:
    rule: str
    where: str


class _Conditions:
    """The condition checks of one flow version: unreachable, cleaning mismatches, duplicates (which
    need every condition seen so far in the version)."""

    def __init__(self, flow: FlowFile, out: list[Problem]) -> None:
        self.flow = flow
        self.out = out
        self.domains = domains_of(flow.input.fields)
        self.inputs = {name: spec for name, spec in flow.input.fields.items() if name not in flow.derived}
        self._seen: dict[str, _Seen] = {}

    def same(self, node: Node, rid: str, rs: RuleSource, loc: tuple[str | int, ...]) -> None:
        """``duplicate_condition`` when an earlier rule of the version has the same condition."""
        key = _canon(node)
        earlier = self._seen.get(key)
        if earlier is None:
            self._seen[key] = _Seen(rid, f"{rs.path}:{rs.doc.line_of(loc)}")
            return
        self.out.append(
            Problem(
                rs.path, f"rule {rid} has the same condition as rule {earlier.rule} ({earlier.where}): {show(node)}",
                "duplicate_condition", line=rs.doc.line_of(loc), rule=rid,
                hint="merge the two rules, or change one of the conditions",
            )
        )

    def unreachable(self, node: Node, rid: str, rs: RuleSource, loc: tuple[str | int, ...], what: str) -> None:
        """``unreachable_rule`` and ``cleaning_mismatch`` problems of one condition."""
        flow = self.flow
        why = never_true(node, self.domains)
        if why is not None:
            self.out.append(
                Problem(rs.path, f"{what} can never fire in {flow.flow} {flow.version}: {why}", "unreachable_rule",
                        line=rs.doc.line_of(loc), rule=rid, hint="fix the condition, or remove it")
            )
        self.out.extend(
            Problem(rs.path, f"{what} in {flow.flow} {flow.version}: {why}", "cleaning_mismatch",
                    line=rs.doc.line_of(loc), rule=rid, hint="write the literal as cleaning leaves the value")
            for why in cleaning_mismatches(node, self.inputs)
        )


@dataclass
class _Given:
    """The reason codes a flow version gives, and for each a DECLINE can carry, what gives it."""

    used: set[str]
    declines: dict[str, str]  # code -> what gives it (adverse-action notices)

    @classmethod
    def of(cls, flow: FlowFile) -> _Given:
        """What the models, the budgets' fixed actions and the default give."""
        used = {code for ref in flow.models for code in ref.reasons.values()}
        used.update(b.reason for b in flow.budgets.values() if b.reason)  # a fallback's fixed action gives it
        if flow.default.reason:
            used.add(flow.default.reason)
        declines = {code: f"model {ref.name}/{ref.version}" for ref in flow.models for code in ref.reasons.values()}
        if flow.default.reason and flow.default.action == "DECLINE":
            declines.setdefault(flow.default.reason, "the default")
        return cls(used, declines)

    def add(self, reason: str, action: str, what: str) -> None:
        self.used.add(reason)
        if action == "DECLINE":
            self.declines.setdefault(reason, what)


def _check_ruleset(rs: RuleSource, trees: ParseTrees, checks: _Conditions, given: _Given) -> int:
    """The checks of one rule file's enabled rules and table rows in a flow version; how many there are."""
    count = 0
    for k, spec in enumerate(rs.file.rules):
        if not spec.enabled:
            continue
        count += 1
        given.add(spec.reason, spec.action, f"rule {spec.id}")
        node = trees.tree(spec.when)
        if node is None:
            continue
        checks.unreachable(node, spec.id, rs, ("rules", k, "when"), f"rule {spec.id}")
        checks.same(node, spec.id, rs, ("rules", k, "when"))
    rows, _ = table_rows(rs.file.tables, rs.path, rs.doc)
    by_table: dict[str, list[TableRow]] = defaultdict(list)
    for row in rows:
        count += 1
        given.add(row.reason, row.action, f"table {row.table} row {row.index + 1}")
        by_table[row.table].append(row)
        node = row_tree(row, trees)
        if node is None:
            continue
        checks.unreachable(node, row.id, rs, row.loc, f"table {row.table} row {row.index + 1}")
        if row.hit == "collect":
            checks.same(node, row.id, rs, row.loc)
    for table in rs.file.tables:
        if table.enabled and table.hit == "first":
            _shadowed(table.columns, by_table[table.id], checks.domains, rs, trees, checks.out)
    return count


def check_version(src: FlowSource, rulesets: dict[str, RuleSource], trees: ParseTrees, out: list[Problem]) -> int:
    """Lint one flow version's rules and table rows, then its notices and reason catalogue; how many rules and rows."""
    flow = src.file
    checks = _Conditions(flow, out)
    given = _Given.of(flow)
    count = sum(_check_ruleset(rulesets[name], trees, checks, given) for name in flow.rulesets if name in rulesets)  # a missing one: the loader's
    # A ruleset that is missing, or a rule file with schema errors (its invalid rules left out), would
    # make its reasons read as unused: the problem is already reported, so say nothing more.
    invalid = {p.path for p in out if p.code == "schema" and p.severity == "error"}
    if any(name not in rulesets or rulesets[name].path in invalid for name in flow.rulesets):
        return count
    if flow.notices:
        out.extend(
            Problem(src.path, f"{flow.flow} {flow.version} can DECLINE with reason {code} ({what}) but its notices: "
                    "catalogue has no applicant-facing text for it", "missing_notice",
                    line=src.doc.line_of(("notices",)),
                    hint=f"add '{code}: <text for the applicant>' under notices: (docs/compliance.md)")
            for code, what in sorted(given.declines.items()) if code not in flow.notices
        )
    out.extend(
        Problem(src.path, f"reason code {code} is in the catalogue of {flow.flow} {flow.version} but no rule, table row, model or default gives it",
                "unused_reason", line=src.doc.line_of(("reasons", code)), severity="warning",
                hint="remove it, or give it from a rule")
        for code in flow.reasons
        if code not in given.used
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
