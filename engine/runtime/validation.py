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

The cost of a bad request is bounded like a good one's (``engine.limits``, docs/limits.md): an input
of more than ``MAX_INPUT_FIELDS`` fields is refused before any field is looked at; at most
``MAX_FIELD_ERRORS`` errors are built and the rest only counted; only the first
``MAX_SUGGESTIONS`` unknown names get a "did you mean" look-up; quoted names are clipped.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

from engine.errors import FieldError, InvalidInput, clip
from engine.expr.numbers import SAFE_INTEGER
from engine.limits import (
    MAX_FIELD_ERRORS,
    MAX_FLOW_CHARS,
    MAX_INPUT_FIELDS,
    MAX_QUOTED_CHARS,
    MAX_REQUEST_ID_CHARS,
    MAX_SUGGESTIONS,
    MAX_VERSION_CHARS,
)
from engine.policy.schema import FieldSpec, InputSpec
from engine.runtime.privacy import scrub_text
from engine.runtime.validation_fast import compile_fast_path
from engine.suggest import did_you_mean

__all__ = ["Validator", "check_call", "compile_validator", "field_bounds"]

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


def _range_check(spec: FieldSpec) -> Callable[[float | int | Decimal], None]:
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


# Long (72 lines): one closure per field type (integer, number, string, boolean), each a few lines.
def _make_check(spec: FieldSpec) -> _Check:  # noqa: C901 (one closure per field type, built once at compile time so the request path runs only the check)
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

    __slots__ = ("_checks", "_defaults", "_fast", "_known", "_reject_unknown", "_required", "fields")

    def __init__(self, spec: InputSpec, label: str = "input") -> None:
        self.fields = dict(spec.fields)
        self._checks: tuple[tuple[str, bool, _Check], ...] = tuple(
            (name, f.required, _make_check(f)) for name, f in spec.fields.items()
        )
        # An absent optional field is missing (None) unless the flow declares its default.
        self._defaults = {
            name: _make_check(f)(f.default) for name, f in spec.fields.items() if f.default is not None
        }
        self._known = frozenset(spec.fields)
        self._reject_unknown = spec.unknown_fields == "reject"
        # One generated function for the plainly valid input (engine.runtime.validation_fast); the
        # per-field checks below run only when it declines, so every message comes from them.
        self._fast = compile_fast_path(spec, self._defaults, field_bounds, label)

    def cleaner(self, name: str) -> Callable[[Any], Any]:
        """The function that cleans one field's value exactly as ``__call__`` does.

        It returns the clean value (trimmed text, the field's ``case``, a category's allowed
        spelling, an ``int`` for an integer field), or None for an absent value or one the field
        refuses (``__call__`` would name it in ``InvalidInput``). Champion-challenger routing
        uses it so that a key is routed on the value the flow's rules see (engine.runtime.routing).
        Raises KeyError when ``name`` is not a field of the schema.
        """
        check = next((c for n, _, c in self._checks if n == name), None)
        if check is None:
            raise KeyError(name)

        def clean(value: Any) -> Any:
            if value is None:
                return None
            try:
                return check(value)
            except _Bad:
                return None

        return clean

    def __call__(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Clean values for every declared field (absent: its declared default, else None).

        Raises InvalidInput naming the bad fields: at most ``MAX_FIELD_ERRORS`` listed (declared
        fields first, in schema order, then unknown names in sorted order), the rest counted in
        ``omitted``; or one ``too_many_fields`` error when ``raw`` has more than
        ``MAX_INPUT_FIELDS`` entries (a flow declares at most that many, engine.policy.schema).
        """
        fast = self._fast(raw)
        if fast is not None:
            return fast
        return self._full(raw)

    def _full(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """``__call__`` by the per-field checks: cleans every value they accept, names every bad field."""
        if len(raw) > MAX_INPUT_FIELDS:
            raise InvalidInput([FieldError("input", _TOO_MANY_FIELDS, "too_many_fields")])
        out: dict[str, Any] = {}
        errors: list[FieldError] = []
        omitted = 0
        get = raw.get
        defaults = self._defaults
        for name, required, check in self._checks:
            v = get(name)
            if v is None:
                if required:
                    if len(errors) < MAX_FIELD_ERRORS:
                        errors.append(FieldError(name, "is required", "required"))
                    else:
                        omitted += 1
                out[name] = defaults.get(name)
                continue
            try:
                out[name] = check(v)
            except _Bad as bad:
                if len(errors) < MAX_FIELD_ERRORS:
                    errors.append(FieldError(name, scrub_text(bad.message), bad.code))  # no card number echoed
                else:
                    omitted += 1
        if self._reject_unknown and not self._known.issuperset(raw):
            omitted += self._unknown(raw, errors)
        if errors:
            raise InvalidInput(errors, omitted)
        return out

    def _unknown(self, raw: Mapping[str, Any], errors: list[FieldError]) -> int:
        """Append errors for the first unknown names (sorted) while there is room; the count of the rest."""
        known = self._known
        unknown = [name for name in raw if name not in known]
        room = MAX_FIELD_ERRORS - len(errors)
        listed = heapq.nsmallest(room, unknown) if room > 0 else []
        for i, name in enumerate(listed):
            hint = did_you_mean(name, known) if i < MAX_SUGGESTIONS else None
            quoted = clip(scrub_text(name), MAX_QUOTED_CHARS)  # scrub whole, then clip: no partial card number
            errors.append(FieldError(quoted, "is not a field of this flow" + (f"; {hint}" if hint else ""), "unknown_field"))
        return len(unknown) - len(listed)


_TOO_MANY_FIELDS = f"has more than {MAX_INPUT_FIELDS} fields; a request may carry at most {MAX_INPUT_FIELDS}"
_CALL_LIMITS = (("flow", MAX_FLOW_CHARS), ("version", MAX_VERSION_CHARS), ("request_id", MAX_REQUEST_ID_CHARS))


def check_call(flow: str, version: str, request_id: str) -> None:
    """Refuse a request whose flow, version or request_id is longer than its limit (engine.limits).

    Raises InvalidInput naming every such field (code ``too_long``) with its limit, before the
    request is routed, remembered for retries or quoted in any other message.
    """
    bad = [
        FieldError(name, f"must be at most {limit} characters, got {len(value)}", "too_long")
        for (name, limit), value in zip(_CALL_LIMITS, (flow, version, request_id))
        if len(value) > limit
    ]
    if bad:
        raise InvalidInput(bad)


def compile_validator(spec: InputSpec, label: str = "input") -> Validator:
    """Build the validator of an input schema (done once, at load); ``label`` names its generated
    code in tracebacks and profiles (e.g. ``credit_application 3``)."""
    return Validator(spec, label)
