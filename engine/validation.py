"""Input validation and cleaning, compiled once per flow version from its input schema.

A validator turns a caller's raw input (plain JSON-like values, as decoded from a
``google.protobuf.Struct``) into clean values, or raises ``InvalidInput`` naming *every* bad field.
Numbers arrive as floats (a ``google.protobuf.Struct``), or exactly as ``int`` and ``Decimal`` when
Verdict reads JSON or YAML text itself (``verdict decide``, test cases): number fields must be
finite and exactly what a double holds (a request number is a double: ``Decimal`` text with more
digits than that is refused, not rounded); integer fields must hold whole numbers within
±(2**53 - 1) and are converted to ``int``. A double at or beyond 2**53 may be a larger whole
number the caller's library rounded (2**53 + 1 arrives as 2**53), so it is refused and never
quoted back: a message quotes only values the caller is known to have sent.
Strings are trimmed; a category value that matches an allowed value but for its case is cleaned to
the allowed spelling.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from engine.errors import FieldError, InvalidInput
from engine.expr.numbers import SAFE_INTEGER
from engine.privacy import scrub_text
from engine.schema import FieldSpec, InputSpec

__all__ = ["Validator", "compile_validator", "field_bounds"]

_Check = Callable[[Any], Any]  # returns the clean value or raises _Bad


class _Bad(Exception):
    def __init__(self, message: str, code: str = "invalid") -> None:
        self.message = message
        self.code = code


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


#: Whole numbers arrive as doubles, exact and unambiguous only up to 2**53 - 1: an integer field
#: refuses larger values unless its own min/max is tighter (docs/policies.md, "Input fields").
_EXACT_NOTE = " (whole numbers beyond ±(2**53 - 1) are not exact in a request)"


def field_bounds(spec: FieldSpec) -> tuple[float | None, float | None]:
    """The (min, max) a number or integer field's values are held to (None: no limit that side)."""
    lo, hi = spec.min, spec.max
    if spec.type == "integer":
        lo = -SAFE_INTEGER if lo is None or lo < -SAFE_INTEGER else lo
        hi = SAFE_INTEGER if hi is None or hi > SAFE_INTEGER else hi
    return lo, hi


def _range_check(spec: FieldSpec) -> Callable[[float], None]:
    lo, hi = field_bounds(spec)
    lo_note = _EXACT_NOTE if lo == -SAFE_INTEGER and (spec.min is None or spec.min < -SAFE_INTEGER) else ""
    hi_note = _EXACT_NOTE if hi == SAFE_INTEGER and (spec.max is None or spec.max > SAFE_INTEGER) else ""
    quote = spec.sensitive is None  # a sensitive value is never echoed in a message

    def check(v: float | int | Decimal) -> None:
        if lo is not None and v < lo:
            raise _Bad(f"must be at least {_fmt(lo)}{lo_note}" + (_got(v) if quote else ""), "out_of_range")
        if hi is not None and v > hi:
            raise _Bad(f"must be at most {_fmt(hi)}{hi_note}" + (_got(v) if quote else ""), "out_of_range")

    return check


def _fmt(v: float | int | Decimal) -> str:
    """A number as the caller would write it: whole numbers without a point, others as their shortest decimal."""
    if isinstance(v, (int, Decimal)):
        return str(v)
    return str(int(v)) if v.is_integer() and abs(v) <= SAFE_INTEGER else repr(v)


def _got(v: float | int | Decimal) -> str:
    """", got <value>" when the caller is known to have sent that value: not for a whole-numbered
    double beyond 2**53 - 1, which may be another number their library rounded."""
    if isinstance(v, float) and v.is_integer() and abs(v) > SAFE_INTEGER:
        return ""
    return f", got {_fmt(v)}"


def _as_double(v: int | Decimal) -> float:
    """An exact number read from text, as the double a request carries; raises _Bad when no double
    holds it exactly (the caller's number would be silently changed)."""
    try:
        d = float(v)
    except OverflowError:
        d = math.inf
    if isinstance(v, int):
        if not math.isfinite(d) or int(d) != v:
            raise _Bad(f"cannot be carried exactly: whole numbers beyond ±(2**53 - 1) are not exact in a request, got {v}", "out_of_range")
        return d
    if not v.is_finite() or not math.isfinite(d) or Decimal(repr(d)) != v:
        raise _Bad(
            f"cannot be carried exactly: a request number is a double, which holds 15 to 17 significant digits, got {v}",
            "out_of_range",
        )
    return d


