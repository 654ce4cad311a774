"""What the compiler works on and what it reports into: parsed policy files and the problems found.

``FlowSource`` and ``RuleSource`` are a parsed flow or rule file (path, line map, content, digest);
``CompileContext`` collects ``Problem``s at the line of the YAML path they concern, so the compiler
(``engine.policy.compiler``) and its steps (``engine.policy.binding``) report every problem at
once, with file and line. ``ParseTrees`` keeps the parse tree of every expression text the
compiler read, so that lint (``engine.policy.lint``, ``engine.policy.protected``) reads the same
trees instead of parsing the files again (issue 13, item 2). Pure: no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import Problem
from engine.expr import ExprSyntaxError, ExprTypeError, Node, parse
from engine.policy.schema import FlowFile, RuleFile
from engine.policy.yamlio import LoadedYaml

__all__ = ["CompileContext", "FlowSource", "ParseTrees", "RuleSource", "expr_problem"]


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


class ParseTrees:
    """Expression text -> its parse tree, parsed once per load and shared by the compiler and lint.

    The trees are immutable (``engine.expr.syntax``), so one tree serves every flow version and
    rule that writes the same text. A text that does not parse keeps its ``ExprSyntaxError``, raised
    again on each ask. Memory: one tree per distinct text of the policy files read (their size is
    bounded by ``engine.policy.documents.MAX_POLICY_FILE_BYTES``).
    """

    __slots__ = ("_trees",)

    def __init__(self) -> None:
        self._trees: dict[str, Node | ExprSyntaxError] = {}

    def __len__(self) -> int:
        return len(self._trees)

    def parse(self, text: str) -> Node:
        """The tree of ``text``; raises ``ExprSyntaxError`` when it does not parse."""
        found = self._trees.get(text)
        if found is None:
            try:
                found = parse(text)
            except ExprSyntaxError as exc:
                found = exc
            self._trees[text] = found
        if isinstance(found, ExprSyntaxError):
            raise found
        return found

    def tree(self, text: str) -> Node | None:
        """The tree of ``text``, or None when it does not parse (the loader reports that)."""
        try:
            return self.parse(text)
        except ExprSyntaxError:
            return None


@dataclass
class CompileContext:
    """The flow being compiled and the problems found so far (``add`` one at the line of ``loc``).

    ``trees``: where the flow's expressions are parsed (shared across a load; a fresh one by default).
    """

    flow: FlowSource
    problems: list[Problem] = field(default_factory=list)
    trees: ParseTrees = field(default_factory=ParseTrees)

    def add(self, message: str, code: str, *, loc: tuple[str | int, ...] = (), src: RuleSource | None = None, **kw: object) -> None:
        doc = src.doc if src else self.flow.doc
        path = src.path if src else self.flow.path
        self.problems.append(Problem(path=path, message=message, code=code, line=doc.line_of(loc), **kw))  # type: ignore[arg-type]


def expr_problem(ctx: CompileContext, exc: Exception, *, loc: tuple[str | int, ...], src: RuleSource | None, **kw: object) -> None:
    """Report an expression's syntax or type error (``ExprSyntaxError``, ``ExprTypeError``) at ``loc``; other exceptions are ignored."""
    if isinstance(exc, ExprSyntaxError):
        ctx.add(f"syntax error in expression: {exc.message}, column {exc.column}", "expression_syntax", loc=loc, src=src, **kw)
    elif isinstance(exc, ExprTypeError):
        ctx.add(f"{exc.message}, column {exc.column}", exc.code, loc=loc, src=src, hint=exc.hint, **kw)
