"""The named functions of the expression language: their typing rules and runtime helpers.

Every helper returns None (missing) when an argument it needs is missing, so a condition over a
missing value is false rather than an error.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING, Any

from engine.expr.numbers import CONTEXT, EXACT, to_decimal

if TYPE_CHECKING:
    from engine.expr.check import Typed

__all__ = ["EXACT", "FUNCTIONS", "Function", "RUNTIME"]

_ONE = Decimal(1)


def _typed(t: str, nullable: bool) -> Typed:
    from engine.expr.check import Typed

    return Typed(t, nullable)


def _args(args: Sequence[Typed], kinds: Sequence[str], *, at_least: int | None = None) -> None:
    if at_least is None and len(args) != len(kinds):
        raise ValueError(f"takes {len(kinds)} argument{'s' if len(kinds) != 1 else ''}, got {len(args)}")
    if at_least is not None and len(args) < at_least:
        raise ValueError(f"takes at least {at_least} arguments, got {len(args)}")
    for i, arg in enumerate(args):
        kind = kinds[min(i, len(kinds) - 1)]
        if kind != "any" and arg.type not in (kind, "null"):
            raise ValueError(f"argument {i + 1} must be a {kind}, got {arg.type}")


@dataclass(frozen=True, slots=True)
class Function:
    """A function's name, signature text (for docs), typing rule and description."""

    name: str
    signature: str
    description: str
    result: Callable[[Sequence[Typed]], Typed]


def _number_fn(name: str, always_nullable: bool = False) -> Callable[[Sequence[Typed]], Typed]:
    def rule(args: Sequence[Typed]) -> Typed:
        _args(args, ["number"])
        return _typed("number", always_nullable or args[0].nullable)

    return rule


def _min_max(args: Sequence[Typed]) -> Typed:
    _args(args, ["number"], at_least=2)
    return _typed("number", any(a.nullable for a in args))


def _round(args: Sequence[Typed]) -> Typed:
    if len(args) == 1:
        _args(args, ["number"])
    else:
        _args(args, ["number", "number"])
    return _typed("number", any(a.nullable for a in args))


def _string_fn(result: str) -> Callable[[Sequence[Typed]], Typed]:
    def rule(args: Sequence[Typed]) -> Typed:
        _args(args, ["string"])
        return _typed(result, args[0].nullable)

    return rule


def _string_pred(args: Sequence[Typed]) -> Typed:
    _args(args, ["string", "string"])
    return _typed("bool", any(a.nullable for a in args))


def _null_test(args: Sequence[Typed]) -> Typed:
    _args(args, ["any"])
    return _typed("bool", False)


def _same_type(args: Sequence[Typed]) -> str:
    kinds = {a.type for a in args} - {"null"}
    if len(kinds) > 1:
        raise ValueError("all arguments must be of one type, got " + " and ".join(sorted(kinds)))
    return kinds.pop() if kinds else "null"


def _coalesce(args: Sequence[Typed]) -> Typed:
    if len(args) < 2:
        raise ValueError(f"takes at least 2 arguments, got {len(args)}")
    return _typed(_same_type(args), all(a.nullable for a in args))


def _between(args: Sequence[Typed]) -> Typed:
    _args(args, ["number", "number", "number"])
    return _typed("bool", any(a.nullable for a in args))


def _if(args: Sequence[Typed]) -> Typed:
    if len(args) != 3:
        raise ValueError(f"takes 3 arguments (condition, then, else), got {len(args)}")
    if args[0].type not in ("bool",):
        raise ValueError(f"argument 1 must be a condition, got {args[0].type}")
    kind = _same_type(args[1:])
    return _typed(kind, args[1].nullable or args[2].nullable)


FUNCTIONS: dict[str, Function] = {
    f.name: f
    for f in [
        Function("abs", "abs(x)", "absolute value of a number", _number_fn("abs")),
        Function("min", "min(a, b, ...)", "smallest of two or more numbers; missing if any is missing", _min_max),
        Function("max", "max(a, b, ...)", "largest of two or more numbers; missing if any is missing", _min_max),
        Function("round", "round(x[, digits])", "round half to even, to `digits` decimals (default 0), in decimal", _round),
        Function("floor", "floor(x)", "largest whole number not above x", _number_fn("floor")),
        Function("ceil", "ceil(x)", "smallest whole number not below x", _number_fn("ceil")),
        Function("log", "log(x)", "natural logarithm; missing when x <= 0", _number_fn("log", True)),
        Function("sqrt", "sqrt(x)", "square root; missing when x < 0", _number_fn("sqrt", True)),
        Function("len", "len(s)", "number of characters in a text", _string_fn("number")),
        Function("lower", "lower(s)", "text in lower case", _string_fn("string")),
        Function("upper", "upper(s)", "text in upper case", _string_fn("string")),
        Function("contains", "contains(s, part)", "true when text s contains part", _string_pred),
        Function("starts_with", "starts_with(s, prefix)", "true when text s starts with prefix", _string_pred),
        Function("ends_with", "ends_with(s, suffix)", "true when text s ends with suffix", _string_pred),
        Function("is_null", "is_null(x)", "true when x is missing (absent or null)", _null_test),
        Function("is_not_null", "is_not_null(x)", "true when x is present", _null_test),
        Function("coalesce", "coalesce(a, b, ...)", "the first argument that is not missing", _coalesce),
        Function("between", "between(x, low, high)", "low <= x <= high", _between),
        Function("if", "if(condition, then, else)", "`then` when the condition is true, otherwise `else`", _if),
    ]
}


