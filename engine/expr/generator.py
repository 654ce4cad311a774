"""The templates of the code generator: one checked expression to Python source.

``Generator`` maps each node kind of the checked AST to a fixed template (``engine.expr.codegen``
assembles the templates into one function per flow, and its docstring states the semantics: guards
for missing values, negation normal form, where numbers become ``Decimal``). Names become numbered
locals and literals constants, so no user text reaches the source.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from engine.expr.analysis import bounds_of, kind_of, magnitude
from engine.expr.check import Env, Typed, check
from engine.expr.nodes import IN_LIST, BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not, chain
from engine.expr.numbers import is_number, is_plain, to_decimal
from engine.expr.vocabulary import NEGATED

if TYPE_CHECKING:
    from engine.custom_lists.snapshot import ListView

__all__ = ["Generator"]

_SAFE = {"<": "_safe_lt", "<=": "_safe_le", ">": "_safe_gt", ">=": "_safe_ge", "==": "_safe_eq", "!=": "_safe_ne"}
_STEP = {"+": "_add", "-": "_sub", "*": "_mul"}
#: Chains longer than this are one ``_arith`` call rather than nested calls.
_INLINE_STEPS = 4


class Generator:
    """Python source for checked expressions of one environment: values (``value``, ``derived``,
    ``dec``) and conditions (``cond``, in negation normal form), with the locals, constants and
    decimal conversions they need (``prologue``, ``consts``). Raises nothing for a checked AST."""

    def __init__(self, env: Env, consts: dict[str, Any] | None = None, ntmp: int = 0, lists: ListView | None = None) -> None:
        self.env = env
        self.lists = lists
        self.names: dict[str, str] = {}
        self.decimals: dict[str, str] = {}  # name -> local holding its Decimal
        self.consts: dict[str, Any] = consts if consts is not None else {}
        self._const_keys: dict[tuple[type, Any], str] = {}
        self.ntmp = ntmp
        self._typed: dict[int, Typed] = {}

    def typed(self, node: Node) -> Typed:
        key = id(node)
        t = self._typed.get(key)
        if t is None:
            t = self._typed[key] = check(node, self.env)
        return t

    def kind(self, node: Node) -> str:
        return kind_of(node, self.env)

    def wide(self, node: Node) -> bool:
        """Whether the number expression may overflow (and so be infinite or NaN)."""
        return magnitude(node, self.env) is None

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
        key = (type(value), value)
        try:
            found = self._const_keys.get(key)
        except TypeError:  # unhashable: never shared
            found = None
        if found is not None:
            return found
        name = f"_c{len(self.consts)}"
        self.consts[name] = value
        with contextlib.suppress(TypeError):  # unhashable: never shared
            self._const_keys[key] = name
        return name

    def literal(self, value: Any) -> str:
        """A literal in the generated code: plain numbers, booleans and null inline, the rest constants."""
        if value is None or isinstance(value, bool) or (is_number(value) and is_plain(value)):
            return repr(value)
        return self.const(value)

    def never_zero(self, node: Node) -> bool:
        """Whether a divisor is never 0: a non-zero literal, or bounds on one side of 0 (no `_div` call)."""
        if isinstance(node, Literal):
            return is_number(node.value) and node.value != 0
        bounds = bounds_of(node, self.env)
        return bounds is not None and (bounds[0] > 0 or bounds[1] < 0)

    def derived(self, node: Node) -> str:
        """A derived feature's value: missing when its arithmetic overflows (see the module doc)."""
        typed = self.typed(node)
        code = self.value(node)
        if typed.type == "number" and self.wide(node):
            return f"_finite({code})"
        return code

    # -- values: Python expressions that evaluate to the value, or None when missing ------------

    def value(self, node: Node) -> str:  # noqa: C901 (one case per expression node kind)
        if isinstance(node, Literal):
            return self.literal(node.value)
        if isinstance(node, Name):
            return self.local(node.name)
        if isinstance(node, Neg):
            inner = self.value(node.operand)
            neg = "{}.copy_negate()" if self.kind(node.operand) == "d" else "-{}"
            if self.typed(node.operand).nullable:
                first, t = self.bind(inner)
                return f"(None if {first} is None else {neg.format(t)})"
            return f"({neg.format(inner)})"
        if isinstance(node, BinOp):
            return self._arith(node)
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

    def dec(self, node: Node) -> str:
        """The value of a number expression as a ``Decimal`` (None when missing)."""
        if isinstance(node, Literal):
            return self.const(to_decimal(node.value))  # type: ignore[arg-type]
        if self.kind(node) == "d":
            return self.value(node)
        if isinstance(node, Name):  # converted once per call, at the top of the function
            if node.name not in self.decimals:
                self.decimals[node.name] = f"d{len(self.decimals)}"
                self.local(node.name)
            return self.decimals[node.name]
        code = self.value(node)
        if self.typed(node).nullable:
            first, t = self.bind(code)
            return f"(None if {first} is None else _D({t}))"
        return f"_D({code})"

    def _arith(self, node: BinOp) -> str:
        """Arithmetic in decimal: nested context calls for a short chain, one ``_arith`` call otherwise."""
        first, spine = chain(node)
        operands = [first] + [step.right for step in spine]
        codes = [self.dec(n) for n in operands]
        nullable = [self.typed(n).nullable for n in operands]
        if len(spine) == 1 and spine[0].op in ("/", "%"):
            op = spine[0].op
            if op == "/" and self.never_zero(spine[0].right) and not any(nullable):
                return f"_dv({codes[0]}, {codes[1]})"
            return f"{'_div' if op == '/' else '_mod'}({codes[0]}, {codes[1]})"
        if len(spine) > _INLINE_STEPS or any(step.op in ("/", "%") for step in spine):
            ops = self.const(tuple(step.op for step in spine))
            return f"_arith({ops}, " + ", ".join(codes) + ")"
        guards = []
        for i, is_nullable in enumerate(nullable):
            if is_nullable:
                first_use, codes[i] = self.bind(codes[i])
                guards.append(f"{first_use} is None")
        acc = codes[0]
        for step, code in zip(spine, codes[1:], strict=True):
            acc = f"{_STEP[step.op]}({acc}, {code})"
        if not guards:
            return acc
        return f"(None if {' or '.join(guards)} else {acc})"

    def _operands(self, nodes: Sequence[Node]) -> list[str]:
        """Number operands compared or chosen together: as doubles when that is exact, else decimals."""
        exact = all(self.kind(n) == "f" for n in nodes)
        return [self.value(n) if exact else self.dec(n) for n in nodes]

    def _compare(self, op: str, left: Node, right: Node, guard: str) -> str:
        """`left op right` for present operands; `guard` is "is None" (value) or "is not None" (cond)."""
        if self.typed(left).type == "number":
            lcode, rcode = self._operands([left, right])
        else:
            lcode, rcode = self.value(left), self.value(right)
        guards = []
        if self.typed(left).nullable:
            first, lcode = self.bind(lcode)
            guards.append(f"{first} {guard}")
        if self.typed(right).nullable:
            first, rcode = self.bind(rcode)
            guards.append(f"{first} {guard}")
        if self.typed(left).type == "number" and (self.wide(left) or self.wide(right)):
            test = f"{_SAFE[op]}({lcode}, {rcode})"
        else:
            test = f"{lcode} {op} {rcode}"
        if guard == "is None":
            return f"(None if {' or '.join(guards)} else {test})"
        return "(" + " and ".join([*guards, test]) + ")"

    def _members(self, node: InList) -> tuple[str, str]:
        """(operand code, constant set) of an ``in`` test, numbers compared as decimals when needed."""
        values = [i.value for i in node.items]
        if is_number(values[0]) and (self.kind(node.operand) == "d" or not all(is_plain(v) for v in values)):
            return self.dec(node.operand), self.const(frozenset(to_decimal(v) for v in values))  # type: ignore[arg-type]
        return self.value(node.operand), self.const(frozenset(values))

    def _guarded(self, node: Compare | InList) -> str:
        """A three-valued comparison: None when an operand is missing."""
        if isinstance(node, Compare):
            return self._compare(node.op, node.left, node.right, "is None")
        operand, items = self._members(node)
        first, t = self.bind(operand)
        op = "not in" if node.negated else "in"
        return f"(None if {first} is None else {t} {op} {items})"

    def _call(self, node: Call) -> str:
        if node.func == IN_LIST:  # x in list('name'): the list's look-up, bound once (None when x is missing)
            operand, name = node.args
            if self.lists is None or not isinstance(name, Literal) or name.value not in self.lists.kinds:
                raise ValueError(f"list {getattr(name, 'value', '?')!r} is not declared")  # the checker refused it first
            return f"{self.const(self.lists.lookup(str(name.value)))}({self.value(operand)})"
        if node.func == "is_null":
            return f"({self.value(node.args[0])} is None)"
        if node.func == "is_not_null":
            return f"({self.value(node.args[0])} is not None)"
        if node.func == "if":
            cond, then, other = node.args
            if self.typed(then).type == "number":
                then_code, other_code = self._operands([then, other])
            else:
                then_code, other_code = self.value(then), self.value(other)
            return f"({then_code} if {self.cond(cond, True)} else {other_code})"
        if node.func in ("min", "max", "between") or (node.func == "coalesce" and self.typed(node).type == "number"):
            codes = self._operands(node.args)
        elif node.func in ("round", "log", "sqrt"):
            codes = [self.dec(node.args[0])] + [self.value(a) for a in node.args[1:]]
        else:
            codes = [self.value(a) for a in node.args]
        return f"_f_{node.func}(" + ", ".join(codes) + ")"

    # -- conditions: Python expressions that are True exactly when the condition holds ----------

    def cond(self, node: Node, positive: bool) -> str:
        if isinstance(node, BoolOp):
            op = node.op if positive else ("or" if node.op == "and" else "and")
            return "(" + f" {op} ".join(self.cond(i, positive) for i in node.items) + ")"
        if isinstance(node, Not):
            return self.cond(node.operand, not positive)
        if isinstance(node, Compare):
            return self._compare(node.op if positive else NEGATED[node.op], node.left, node.right, "is not None")
        if isinstance(node, InList):
            negated = node.negated != (not positive)
            operand, items = self._members(node)
            op = "not in" if negated else "in"
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

    def prologue(self, loaded: set[str]) -> list[str]:
        """Statements at the top of a function: read every name, then convert those used as decimals."""
        lines = [f"    {var} = _g({name!r})" for name, var in self.names.items() if name not in loaded]
        for name, var in self.decimals.items():
            src = self.names[name]
            if self.env.get(name) is not None and self.env[name].nullable:
                lines.append(f"    {var} = None if {src} is None else _D({src})")
            else:
                lines.append(f"    {var} = _D({src})")
        return lines

    def sibling(self) -> Generator:
        """A generator for another function of the same source: it shares the constants (and their
        keys) and numbers its temporaries after this one's."""
        other = Generator(self.env, self.consts, self.ntmp, self.lists)
        other._const_keys = self._const_keys
        return other
