"""Decision tables: rows of cell tests over a few columns, expanded into ordinary rules.

A table's columns are expressions (``job``, ``loan_to_price``, ``debt / income``); a row has one
cell per column and an outcome (action, reason, priority). A cell is a test on its column:

========================  ===========================================  ==========================
cell                      means                                        condition
========================  ===========================================  ==========================
``-`` or ``any``          any value, including a missing one           (no test)
``> 0.9``, ``<= income``  a comparison (``< <= > >= == !=``)           ``(col) > 0.9``
``in ['rent', 'other']``  membership (also ``not in [...]``)           ``(col) in [...]``
``[0.2..0.5)``            an interval; ``[`` ``]`` include the bound,  ``(col) >= 0.2 and
                          ``(`` ``)`` exclude it                       (col) < 0.5``
``18..25``                an inclusive range                           ``(col) >= 18 and ...``
``null``, ``not null``    missing / present                            ``is_null(col)``
``partime``, ``'x y'``,   one value (text, number or true/false)       ``(col) == 'partime'``
``3``, ``true``
========================  ===========================================  ==========================

A row becomes one rule (id ``<table>.<row number>`` unless the row names one) whose condition is
the ``and`` of its cells. With ``hit: collect`` every matching row fires. With ``hit: first`` only
the first matching row fires: row *k* is ``and``-ed with "row *j* did not match" for every
earlier row *j*. "Did not match" means "is not true" — a row that could not be evaluated because
a value is missing counts as not matched — and is written ``if(row_j, false, true)``, which the
expression compiler evaluates exactly so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.errors import Problem
from engine.expr import ExprSyntaxError, ExprTypeError, Node
from engine.expr.check import Env, check
from engine.expr.nodes import BoolOp, Call, Literal
from engine.policy.schema import ActionName, TableSpec
from engine.policy.sources import ParseTrees
from engine.policy.yamlio import LoadedYaml

__all__ = ["CellTest", "RowRule", "TableRow", "cell_condition", "expand_tables", "row_tree", "table_rows"]

_ANY = frozenset({"-", "any"})
_OPERATORS = ("<=", ">=", "==", "!=", "<", ">")
_INTERVAL = re.compile(r"^([\[(])\s*(.+?)\s*\.\.\s*(.+?)\s*([\])])$")
_RANGE = re.compile(r"^(-?[0-9.eE+]+)\s*\.\.\s*(-?[0-9.eE+]+)$")
_NUMBER = re.compile(r"^-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?$")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .&/+-]*$")


class CellError(ValueError):
    """A cell that is not one of the forms a table cell may take."""


@dataclass(frozen=True, slots=True)
class CellTest:
    """One cell of a row, as written and as a condition (None: the cell matches anything)."""

    column: int
    text: str
    condition: str | None


@dataclass(frozen=True, slots=True)
class TableRow:
    """A row's identity, outcome and cell conditions (syntax only; not yet type-checked)."""

    table: str
    hit: str
    index: int  # 0-based position in the table
    id: str
    action: ActionName
    reason: str
    message: str | None
    priority: int
    cells: tuple[CellTest, ...]
    loc: tuple[str | int, ...]  # ("tables", t, "rows", r) in the rule file

    @property
    def condition(self) -> str:
        """The row's own condition: its cells joined with 'and' ('true' when every cell is '-')."""
        parts = [c.condition for c in self.cells if c.condition is not None]
        return " and ".join(parts) if parts else "true"


@dataclass(frozen=True, slots=True)
class RowRule:
    """A table row as a rule: the attributes the compiler reads of a rule, plus its condition."""

    id: str
    action: ActionName
    reason: str
    message: str | None
    priority: int
    when: str  # readable condition, shown in traces and test failures
    node: Node  # the condition to compile (with the first-hit guards)
    row: TableRow


def _literal_text(value: str | bool | int | float) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def cell_condition(column: str, cell: str | bool | int | float) -> str | None:  # noqa: C901 (one branch per cell syntax in docs/policies.md, "A decision table")
    """The condition text of `cell` on `column`; None for '-'. Raises CellError for bad cells."""
    col = column.strip()
    ref = col if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", col) else f"({col})"
    if isinstance(cell, (bool, int, float)):
        return f"{ref} == {_literal_text(cell)}"
    text = cell.strip()
    if not text:
        raise CellError("an empty cell; write '-' to match any value")
    if text.lower() in _ANY:
        return None
    if text.startswith(_OPERATORS):
        return f"{ref} {text}"
    if re.match(r"^(not\s+)?in\s*\[", text):
        return f"{ref} {text}"
    if text == "null":
        return f"is_null({col})"
    if text == "not null":
        return f"is_not_null({col})"
    m = _INTERVAL.match(text)
    if m:
        lo_op = ">=" if m.group(1) == "[" else ">"
        hi_op = "<=" if m.group(4) == "]" else "<"
        return f"{ref} {lo_op} {m.group(2)} and {ref} {hi_op} {m.group(3)}"
    m = _RANGE.match(text)
    if m:
        return f"{ref} >= {m.group(1)} and {ref} <= {m.group(2)}"
    if text[0] in "'\"" and text[-1] == text[0] and len(text) >= 2:
        return f"{ref} == {text}"
    if _NUMBER.match(text) or text in ("true", "false"):
        return f"{ref} == {text}"
    if _WORD.match(text):
        return f"{ref} == {_literal_text(text)}"
    raise CellError(
        f"cannot read the cell {text!r}; write '-', a comparison such as '> 0.9', "
        "\"in ['a', 'b']\", a range such as '[0.2..0.5)', 'null', 'not null' or one value"
    )