def _nn(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        for a in args:
            if a is None:
                return None
        return fn(*args)

    wrapped.__name__ = fn.__name__
    return wrapped


def _log(x: Decimal) -> Decimal | None:
    return CONTEXT.ln(x) if x > 0 else None


def _sqrt(x: Decimal) -> Decimal | None:
    return CONTEXT.sqrt(x) if x >= 0 else None


def _round_impl(x: Decimal, digits: int | float | Decimal = 0) -> Decimal | None:
    """Round half to even to `digits` decimals (a negative count rounds to tens, hundreds, ...)."""
    if isinstance(digits, (float, Decimal)) and not math.isfinite(digits):
        return None
    places = int(digits)
    if not x.is_finite() or x.as_tuple().exponent >= -places:  # type: ignore[operator]
        return x  # already that coarse
    out = x.quantize(_ONE.scaleb(-places), context=CONTEXT)
    return x if out.is_nan() else out  # more digits than the precision: nothing to round


def _coalesce_impl(*args: Any) -> Any:
    for a in args:
        if a is not None:
            return a
    return None


def _div(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    if a is None or b is None or b == 0:
        return None
    return CONTEXT.divide(a, b)


def _mod(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    """The remainder with the sign of the divisor (a - b * floor(a / b)), as Python's ``%``."""
    if a is None or b is None or b == 0:
        return None
    r = CONTEXT.remainder(a, b)
    if r.is_nan():  # the quotient has more digits than the precision
        return None
    if r and (r < 0) != (b < 0):
        r = CONTEXT.add(r, b)
    return r


_STEPS: dict[str, Callable[[Decimal, Decimal], Decimal | None]] = {
    "+": CONTEXT.add,
    "-": CONTEXT.subtract,
    "*": CONTEXT.multiply,
    "/": _div,
    "%": _mod,
}


def _arith(ops: tuple[str, ...], first: Decimal | None, *rest: Decimal | None) -> Decimal | None:
    """A left-to-right chain ``first ops[0] rest[0] ops[1] rest[1] ...`` (see syntax.chain): the
    same value as the nested operations, in one flat call however long the chain is."""
    acc = first
    for op, operand in zip(ops, rest, strict=True):
        if acc is None or operand is None:
            return None
        acc = _STEPS[op](acc, operand)
    return acc


def _floor(x: float | Decimal) -> float | Decimal:
    if type(x) is Decimal:
        return x.to_integral_value(rounding=ROUND_FLOOR)
    return float(math.floor(x)) if math.isfinite(x) else x


def _ceil(x: float | Decimal) -> float | Decimal:
    if type(x) is Decimal:
        return x.to_integral_value(rounding=ROUND_CEILING)
    return float(math.ceil(x)) if math.isfinite(x) else x


def _abs(x: float | Decimal) -> float | Decimal:
    return x.copy_abs() if isinstance(x, Decimal) else abs(x)


def _finite(x: Decimal | None) -> Decimal | None:
    """A derived value that may overflow the decimal range: missing (None) when it is not finite."""
    return x if x is None or x.is_finite() else None


def _not_nan(a: Decimal, b: Decimal) -> bool:
    return not (a.is_nan() or b.is_nan())


def _and3(*vals: bool | None) -> bool | None:
    if any(v is False for v in vals):
        return False
    return None if any(v is None for v in vals) else True


def _or3(*vals: bool | None) -> bool | None:
    if any(v is True for v in vals):
        return True
    return None if any(v is None for v in vals) else False


_SAFE = {"lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge, "eq": operator.eq, "ne": operator.ne}

#: Helpers the generated code may call, bound by name in its namespace.
RUNTIME: dict[str, Callable[..., Any]] = {
    "_f_abs": _nn(_abs),
    "_f_min": _nn(min),
    "_f_max": _nn(max),
    "_f_round": _nn(_round_impl),
    "_f_floor": _nn(_floor),
    "_f_ceil": _nn(_ceil),
    "_f_log": _nn(_log),
    "_f_sqrt": _nn(_sqrt),
    "_f_len": _nn(len),
    "_f_lower": _nn(str.lower),
    "_f_upper": _nn(str.upper),
    "_f_contains": _nn(lambda s, p: p in s),
    "_f_starts_with": _nn(str.startswith),
    "_f_ends_with": _nn(str.endswith),
    "_f_coalesce": _coalesce_impl,
    "_f_between": _nn(lambda x, lo, hi: lo <= x <= hi),
    "_div": _div,
    "_mod": _mod,
    "_arith": _arith,
    "_add": CONTEXT.add,
    "_sub": CONTEXT.subtract,
    "_mul": CONTEXT.multiply,
    "_finite": _finite,
    "_D": to_decimal,
    "_Dec": Decimal,
    "_repr": repr,
    # comparisons of values that may be NaN (after an overflow): false, and so is their negation
    **{f"_safe_{name}": (lambda cmp: lambda a, b: _not_nan(a, b) and cmp(a, b))(fn) for name, fn in _SAFE.items()},
    "_and3": _and3,
    "_or3": _or3,
}
