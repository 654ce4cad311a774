"""The generated fast path of a validator gives what the per-field checks give, or defers to them."""

from decimal import Decimal
from pathlib import Path

import pytest
import yaml

from engine.errors import InvalidInput
from engine.policy.schema import InputSpec
from engine.runtime.validation import compile_validator, field_bounds
from engine.runtime.validation_fast import compile_fast_path
from tests.unit.audit_helpers import card_payments, credit_applications, live_card_payments

ROOT = Path(__file__).resolve().parents[2]
FLOWS = sorted(ROOT.glob("policies/*/*/flow.yaml"))

SPEC = InputSpec.model_validate(
    {
        "unknown_fields": "reject",
        "fields": {
            "age": {"type": "integer", "required": True, "min": 0, "max": 120},
            "amount": {"type": "number", "required": True, "min": 1},
            "ratio": {"type": "number"},
            "home": {"type": "category", "values": ["rent", "owner"], "default": "rent"},
            "note": {"type": "string", "max_length": 5, "case": "upper"},
            "records": {"type": "boolean", "default": False},
        },
    }
)
GOOD = {"age": 30, "amount": 5.5, "ratio": 0.25, "home": "owner", "note": " ab ", "records": True}


def spec_of(path: Path) -> InputSpec:
    return InputSpec.model_validate(yaml.safe_load(path.read_text())["input"])


def fast_of(spec: InputSpec):
    validator = compile_validator(spec)
    return compile_fast_path(spec, validator._defaults, field_bounds), validator


def full(validator, raw):
    """The per-field checks' answer: clean values, or the InvalidInput's (field, message, code) list."""
    try:
        return validator._full(raw)
    except InvalidInput as exc:
        return [(e.field, e.message, e.code) for e in exc.errors]


@pytest.mark.parametrize("path", FLOWS, ids=lambda p: f"{p.parent.parent.name}_{p.parent.name}")
def test_bundled_inputs_take_the_fast_path_with_equal_values(path):
    """On the bundled data every flow version's fast path accepts the real inputs with values, types and order equal to the full checks'."""
    fast, validator = fast_of(spec_of(path))
    rows = [*credit_applications(300), *card_payments(300), *live_card_payments(300)]
    taken = 0
    for raw in rows:
        got = fast(raw)
        if got is None:
            continue
        taken += 1
        want = validator._full(raw)
        assert list(got.items()) == list(want.items())
        assert [type(v) for v in got.values()] == [type(v) for v in want.values()]
    flow = path.parent.parent.name
    if flow in ("credit_application", "card_payment"):
        assert taken >= 300  # the flow's own inputs are plainly valid


def test_plain_input_is_cleaned_as_the_full_checks_clean_it():
    """Whole floats become ints, text is trimmed and cased, absent optionals take their default."""
    fast, validator = fast_of(SPEC)
    for raw in (GOOD, {**GOOD, "age": 30.0}, {"age": 1, "amount": 1.0}, {**GOOD, "home": None, "ratio": None}):
        got = fast(raw)
        assert got is not None
        assert list(got.items()) == list(validator._full(raw).items())
        assert type(got["age"]) is int


BAD_OR_UNUSUAL = [
    {**GOOD, "age": None},  # required, absent
    {**GOOD, "age": 30.5},
    {**GOOD, "age": 121},
    {**GOOD, "age": float(2**53)},
    {**GOOD, "age": True},
    {**GOOD, "age": "30"},
    {**GOOD, "amount": 0.5},
    {**GOOD, "amount": float("nan")},
    {**GOOD, "amount": float("inf")},
    {**GOOD, "ratio": float("-inf")},
    {**GOOD, "amount": 7},  # an int read from text: exact, converted by the full checks
    {**GOOD, "amount": Decimal("2.5")},
    {**GOOD, "amount": Decimal("0.1000000000000000000001")},
    {**GOOD, "home": "Owner"},  # another case: the full checks clean it
    {**GOOD, "home": "boat"},
    {**GOOD, "home": ["rent"]},
    {**GOOD, "note": " toolong "},
    {**GOOD, "note": 5},
    {**GOOD, "records": 1},
    {**GOOD, "records": "true"},
    {**GOOD, "colour": "red"},  # unknown name
    {f"f{i}": i for i in range(300)},  # too many fields
]


@pytest.mark.parametrize("raw", BAD_OR_UNUSUAL, ids=range(len(BAD_OR_UNUSUAL)))
def test_anything_not_plain_goes_to_the_full_checks(raw):
    """Every bad or unusual value makes the fast path decline, and the validator then answers exactly as the full checks do."""
    fast, validator = fast_of(SPEC)
    assert fast(raw) is None
    try:
        answer = validator(raw)
    except InvalidInput as exc:
        answer = [(e.field, e.message, e.code) for e in exc.errors]
    assert answer == full(validator, raw)


def test_allowed_values_and_defaults_are_constants_never_code():
    """Allowed values and defaults that look like Python are compared as text, never run as code."""
    odd = ["it's", 'a"b', "__import__('os')"]
    spec = InputSpec.model_validate({"fields": {"kind": {"type": "category", "values": odd, "default": "it's"}}})
    fast, _ = fast_of(spec)
    assert [fast({"kind": v}) for v in odd] == [{"kind": v} for v in odd]
    assert fast({}) == {"kind": "it's"}
