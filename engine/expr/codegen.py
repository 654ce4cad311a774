"""Compile checked expressions into one Python function per flow.

The source is built only from the checked AST: names become numbered locals, literals are written
with ``repr``, lists become frozen-set constants, and every other construct maps to a fixed
template. Guards for missing values are emitted only where the checker says a value can be missing.
Conditions are compiled in negation normal form, so a condition that touches a missing value is
false, and so is its negation (see docs/expressions.md, "Missing values").
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from engine.expr.check import Env, Typed, check
from engine.expr.functions import RUNTIME
from engine.expr.syntax import BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not

__all__ = ["Program", "compile_program"]

_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}


class _Gen:
    def __init__(self, env: Env) -> None:
        self.env = env
        self.names: dict[str, str] = {}
        self.consts: dict[str, Any] = {}
        self.ntmp = 0

    def typed(self, node: Node) -> Typed:
        return check(node, self.env)

    def tmp(self) -> str:
        self.ntmp += 1
        return f"t{self.ntmp}"

    def bind(self, code: str) -> tuple[str, str]:
        """(expression that evaluates `code` once, name to reuse it): no temporary for a plain local."""
        if code.isidentifier():
            return code, code
        t = self.tmp()
        return f"({t} := {code})", t

    def local(self, name: str) -> str:
        if name not in self.names:
            self.names[name] = f"v{len(self.names)}"
        return self.names[name]

    def const(self, value: Any) -> str:
        key = f"_c{len(self.consts)}"
        self.consts[key] = value
        return key

    # -- values: Python expressions that evaluate to the value, or None when missing ------------

    def value(self, node: Node) -> str:
        if isinstance(node, Literal):
            return repr(node.value)
        if isinstance(node, Name):
            return self.local(node.name)
        if isinstance(node, Neg):
            inner = self.value(node.operand)
            if self.typed(node.operand).nullable:
                first, t = self.bind(inner)
                return f"(None if {first} is None else -{t})"
            return f"(-{inner})"
        if isinstance(node, BinOp):
            return self._binop(node)
        if isinstance(node, (Compare, InList)):
            if not self.typed(node).nullable:
                return self.cond(node, True)
            return self._guarded(node)
        if isinstance(node, Not):
            inner = self.value(node.operand)
            if self.typed(node.operand).nullable:
                first, t = self.bind(inner)
                return f"(None if {first} is None else not {t})"
            return f"(not {inner})"
        if isinstance(node, BoolOp):
            if not self.typed(node).nullable:
                return "(" + f" {node.op} ".join(self.value(i) for i in node.items) + ")"
            helper = "_and3" if node.op == "and" else "_or3"
            return f"{helper}(" + ", ".join(self.value(i) for i in node.items) + ")"
        if isinstance(node, Call):
            return self._call(node)
        raise TypeError(type(node).__name__)  # pragma: no cover

    def _binop(self, node: BinOp) -> str:
        left, right = self.value(node.left), self.value(node.right)
        lt, rt = self.typed(node.left), self.typed(node.right)
        safe_divisor = isinstance(node.right, Literal) and node.right.value not in (0, 0.0)
        if node.op in ("/", "%") and not safe_divisor:
            return f"{'_div' if node.op == '/' else '_mod'}({left}, {right})"
        if not lt.nullable and not rt.nullable:
            return f"({left} {node.op} {right})"
        guards = []
        if lt.nullable:
            first, left = self.bind(left)
            guards.append(f"{first} is None")
        if rt.nullable:
            first, right = self.bind(right)
            guards.append(f"{first} is None")
        return f"(None if {' or '.join(guards)} else {left} {node.op} {right})"

    def _guarded(self, node: Compare | InList) -> str:
        """A three-valued comparison: None when an operand is missing."""
        if isinstance(node, Compare):
            left, right = self.value(node.left), self.value(node.right)
            guards = []
            if self.typed(node.left).nullable:
                first, left = self.bind(left)
                guards.append(f"{first} is None")
            if self.typed(node.right).nullable:
                first, right = self.bind(right)
                guards.append(f"{first} is None")
            return f"(None if {' or '.join(guards)} else {left} {node.op} {right})"
        first, t = self.bind(self.value(node.operand))
        items = self.const(frozenset(i.value for i in node.items))
        op = "not in" if node.negated else "in"
        return f"(None if {first} is None else {t} {op} {items})"

    def _call(self, node: Call) -> str:
        if node.func == "is_null":
            return f"({self.value(node.args[0])} is None)"
        if node.func == "is_not_null":
            return f"({self.value(node.args[0])} is not None)"
        if node.func == "if":
            cond, then, other = node.args
            return f"({self.value(then)} if {self.cond(cond, True)} else {self.value(other)})"
        args = ", ".join(self.value(a) for a in node.args)
        return f"_f_{node.func}({args})"

    # -- conditions: Python expressions that are True exactly when the condition holds ----------

    def cond(self, node: Node, positive: bool) -> str:
        if isinstance(node, BoolOp):
            op = node.op if positive else ("or" if node.op == "and" else "and")
            return "(" + f" {op} ".join(self.cond(i, positive) for i in node.items) + ")"
        if isinstance(node, Not):
            return self.cond(node.operand, not positive)
        if isinstance(node, Compare):
            op = node.op if positive else _NEGATED[node.op]
            left, right = self.value(node.left), self.value(node.right)
            guards = []
            if self.typed(node.left).nullable:
                first, left = self.bind(left)
                guards.append(f"{first} is not None")
            if self.typed(node.right).nullable:
                first, right = self.bind(right)
                guards.append(f"{first} is not None")
            return "(" + " and ".join([*guards, f"{left} {op} {right}"]) + ")"
        if isinstance(node, InList):
            negated = node.negated != (not positive)
            items = self.const(frozenset(i.value for i in node.items))
            op = "not in" if negated else "in"
            operand = self.value(node.operand)
            if self.typed(node.operand).nullable:
                first, t = self.bind(operand)
                return f"({first} is not None and {t} {op} {items})"
            return f"({operand} {op} {items})"
        if isinstance(node, Literal):
            if node.value is None:
                return "False"
            return repr(bool(node.value) if positive else not node.value)
        if isinstance(node, Call) and node.func in ("is_null", "is_not_null"):
            want_null = (node.func == "is_null") == positive
            return f"({self.value(node.args[0])} is {'' if want_null else 'not '}None)"
        code = self.value(node)
        if self.typed(node).nullable:
            return f"({code} is {'True' if positive else 'False'})"
        return code if positive else f"(not {code})"


class Program:
    """Compiled derived features and rule conditions of one flow version."""

    __slots__ = ("derive", "fired", "source")

    def __init__(
        self,
        derive: Callable[[dict[str, Any]], None],
        fired: Callable[[dict[str, Any]], list[int]],
        source: str,
    ) -> None:
        self.derive = derive
        self.fired = fired
        self.source = source


def compile_program(
    env: Env,
    derived: Sequence[tuple[str, Node]],
    conditions: Sequence[Node],
    *,
    label: str = "flow",
) -> Program:
    """Generate and compile `derive(values)` and `fired(values) -> [rule index, ...]`.

    `derived` must be in dependency order and already type-checked against `env` (which must
    include the derived names); each condition must type-check as a bool.
    """
    gen = _Gen(env)
    derive_body: list[str] = []
    for name, node in derived:
        code = gen.value(node)
        var = gen.local(name)
        derive_body.append(f"    {var} = values[{name!r}] = {code}")
    derive_names = dict(gen.names)
    derived_set = {name for name, _ in derived}

    rule_gen = _Gen(env)
    rule_gen.consts = gen.consts
    rule_gen.ntmp = gen.ntmp
    rule_body = [f"    if {rule_gen.cond(node, True)}:\n        fired.append({i})" for i, node in enumerate(conditions)]

    lines = ["def derive(values):", "    _g = values.get"]
    for name, var in derive_names.items():
        if name not in derived_set:
            lines.append(f"    {var} = _g({name!r})")
    lines += derive_body or ["    pass"]
    lines += ["", "def fired(values):", "    _g = values.get"]
    for name, var in rule_gen.names.items():
        lines.append(f"    {var} = _g({name!r})")
    lines.append("    fired = []")
    lines += rule_body
    lines.append("    return fired")
    source = "\n".join(lines) + "\n"
    namespace: dict[str, Any] = {"__builtins__": {}, **RUNTIME, **gen.consts}
    exec(compile(source, f"<verdict {label}>", "exec"), namespace)  # noqa: S102 - source built from the checked AST only
    return Program(namespace["derive"], namespace["fired"], source)
