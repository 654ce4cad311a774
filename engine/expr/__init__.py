"""The policy expression language: a small, safe grammar parsed by our own parser.

Policy owners write conditions such as ``amount > price * 0.9 and home in ['rent', 'other']``.
Text is tokenized and parsed (``syntax``) into an immutable tree (``nodes``), type-checked against the flow's
fields (``check``), and compiled to Python source built only from the checked AST (``codegen``).
User text is never passed to ``eval``.
"""

from engine.expr.check import Env, ExprTypeError, Typed, check
from engine.expr.nodes import Node, names_in
from engine.expr.syntax import ExprSyntaxError, parse
from engine.expr.vocabulary import negate

__all__ = [
    "Env",
    "ExprSyntaxError",
    "ExprTypeError",
    "Node",
    "Typed",
    "check",
    "names_in",
    "negate",
    "parse",
]
