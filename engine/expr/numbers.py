"""Numbers of the expression language: decimals, as the policy owner writes them.

Policy owners write cut-offs in decimal (``income_minus_expenses < 50``, ``[0.4..0.75)``), and the
peer decision engines compute in decimal for that reason (DMN FEEL numbers are IEEE 754-2008
decimal128; GoRules ZEN uses a 128-bit decimal). Verdict does the same (docs/expressions.md,
"Numbers"):

* A request number arrives as a double (``google.protobuf.Struct``) or as JSON text. The number
  the caller wrote is the **shortest decimal that reads back as that double** (``repr``: the
  double nearest 100.10 stands for 100.1), so ``to_decimal(100.1) == Decimal('100.1')``. Whole
  numbers (``int``) are exact.
* A literal is the decimal as written (``parse_literal``). A literal that is also the shortest
  decimal of a double (``0.4``, ``50``, ``1e6``: almost every literal) is held as that double, so
  that comparing it with a request number needs no conversion: on doubles, ``x < y`` holds exactly
  when ``to_decimal(x) < to_decimal(y)`` (the shortest decimal of a double lies inside the interval
  of reals that round to it, and those intervals are disjoint and ordered). Any other literal
  (``0.1000000000000000000001``, ``9007199254740993``) is held as a ``Decimal``.
* Arithmetic, ``round``, ``log`` and ``sqrt`` compute in ``CONTEXT``: 34 significant digits,
  rounding half to even, exponents from -6143 to 6144 (decimal128, as FEEL), and never raise
  (a result beyond the exponent range is infinite; see ``is_finite``).
"""

from __future__ import annotations

import math
import sys
from decimal import ROUND_HALF_EVEN, Context, Decimal

__all__ = [
    "CONTEXT",
    "EXACT",
    "MAX_DIGITS",
    "SAFE_INTEGER",
    "bracket",
    "is_number",
    "is_plain",
    "parse_literal",
    "to_decimal",
]

#: Whole numbers are exact up to this magnitude in a double, the type of every number a request
#: carries (``google.protobuf.Struct``).
EXACT = 2**53

#: The largest whole number a request can carry unambiguously: a double equal to 2**53 may stand
#: for 2**53 + 1, which the caller's library rounded (JavaScript's Number.MAX_SAFE_INTEGER).
SAFE_INTEGER = 2**53 - 1

#: Significant digits of every arithmetic result (decimal128, as DMN FEEL).
MAX_DIGITS = 34

#: The arithmetic of the language: decimal128 precision and exponent range, rounding half to even,
#: no signal raised (overflow gives an infinity, an invalid operation NaN).
CONTEXT = Context(prec=MAX_DIGITS, rounding=ROUND_HALF_EVEN, Emax=6144, Emin=-6143, traps=[])


def is_number(value: object) -> bool:
    """Whether `value` is a number of the language (``int``, ``float`` or ``Decimal``, not ``bool``)."""
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def to_decimal(value: int | float | Decimal) -> Decimal:
    """The decimal a number stands for: a double's shortest round-trip decimal, an int exactly."""
    kind = type(value)
    if kind is float:
        return Decimal(repr(value))
    if kind is Decimal:
        return value  # type: ignore[return-value]
    return Decimal(int(value))


def is_plain(value: object) -> bool:
    """Whether a literal value compares with request numbers as a double does with decimals.

    True for a ``float`` (``parse_literal`` keeps one only when it is the shortest decimal of its
    double) and for an ``int`` within ±2**53; False for a ``Decimal`` and for larger ints (whose
    nearest double's shortest decimal is another number, e.g. 1e23 is not 99999999999999991611392).
    """
    if type(value) is float:
        return True
    return type(value) is int and -EXACT <= value <= EXACT


def parse_literal(text: str) -> int | float | Decimal:
    """A number literal as written: an ``int`` for digits only, a ``float`` when the decimal is the
    shortest decimal of a finite double, else the exact ``Decimal``."""
    if not any(c in text for c in ".eE"):
        return int(text)
    exact = Decimal(text)
    nearest = float(exact)
    if math.isfinite(nearest) and Decimal(repr(nearest)) == exact:
        return nearest
    return exact


def bracket(value: Decimal) -> tuple[float, float]:
    """(lo, hi): the adjacent doubles whose decimals enclose `value` (lo == hi when `value` is a
    double's decimal). For every double x: to_decimal(x) < value exactly when x < hi, and
    to_decimal(x) > value exactly when x > lo. Used where only doubles can be compared
    (durable-rules)."""
    nearest = float(value)
    if value.is_infinite():
        return nearest, nearest
    if not math.isfinite(nearest):  # beyond the largest double
        top = sys.float_info.max
        return (top, math.inf) if nearest > 0 else (-math.inf, -top)
    d = Decimal(repr(nearest))
    if d == value:
        return nearest, nearest
    if d < value:
        return nearest, math.nextafter(nearest, math.inf)
    return math.nextafter(nearest, -math.inf), nearest
