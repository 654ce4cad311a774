"""Tests of input validation and cleaning."""

import math
from decimal import Decimal

import pytest

from engine.errors import InvalidInput
from engine.policy.schema import InputSpec
from engine.runtime.validation import compile_validator

SPEC = InputSpec.model_validate(
    {
        "fields": {
            "age": {"type": "integer", "required": True, "min": 0, "max": 120},
            "amount": {"type": "number", "required": True, "min": 1},
            "home": {"type": "category", "values": ["rent", "owner"]},
            "note": {"type": "string", "max_length": 5},
            "records": {"type": "boolean", "required": True},
        }
    }
)


def errors_of(raw, spec=SPEC):
    with pytest.raises(InvalidInput) as info:
        compile_validator(spec)(raw)
    return {e.field: e for e in info.value.errors}


def test_clean_input_is_cleaned():
    """Whole floats become ints, strings are trimmed, categories take their canonical case."""
    out = compile_validator(SPEC)({"age": 30.0, "amount": 5, "home": " Rent ", "note": " hi ", "records": False})
    assert out == {"age": 30, "amount": 5.0, "home": "rent", "note": "hi", "records": False}
    assert isinstance(out["age"], int) and isinstance(out["amount"], float)


def test_missing_optional_fields_are_none():
    """Absent and null optional fields are both missing (None)."""
    out = compile_validator(SPEC)({"age": 1, "amount": 2, "home": None, "records": True})
    assert out["home"] is None and out["note"] is None


def test_every_bad_field_is_named_at_once():
    """All field errors are reported together, each with a reason code."""
    errs = errors_of({"age": -5, "amount": "lots", "home": "castle", "note": "toolong", "extra": 1})
    assert set(errs) == {"age", "amount", "home", "note", "records", "extra"}
    assert errs["age"].code == "out_of_range" and "at least 0" in errs["age"].message
    assert errs["amount"].code == "wrong_type"
    assert errs["home"].code == "not_allowed" and "rent, owner" in errs["home"].message
    assert errs["note"].code == "too_long"
    assert errs["records"].code == "required"
    assert errs["extra"].code == "unknown_field"


@pytest.mark.parametrize("bad", [30.5, math.nan, math.inf, True, "30", [30], {"v": 30}])
def test_integer_field_rejects_non_integers(bad):
    """An integer field accepts only whole, finite numbers (not booleans, text or lists)."""
    errs = errors_of({"age": bad, "amount": 2, "records": True})
    assert set(errs) == {"age"}


def test_unknown_field_hint_and_ignore_mode():
    """A misspelt field gets a hint; with unknown_fields: ignore it is dropped silently."""
    errs = errors_of({"age": 1, "amount": 2, "records": True, "hme": "rent"})
    assert "did you mean 'home'" in errs["hme"].message
    lenient = InputSpec.model_validate({"unknown_fields": "ignore", "fields": SPEC.model_dump()["fields"]})
    out = compile_validator(lenient)({"age": 1, "amount": 2, "records": True, "hme": "rent"})
    assert "hme" not in out


def test_string_case_is_normalised():
    """A string field with `case: upper` is trimmed and upper-cased before any rule sees it."""
    spec = InputSpec.model_validate({"fields": {"country": {"type": "string", "max_length": 2, "case": "upper"}}})
    assert compile_validator(spec)({"country": " gb "}) == {"country": "GB"}


def test_integer_fields_refuse_whole_numbers_beyond_2_53_minus_1():
    """A request's numbers are doubles: a double equal to 2**53 may stand for 2**53 + 1, so an
    integer field refuses magnitudes beyond 2**53 - 1 (out_of_range, naming the limit) unless its
    own min/max is tighter, and never quotes a rounded double back as if the caller sent it."""
    spec = InputSpec.model_validate(
        {"fields": {"n": {"type": "integer"}, "big": {"type": "integer", "min": -1e30, "max": 1e30}}}
    )
    exact = compile_validator(spec)({"n": 2.0**53 - 1, "big": -(2.0**53 - 1)})
    assert exact == {"n": 2**53 - 1, "big": -(2**53 - 1)} and isinstance(exact["n"], int)
    errs = errors_of({"n": 2.0**53, "big": -(2.0**60)}, spec)
    assert errs["n"].code == "out_of_range" and errs["big"].code == "out_of_range"
    assert errs["n"].message == "must be at most 9007199254740991 (whole numbers beyond ±(2**53 - 1) are not exact in a request)"
    assert errs["big"].message.startswith("must be at least -9007199254740991 (whole numbers beyond ±(2**53 - 1)")
    tight = errors_of({"age": 1e300, "amount": 2, "records": True})  # the field's own max: 120
    assert tight["age"].message == "must be at most 120"  # 1e300 may be a rounded whole number: not quoted
    assert errors_of({"age": 120.5, "amount": 2, "records": True})["age"].message == "must be a whole number, got 120.5"


def test_numbers_read_exactly_from_text_are_refused_when_no_double_holds_them():
    """JSON or YAML read by Verdict itself gives ints and Decimals exactly: a whole number beyond
    2**53 - 1 or a fraction with more digits than a double holds is refused (out_of_range) and
    quoted as the caller wrote it, on integer and number fields alike; exact values pass as doubles."""
    spec = InputSpec.model_validate({"fields": {"n": {"type": "integer"}, "x": {"type": "number"}, "y": {"type": "number"}}})
    errs = errors_of({"n": 9007199254740993, "x": 9007199254740993, "y": Decimal("0.1000000000000000000001")}, spec)
    assert {f: e.code for f, e in errs.items()} == {"n": "out_of_range", "x": "out_of_range", "y": "out_of_range"}
    assert errs["n"].message.endswith("got 9007199254740993") and errs["x"].message.endswith("got 9007199254740993")
    assert errs["y"].message.endswith("got 0.1000000000000000000001")
    clean = compile_validator(spec)({"n": 9007199254740991, "x": Decimal("100.10"), "y": 2**60})
    assert clean == {"n": 9007199254740991, "x": 100.1, "y": float(2**60)} and type(clean["x"]) is float


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_number_field_rejects_values_that_are_not_finite(bad):
    """A number field refuses NaN and infinities: no value a rule sees is NaN."""
    errs = errors_of({"age": 1, "amount": bad, "records": True})
    assert set(errs) == {"amount"} and "finite" in errs["amount"].message
