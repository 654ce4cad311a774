"""Compile checked expressions into one Python function per flow.

The source is built only from the checked AST: names become numbered locals, numbers and text
become constants, and every other construct maps to a fixed template. Guards for missing values
are emitted only where the checker says a value can be missing. Conditions are compiled in
negation normal form, so a condition that touches a missing value is false, and so is its negation
(see docs/expressions.md, "Missing values").

Numbers are decimals (``engine.expr.numbers``; docs/expressions.md, "Numbers"). The generated code
converts only where a double would give another answer than the decimal:

* A request number stays the double it arrived as, and a literal that is the shortest decimal of
  a double stays that double: comparing such values as doubles is exactly comparing their
  decimals (see ``engine.expr.numbers``), so ``age < 18`` or ``pd >= 0.4`` costs what it always did.
* Arithmetic (``+ - * / %``), ``round``, ``log`` and ``sqrt`` compute in ``Decimal`` (34 digits,
  half-even), on the decimals of their operands; their results stay ``Decimal``. A derived feature
  computed so is held as a ``Decimal`` (``Symbol.decimal``) and handed to models as the nearest
  double. A comparison, ``in``, ``min``/``max``, ``coalesce``, ``if`` or ``between`` that mixes a
  ``Decimal`` with a double (or meets a literal no double holds) converts the doubles first.
* A left-deep chain (``x + x + ... + x``, see ``syntax.chain``) of more than a few operations is
  one flat call of ``_arith``; every expression's generated code is checked against
  ``MAX_NESTING`` brackets (CPython's parser refuses more than 200) and refused with
  ``CodegenLimit`` beyond it.
* Only arithmetic whose size cannot be bounded (``magnitude``: e.g. long chains of products) can
  overflow the decimal range; a derived feature that does is missing, and a comparison with a
  value that is not a number is false (and so is its negation).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engine.expr.analysis import bounds_of, derived_symbol, kind_of, magnitude
from engine.expr.check import Env, Typed, check
from engine.expr.functions import RUNTIME
from engine.expr.numbers import CONTEXT, is_number, is_plain, to_decimal
from engine.expr.syntax import IN_LIST, BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not, chain
from engine.expr.vocabulary import NEGATED

if TYPE_CHECKING:
    from engine.custom_lists.snapshot import ListView

__all__ = ["MAX_NESTING", "CodegenLimit", "Program", "bounds_of", "compile_program", "derived_symbol", "magnitude"]

_SAFE = {"<": "_safe_lt", "<=": "_safe_le", ">": "_safe_gt", ">=": "_safe_ge", "==": "_safe_eq", "!=": "_safe_ne"}
_STEP = {"+": "_add", "-": "_sub", "*": "_mul"}

#: Brackets an expression's generated code may nest; CPython's tokenizer stops at 200 (MAXLEVEL).
MAX_NESTING = 150
#: Chains longer than this are one ``_arith`` call rather than nested calls.
_INLINE_STEPS = 4


class CodegenLimit(ValueError):
    """An expression whose generated code CPython cannot compile (nested too deeply).

    `kind` is "derived" or "condition" and `index` its position in ``compile_program``'s arguments
    ("flow", -1: the compiled source as a whole failed)."""

    def __init__(self, kind: str, index: int, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.index = index
        self.message = message


def _nesting(code: str) -> int:
    """The deepest bracket nesting of generated code (it holds no text literals: those are constants)."""
    depth = deepest = 0
    for ch in code:
        if ch in "([{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in ")]}":
            depth -= 1
    return deepest


class _Gen:
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


def _converts_derived(line: str, gen: _Gen, derived: set[str]) -> bool:
    """Whether a prologue line converts a derived feature (done after it is computed instead)."""
    return any(line.startswith(f"    {gen.decimals[n]} = ") for n in derived if n in gen.decimals)


def _checked(code: str, kind: str, index: int) -> str:
    depth = _nesting(code)
    if depth > MAX_NESTING:
        raise CodegenLimit(
            kind, index,
            f"expression too deeply nested to compile ({depth} levels of generated code, at most {MAX_NESTING})",
        )
    return code


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
    lists: ListView | None = None,
) -> Program:
    """Generate and compile `derive(values)` and `fired(values) -> [rule index, ...]`.

    `derived` must be in dependency order and already type-checked against `env` (which must
    include the derived names, as ``derived_symbol`` gives them); each condition must type-check as
    a bool. Names' ``bounds`` in `env` are trusted (validation enforces an input field's min/max):
    guards are left out where they rule out a zero divisor.

    ``lists`` is the view custom-list tests (``x in list('name')``) read at run time: each list's
    look-up is bound into the generated code once (``ListView.lookup``), and reads the view's
    snapshot of the moment at every call.

    Raises ``CodegenLimit`` naming the derived feature or condition whose code would nest too
    deeply for CPython, or ("flow", -1) when CPython refuses the source for any other reason.
    """
    gen = _Gen(env, lists=lists)
    assignments: list[tuple[str, str]] = []
    derived_set = {name for name, _ in derived}
    for i, (name, node) in enumerate(derived):
        sym = env.get(name)
        if sym is not None and not sym.nullable and derived_symbol(node, env).nullable:
            raise ValueError(f"derived feature {name!r} can be missing (see derived_symbol); declare it nullable")
        code = _checked(gen.derived(node), "derived", i)
        assignments.append((name, f"    {gen.local(name)} = values[{name!r}] = {code}"))

    rule_gen = _Gen(env, gen.consts, gen.ntmp, lists)
    rule_gen._const_keys = gen._const_keys
    rule_body = [
        f"    if {_checked(rule_gen.cond(node, True), 'condition', i)}:\n        fired.append({i})"
        for i, node in enumerate(conditions)
    ]

    lines = ["def derive(values):", "    _g = values.get"]
    lines += [line for line in gen.prologue(derived_set) if not _converts_derived(line, gen, derived_set)]
    for name, line in assignments:
        lines.append(line)
        if name in gen.decimals:  # a later feature reads this one as a decimal
            var, dvar = gen.names[name], gen.decimals[name]
            lines.append(f"    {dvar} = None if {var} is None else _D({var})")
    if not assignments:
        lines.append("    pass")
    lines += ["", "def fired(values):", "    _g = values.get"]
    lines += rule_gen.prologue(set())
    lines.append("    fired = []")
    lines += rule_body
    lines.append("    return fired")
    source = "\n".join(lines) + "\n"
    namespace: dict[str, Any] = {"__builtins__": {}, **RUNTIME, "_dv": CONTEXT.divide, **gen.consts}
    try:
        compiled = compile(source, f"<verdict {label}>", "exec")
    except (SyntaxError, RecursionError, MemoryError, ValueError, OverflowError) as exc:
        raise CodegenLimit("flow", -1, f"the generated code does not compile: {type(exc).__name__}: {exc}") from exc
    exec(compiled, namespace)  # the source is built from the checked AST only, never from user text
    return Program(namespace["derive"], namespace["fired"], source)