def _problem(path: str, doc: LoadedYaml, loc: tuple[str | int, ...], message: str, code: str, **kw: str | None) -> Problem:
    return Problem(path=path, message=message, code=code, line=doc.line_of(loc), **kw)  # type: ignore[arg-type]


def table_rows(tables: Sequence[TableSpec], path: str, doc: LoadedYaml) -> tuple[list[TableRow], list[Problem]]:
    """Every enabled table's rows with their cell conditions, and every problem with the cells."""
    rows: list[TableRow] = []
    problems: list[Problem] = []
    for t, table in enumerate(tables):
        if not table.enabled:
            continue
        width = len(table.columns)
        for r, spec in enumerate(table.rows):
            loc: tuple[str | int, ...] = ("tables", t, "rows", r)
            rid = spec.id or f"{table.id}.{r + 1}"
            where = f"table {table.id} row {r + 1}"
            if len(spec.when) != width:
                problems.append(
                    _problem(
                        path, doc, (*loc, "when"),
                        f"{where} has {len(spec.when)} cells but the table has {width} columns",
                        "table_row_width", rule=rid, hint="write one cell per column; '-' matches any value",
                    )
                )
                continue
            cells: list[CellTest] = []
            for c, (column, cell) in enumerate(zip(table.columns, spec.when, strict=True)):
                try:
                    cells.append(CellTest(c, str(cell), cell_condition(column, cell)))
                except CellError as exc:
                    problems.append(
                        _problem(path, doc, (*loc, "when", c), f"{where}, column {column!r}: {exc}", "table_cell", rule=rid)
                    )
            if len(cells) == width:
                rows.append(
                    TableRow(table.id, table.hit, r, rid, spec.action, spec.reason, spec.message, spec.priority, tuple(cells), loc)
                )
    return rows, problems


def row_tree(row: TableRow, trees: ParseTrees) -> Node | None:
    """The tree of ``row.condition`` built from its cells' trees in ``trees`` (no text parsed again):
    the cells' tests joined by one flat ``and``, as parsing the joined text gives; ``true`` for a row
    of '-' cells. None when a cell does not parse (the loader reports it)."""
    items: list[Node] = []
    for cell in row.cells:
        if cell.condition is None:
            continue
        node = trees.tree(cell.condition)
        if node is None:
            return None
        items += node.items if isinstance(node, BoolOp) and node.op == "and" else (node,)
    if not items:
        return Literal(True)
    return items[0] if len(items) == 1 else BoolOp("and", tuple(items))


def _not_matched(node: Node) -> Node:
    """'this row did not match' (its condition is false or could not be evaluated)."""
    return Call("if", (node, Literal(False), Literal(True)))


# Long (67 lines): per-table, per-column and per-cell checks, collecting every error before any row is kept.
def expand_tables(  # noqa: C901 (per-table, per-column and per-cell error collection: all-at-once reporting)
    tables: Sequence[TableSpec], path: str, doc: LoadedYaml, env: Env, trees: ParseTrees | None = None,
) -> tuple[list[RowRule], list[Problem]]:
    """Type-check every cell against `env` and turn every row into a rule.

    Columns and cells are parsed by ``trees`` (the load's ``ParseTrees``, which lint reads again;
    a fresh one when not given).

    A row with an error in any cell (or whose table has an error in a column) is reported with
    its file, line, table id, row number and column, and left out.
    """
    rows, problems = table_rows(tables, path, doc)
    parse = (trees if trees is not None else ParseTrees()).parse
    bad_columns: set[tuple[str, int]] = set()
    for t, table in enumerate(tables):
        if not table.enabled:
            continue
        for c, column in enumerate(table.columns):
            try:
                node = parse(column)
                check(node, env)
            except (ExprSyntaxError, ExprTypeError) as exc:
                bad_columns.add((table.id, c))
                hint = getattr(exc, "hint", None)
                problems.append(
                    _problem(
                        path, doc, ("tables", t, "columns", c),
                        f"table {table.id}, column {column!r}: {exc.message}",
                        getattr(exc, "code", "expression_syntax"), rule=table.id, hint=hint,
                    )
                )
    out: list[RowRule] = []
    earlier: dict[str, list[Node]] = {}
    for row in rows:
        parts: list[Node] = []
        ok = True
        for cell in row.cells:
            if cell.condition is None:
                continue
            if (row.table, cell.column) in bad_columns:
                ok = False
                continue
            try:
                node = parse(cell.condition)
                typed = check(node, env)
            except (ExprSyntaxError, ExprTypeError) as exc:
                ok = False
                problems.append(
                    _problem(
                        path, doc, (*row.loc, "when", cell.column),
                        f"table {row.table} row {row.index + 1}, cell {cell.text!r} ({cell.condition}): {exc.message}",
                        getattr(exc, "code", "expression_syntax"), rule=row.id, hint=getattr(exc, "hint", None),
                    )
                )
                continue
            if typed.type != "bool":  # pragma: no cover - every cell form is a test
                ok = False
                continue
            parts.append(node)
        own: Node = Literal(True) if not parts else parts[0] if len(parts) == 1 else BoolOp("and", tuple(parts))
        previous = earlier.setdefault(row.table, [])
        guards = [_not_matched(p) for p in previous] if row.hit == "first" else []
        previous.append(own)
        if not ok:
            continue
        node = own if not guards else BoolOp("and", (own, *guards))
        text = row.condition
        if guards:
            text += f"  [first hit: rows 1-{row.index} of table {row.table} did not match]"
        out.append(RowRule(row.id, row.action, row.reason, row.message, row.priority, text, node, row))
    return out, problems
