"""Compile checked expressions into one Python function per flow.

The source is built only from the checked AST: names become numbered locals, literals are written
with ``repr``, lists become frozen-set constants, and every other construct maps to a fixed
template. Guards for missing values are emitted only where the checker says a value can be missing.
Conditions are compiled in negation normal form, so a condition that touches a missing value is
false, and so is its negation (see docs/expressions.md, "Missing values").

Numbers behave as the doubles a request carries (docs/expressions.md, "Numbers"), which is also
how durable-rules computes (``engine.durable``): a whole-number ``+ - *`` result beyond 2**53 is
rounded to the nearest float, and a derived feature that is not a finite number is missing. Each
check is one chained comparison against constants, emitted only where arithmetic can make such a
value: not where the names' bounds (an input field's min/max, see ``bounds_of``) rule it out.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

from engine.expr.check import Env, Symbol, Typed, check
from engine.expr.functions import EXACT, RUNTIME
from engine.expr.syntax import BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not

__all__ = ["Program", "bounds_of", "compile_program", "derived_symbol"]

_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_LIMIT = repr(float(EXACT))  # a float constant: the common case compares floats with floats
_FLOAT_FUNCS = frozenset({"round", "floor", "ceil", "log", "sqrt"})  # functions whose result is a float
_QUOTIENT = {"*": operator.mul, "/": operator.truediv}


def _has_arithmetic(node: Node) -> bool:
    """Whether the expression contains a + - * / %: only arithmetic makes a non-finite or inexact value."""
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, BinOp):
            return True
        if isinstance(n, (Neg, Not)):
            stack.append(n.operand)
        elif isinstance(n, Compare):
            stack.extend((n.left, n.right))
        elif isinstance(n, InList):
            stack.append(n.operand)
        elif isinstance(n, BoolOp):
            stack.extend(n.items)
        elif isinstance(n, Call):
            stack.extend(n.args)
    return False


def bounds_of(node: Node, env: Env) -> tuple[float, float] | None:
    """(lo, hi) within ±2**53 holding every value of the number expression `node` when present,
    from the names' ``Symbol.bounds``; None when no such bounds are known.

    Rounding is monotonic, so bounds computed with the same float operations hold for the results.
    """
    out: tuple[float, float] | None = None
    if isinstance(node, Literal):
        v = node.value
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out = (v, v)
    elif isinstance(node, Name):
        sym = env.get(node.name)
        out = sym.bounds if sym is not None else None
    elif isinstance(node, Neg):
        a = bounds_of(node.operand, env)
        out = None if a is None else (-a[1], -a[0])
    elif isinstance(node, BinOp):
        a, b = bounds_of(node.left, env), bounds_of(node.right, env)
        if a is None or b is None:
            return None
        if node.op == "+":
            out = (a[0] + b[0], a[1] + b[1])
        elif node.op == "-":
            out = (a[0] - b[1], a[1] - b[0])
        elif node.op == "%":  # |x % y| < |y|; a zero divisor is missing
            m = max(abs(b[0]), abs(b[1]))
            out = (-m, m)
        elif node.op == "*" or b[0] > 0 or b[1] < 0:  # a divisor that can be near 0 has no bound
            ends = [_QUOTIENT[node.op](x, y) for x in a for y in b]
            out = (min(ends), max(ends))
    elif isinstance(node, Call) and node.func in ("min", "max", "coalesce", "if", "abs"):
        parts = [bounds_of(arg, env) for arg in (node.args[1:] if node.func == "if" else node.args)]
        if any(p is None for p in parts):
            return None
        out = (min(p[0] for p in parts), max(p[1] for p in parts))  # type: ignore[index]
        if node.func == "abs":
            out = (0, max(abs(out[0]), abs(out[1])))
    if out is None or not -EXACT <= out[0] <= out[1] <= EXACT:
        return None
    return out


def _may_be_wide(node: Node, env: Env) -> bool:
    """Whether the number expression can be beyond ±2**53 (or not finite): arithmetic without bounds."""
    return _has_arithmetic(node) and bounds_of(node, env) is None


def derived_symbol(node: Node, env: Env) -> Symbol:
    """The symbol of a derived feature computed by the checked expression `node`: its type, whether it
    can be missing (when `node` can, or when arithmetic can make a number that is not finite, which
    is missing) and, for numbers, its bounds."""
    typed = check(node, env)
    if typed.type not in ("number", "null"):
        return Symbol(typed.type, typed.nullable, "derived")
    nullable = typed.nullable or _may_be_wide(node, env)
    return Symbol("number", nullable, "derived", bounds=bounds_of(node, env))


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

    def surely_float(self, node: Node) -> bool:
        """Whether the value is never a whole-number ``int`` (so its arithmetic needs no rounding)."""
        if isinstance(node, Literal):
            return isinstance(node.value, float)
        if isinstance(node, Name):
            sym = self.env.get(node.name)
            return sym is not None and sym.kind == "score"
        if isinstance(node, Neg):
            return self.surely_float(node.operand)
        if isinstance(node, BinOp):
            return node.op == "/" or self.surely_float(node.left) or self.surely_float(node.right)
        return isinstance(node, Call) and node.func in _FLOAT_FUNCS

    def never_zero(self, node: Node) -> bool:
        """Whether a divisor is never 0: a non-zero literal, or bounds on one side of 0 (no `_div` call)."""
        if isinstance(node, Literal):
            return node.value not in (0, 0.0)
        bounds = bounds_of(node, self.env)
        return bounds is not None and (bounds[0] > 0 or bounds[1] < 0)

    def derived(self, node: Node) -> str:
        """A derived feature's value: missing when it is not a finite number (see the module doc)."""
        typed = self.typed(node)
        if typed.type != "number" or not _may_be_wide(node, self.env):
            return self.value(node)
        if isinstance(node, BinOp):
            return self._binop(node, limit="_finite")
        return self._limited(self.value(node), "_finite", typed.nullable)

    def _limited(self, code: str, helper: str, nullable: bool) -> str:
        """`code`, passed through `helper` when it is not within ±2**53 (one chained comparison)."""
        t = self.tmp()
        if nullable:
            return f"({t} if ({t} := {code}) is None or -{_LIMIT} <= {t} <= {_LIMIT} else {helper}({t}))"
        return f"({t} if -{_LIMIT} <= ({t} := {code}) <= {_LIMIT} else {helper}({t}))"

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

    def _binop(self, node: BinOp, *, limit: str | None = None) -> str:
        """Arithmetic; `limit` is the helper for results beyond ±2**53 (default: `_wide` for + - *
        on values that may be whole numbers, nothing otherwise)."""
        left, right = self.value(node.left), self.value(node.right)
        lt, rt = self.typed(node.left), self.typed(node.right)
        if node.op in ("/", "%") and not self.never_zero(node.right):
            code = f"{'_div' if node.op == '/' else '_mod'}({left}, {right})"
            return code if limit is None else self._limited(code, limit, True)
        if (
            limit is None
            and node.op in ("+", "-", "*")
            and not (self.surely_float(node.left) or self.surely_float(node.right))
            and bounds_of(node, self.env) is None
        ):
            limit = "_wide"  # whole numbers beyond 2**53 are rounded as a double would be
        guards = []
        if lt.nullable:
            first, left = self.bind(left)
            guards.append(f"{first} is None")
        if rt.nullable:
            first, right = self.bind(right)
            guards.append(f"{first} is None")
        result = f"{left} {node.op} {right}"
        if limit is not None:
            result = self._limited(result, limit, False)
        if not guards:
            return f"({result})"
        return f"(None if {' or '.join(guards)} else {result})"

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
    include the derived names, as ``derived_symbol`` gives them); each condition must type-check as
    a bool. Names' ``bounds`` in `env` are trusted (validation enforces an input field's min/max):
    guards are left out where they rule out a value beyond 2**53 or a zero divisor.
    """
    gen = _Gen(env)
    derive_body: list[str] = []
    for name, node in derived:
        sym = env.get(name)
        if sym is not None and not sym.nullable and derived_symbol(node, env).nullable:
            raise ValueError(f"derived feature {name!r} can be missing (see derived_symbol); declare it nullable")
        code = gen.derived(node)
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