def _make_check(spec: FieldSpec) -> _Check:
    in_range = _range_check(spec)
    quote = spec.sensitive is None  # messages about sensitive fields never echo the value
    if spec.type == "integer":

        def check_integer(v: Any) -> Any:
            if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
                raise _Bad(f"must be a whole number, got {_type_name(v)}", "wrong_type")
            if type(v) is int:
                in_range(v)  # exact: read from text
                return v
            finite = math.isfinite(v)
            if not finite or v != int(v):
                raise _Bad("must be a whole number" + (f", got {_fmt(v)}" if quote and finite else ""), "wrong_type")
            in_range(v)
            return int(v)

        return check_integer
    if spec.type == "number":

        def check_number(v: Any) -> Any:
            if type(v) is not float:
                if isinstance(v, bool) or not isinstance(v, (int, float, Decimal)):
                    raise _Bad(f"must be a number, got {_type_name(v)}", "wrong_type")
                if isinstance(v, Decimal) and not v.is_finite():
                    raise _Bad("must be a finite number", "wrong_type")
                v = _as_double(v) if isinstance(v, (int, Decimal)) else float(v)
            if not math.isfinite(v):
                raise _Bad("must be a finite number", "wrong_type")
            in_range(v)
            return v

        return check_number
    if spec.type == "boolean":

        def check_boolean(v: Any) -> Any:
            if not isinstance(v, bool):
                raise _Bad(f"must be true or false, got {_type_name(v)}", "wrong_type")
            return v

        return check_boolean
    max_length = spec.max_length
    if spec.type == "string":
        fold = {"upper": str.upper, "lower": str.lower, None: None}[spec.case]

        def check_string(v: Any) -> Any:
            if not isinstance(v, str):
                raise _Bad(f"must be text, got {_type_name(v)}", "wrong_type")
            v = v.strip()
            if len(v) > max_length:
                raise _Bad(f"must be at most {max_length} characters, got {len(v)}", "too_long")
            return fold(v) if fold is not None else v

        return check_string
    allowed = frozenset(spec.values or ())
    folded = {value.casefold(): value for value in allowed}
    listing = ", ".join(spec.values or ())

    def check_category(v: Any) -> Any:
        if not isinstance(v, str):
            raise _Bad(f"must be one of {listing}; got {_type_name(v)}", "wrong_type")
        if v in allowed:
            return v
        if len(v) > max_length:
            raise _Bad(f"must be at most {max_length} characters, got {len(v)}", "too_long")
        clean = folded.get(v.strip().casefold())
        if clean is None:
            got = f"got {v[:64]!r}" if quote else "got a value that is not allowed"
            raise _Bad(f"must be one of {listing}; {got}", "not_allowed")
        return clean

    return check_category


class Validator:
    """Validates and cleans one flow version's input."""

    __slots__ = ("_checks", "_known", "_reject_unknown", "_required", "fields")

    def __init__(self, spec: InputSpec) -> None:
        self.fields = dict(spec.fields)
        self._checks: tuple[tuple[str, bool, _Check], ...] = tuple(
            (name, f.required, _make_check(f)) for name, f in spec.fields.items()
        )
        self._known = frozenset(spec.fields)
        self._reject_unknown = spec.unknown_fields == "reject"

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Clean values for every declared field (None when absent); raises InvalidInput."""
        out: dict[str, Any] = {}
        errors: list[FieldError] = []
        get = raw.get
        for name, required, check in self._checks:
            v = get(name)
            if v is None:
                if required:
                    errors.append(FieldError(name, "is required", "required"))
                out[name] = None
                continue
            try:
                out[name] = check(v)
            except _Bad as bad:
                errors.append(FieldError(name, scrub_text(bad.message), bad.code))  # no card number echoed
        if self._reject_unknown and not self._known.issuperset(raw):
            for name in sorted(set(raw) - self._known):
                close = difflib.get_close_matches(name, list(self._known), n=1, cutoff=0.75)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                errors.append(FieldError(scrub_text(name[:128]), f"is not a field of this flow{hint}", "unknown_field"))
        if errors:
            raise InvalidInput(errors)
        return out


def compile_validator(spec: InputSpec) -> Validator:
    """Build the validator of an input schema (done once, at load)."""
    return Validator(spec)
