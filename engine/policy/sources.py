"""What the compiler works on and what it reports into: parsed policy files and the problems found.

``FlowSource`` and ``RuleSource`` are a parsed flow or rule file (path, line map, content, digest);
``CompileContext`` collects ``Problem``s at the line of the YAML path they concern, so the compiler
(``engine.policy.compiler``) and its steps (``engine.policy.binding``) report every problem at
once, with file and line. Pure: no file I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import Problem
from engine.expr import ExprSyntaxError, ExprTypeError
from engine.policy.schema import FlowFile, RuleFile
from engine.policy.yamlio import LoadedYaml

__all__ = ["CompileContext", "FlowSource", "RuleSource", "expr_problem"]


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
class CompileContext:
    """The flow being compiled and the problems found so far (``add`` one at the line of ``loc``)."""

    flow: FlowSource
    problems: list[Problem] = field(default_factory=list)

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
