"""What is known about a number expression before it runs: how it is held, its size, its bounds.

Used by the code generator (``engine.expr.codegen``) to leave out conversions, zero-division
helpers and overflow checks where they cannot matter, and by the compiler to give each derived
feature its ``Symbol``:

* ``kind_of``: "f" when the value is a double (or an int), "d" when it is a ``Decimal``
  (arithmetic, ``round``, ``log``, ``sqrt``, or a mix of the two); see ``engine.expr.numbers``.
* ``magnitude``: an upper bound on the digits before the point, or None when the arithmetic could
  overflow the decimal range (only then is a check emitted).
* ``bounds_of``: bounds from the fields' declared min/max, to tell that a divisor is never 0.
"""

from __future__ import annotations

from engine.expr.check import Env, Symbol, check
from engine.expr.nodes import BinOp, Call, Literal, Name, Neg, Node, chain
from engine.expr.numbers import CONTEXT, EXACT, is_number, is_plain, to_decimal

__all__ = ["bounds_of", "derived_symbol", "kind_of", "magnitude"]

#: Digits before the point of the largest finite decimal (CONTEXT.Emax + 1), and of a double.
MAX_MAGNITUDE = CONTEXT.Emax + 1
_DOUBLE_MAGNITUDE = 309
_TINIEST = CONTEXT.Etiny()  # the exponent of the smallest non-zero decimal
_DOUBLE_TINIEST = -324


def bounds_of(node: Node, env: Env) -> tuple[float, float] | None:  # noqa: C901 (one case per expression node kind and arithmetic operator, as in the type checker)
    """(lo, hi) within ±2**53 holding every value of the number expression `node` when present,
    from the names' ``Symbol.bounds``; None when no such bounds are known.

    Approximate (computed in doubles): used only to tell that a divisor is never zero, which
    rounding toward zero cannot make wrong.
    """
    out: tuple[float, float] | None = None
    if isinstance(node, Literal):
        v = node.value
        if is_number(v):
            f = v if isinstance(v, (int, float)) else float(v)  # type: ignore[arg-type]
            out = (f, f)
    elif isinstance(node, Name):
        sym = env.get(node.name)
        out = sym.bounds if sym is not None else None
    elif isinstance(node, Neg):
        a = bounds_of(node.operand, env)
        out = None if a is None else (-a[1], -a[0])
    elif isinstance(node, BinOp):
        first, spine = chain(node)
        out = bounds_of(first, env)
        for step in spine:
            b = bounds_of(step.right, env)
            if out is None or b is None:
                return None
            a = out
            if step.op == "+":
                out = (a[0] + b[0], a[1] + b[1])
            elif step.op == "-":
                out = (a[0] - b[1], a[1] - b[0])
            elif step.op == "%":  # |x % y| < |y|; a zero divisor is missing
                m = max(abs(b[0]), abs(b[1]))
                out = (-m, m)
            elif step.op == "*" or b[0] > 0 or b[1] < 0:  # a divisor that can be near 0 has no bound
                ends = [x * y if step.op == "*" else x / y for x in a for y in b]
                out = (min(ends), max(ends))
            else:
                return None
            if not -EXACT <= out[0] <= out[1] <= EXACT:
                return None
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


def _tiniest(node: Node, env: Env) -> int:
    """A lower bound on the exponent (``Decimal.adjusted``) of the value of `node` when not zero."""
    if isinstance(node, Literal) and is_number(node.value) and node.value != 0:
        return to_decimal(node.value).adjusted()  # type: ignore[arg-type]
    if isinstance(node, Name):
        sym = env.get(node.name)
        if sym is not None and not sym.decimal:
            return _DOUBLE_TINIEST
    return _TINIEST


def magnitude(node: Node, env: Env) -> int | None:  # noqa: C901 (one case per expression node kind and arithmetic operator, as in the type checker)
    """An upper bound on the digits before the point of the number expression `node` (and of
    every step of its arithmetic); None when it could overflow the decimal range."""
    out: int | None
    if isinstance(node, Literal):
        v = node.value
        out = 0 if not is_number(v) or v == 0 else to_decimal(v).adjusted() + 1  # type: ignore[arg-type]
    elif isinstance(node, Name):
        sym = env.get(node.name)
        out = _DOUBLE_MAGNITUDE if sym is None or sym.kind != "derived" or not sym.decimal else sym.magnitude
        if sym is not None and sym.kind == "derived" and not sym.decimal and sym.magnitude is not None:
            out = sym.magnitude
    elif isinstance(node, Neg):
        out = magnitude(node.operand, env)
    elif isinstance(node, BinOp):
        first, spine = chain(node)
        out = magnitude(first, env)
        for step in spine:
            right = magnitude(step.right, env)
            if out is None or right is None:
                return None
            if step.op in ("+", "-"):
                out = max(out, right) + 1
            elif step.op == "*":
                out = out + right + 1
            elif step.op == "/":
                out = out - _tiniest(step.right, env) + 1
            else:
                out = right
            if out > MAX_MAGNITUDE:
                return None
    elif isinstance(node, Call):
        args = node.args[1:] if node.func == "if" else node.args[:1] if node.func in ("round", "sqrt") else node.args
        if node.func == "log":
            return 5  # |ln x| < 14,200 for every finite decimal
        if node.func == "len":
            return 10
        parts = [magnitude(a, env) for a in args]
        if not parts or any(p is None for p in parts):
            return None
        out = max(parts) + (1 if node.func in ("round", "floor", "ceil") else 0)  # type: ignore[type-var, operator]
        if node.func == "sqrt":
            out = out // 2 + 1
    else:
        return 0
    if out is not None and out > MAX_MAGNITUDE:
        return None
    return out


def kind_of(node: Node, env: Env) -> str:
    """How a number expression is held at run time: "f" a double (or int), "d" a ``Decimal``."""
    if isinstance(node, Literal):
        return "f" if is_plain(node.value) else "d"
    if isinstance(node, Name):
        sym = env.get(node.name)
        return "d" if sym is not None and sym.decimal else "f"
    if isinstance(node, Neg):
        return kind_of(node.operand, env)
    if isinstance(node, BinOp):
        return "d"
    if isinstance(node, Call):
        if node.func in ("round", "log", "sqrt"):
            return "d"
        if node.func in ("abs", "floor", "ceil"):
            return kind_of(node.args[0], env)
        if node.func in ("min", "max", "coalesce", "if"):
            args = node.args[1:] if node.func == "if" else node.args
            return "f" if all(kind_of(a, env) == "f" for a in args) else "d"
    return "f"


def derived_symbol(node: Node, env: Env) -> Symbol:
    """The symbol of a derived feature computed by the checked expression `node`: its type, whether it
    can be missing (when `node` can, or when its arithmetic can overflow, which is missing), how
    it is held (``decimal``) and, for numbers, its bounds and magnitude."""
    typed = check(node, env)
    if typed.type not in ("number", "null"):
        return Symbol(typed.type, typed.nullable, "derived")
    mag = magnitude(node, env)
    nullable = typed.nullable or mag is None
    return Symbol(
        "number", nullable, "derived", bounds=bounds_of(node, env), decimal=kind_of(node, env) == "d",
        magnitude=MAX_MAGNITUDE if mag is None else mag,
    )
