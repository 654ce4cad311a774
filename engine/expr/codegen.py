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

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from engine.expr.analysis import bounds_of, derived_symbol, magnitude
from engine.expr.check import Env
from engine.expr.functions import RUNTIME
from engine.expr.generator import Generator
from engine.expr.nodes import Node
from engine.expr.numbers import CONTEXT

if TYPE_CHECKING:
    from engine.custom_lists.snapshot import ListView

__all__ = ["MAX_NESTING", "CodegenLimit", "Program", "bounds_of", "compile_program", "derived_symbol", "magnitude"]

#: Brackets an expression's generated code may nest; CPython's tokenizer stops at 200 (MAXLEVEL).
MAX_NESTING = 150


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


def _converts_derived(line: str, gen: Generator, derived: set[str]) -> bool:
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
    gen = Generator(env, lists=lists)
    assignments: list[tuple[str, str]] = []
    derived_set = {name for name, _ in derived}
    for i, (name, node) in enumerate(derived):
        sym = env.get(name)
        if sym is not None and not sym.nullable and derived_symbol(node, env).nullable:
            raise ValueError(f"derived feature {name!r} can be missing (see derived_symbol); declare it nullable")
        code = _checked(gen.derived(node), "derived", i)
        assignments.append((name, f"    {gen.local(name)} = values[{name!r}] = {code}"))

    rule_gen = gen.sibling()
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
