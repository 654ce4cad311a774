"""The caps on a bad request's errors: fields per request, errors per reply, quoted text, reply bytes."""

from __future__ import annotations

import json

import grpc
import pytest

from engine.errors import FieldError, InvalidInput
from engine.grpc.status import FIELD_ERRORS_KEY, FIELD_ERRORS_OMITTED_KEY, status_for
from engine.limits import (
    MAX_ERROR_MESSAGE_CHARS,
    MAX_FIELD_ERRORS,
    MAX_FIELD_ERRORS_TRAILER_BYTES,
    MAX_INPUT_FIELDS,
    MAX_QUOTED_CHARS,
    MAX_REQUEST_ID_CHARS,
    MAX_STATUS_MESSAGE_BYTES,
    MAX_SUGGESTIONS,
)
from engine.policy.schema import InputSpec
from engine.runtime.validation import check_call, compile_validator

SPEC = InputSpec.model_validate(
    {
        "fields": {
            "age": {"type": "integer", "required": True, "min": 0, "max": 120},
            "amount": {"type": "number", "required": True},
            "home": {"type": "category", "values": ["rent", "owner"]},
        }
    }
)


def _invalid(raw, spec=SPEC) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        compile_validator(spec)(raw)
    return info.value


def test_errors_beyond_the_cap_are_counted_not_listed():
    """100 unknown fields list the first MAX_FIELD_ERRORS (sorted) and count the other 90."""
    error = _invalid({"age": 1, "amount": 2, **{f"x{i:03d}": 1 for i in range(100)}})
    assert [e.field for e in error.errors] == [f"x{i:03d}" for i in range(MAX_FIELD_ERRORS)]
    assert error.omitted == 100 - MAX_FIELD_ERRORS
    assert str(error).endswith(f"; and {100 - MAX_FIELD_ERRORS} more")


def test_declared_field_errors_come_first_and_count_toward_the_cap():
    """Errors of declared fields are listed before unknown names; every bad field is listed or counted."""
    error = _invalid({"age": -1, "home": "castle", **{f"z{i}": 1 for i in range(20)}})
    assert [e.field for e in error.errors[:3]] == ["age", "amount", "home"]
    assert len(error.errors) == MAX_FIELD_ERRORS and len(error.errors) + error.omitted == 23


def test_only_the_first_unknown_names_get_a_suggestion():
    """Did-you-mean runs for the first MAX_SUGGESTIONS unknown names only (bounded cost)."""
    error = _invalid({"age": 1, "amount": 2, **{f"amount{c}": 1 for c in "abcdefgh"}})
    hinted = [e.field for e in error.errors if "did you mean 'amount'" in e.message]
    assert hinted == ["amounta", "amountb", "amountc"][:MAX_SUGGESTIONS]


def test_too_many_fields_is_one_error_naming_the_limit():
    """An input with more than MAX_INPUT_FIELDS entries is refused at once, naming the limit."""
    error = _invalid({f"f{i}": 1 for i in range(MAX_INPUT_FIELDS + 1)})
    assert [(e.field, e.code) for e in error.errors] == [("input", "too_many_fields")]
    assert f"at most {MAX_INPUT_FIELDS}" in error.errors[0].message


def test_a_flow_declares_at_most_the_field_limit():
    """A flow's input schema may declare MAX_INPUT_FIELDS fields, not one more (so a request can carry them all)."""
    from pydantic import ValidationError

    fields = {f"f{i}": {"type": "number"} for i in range(MAX_INPUT_FIELDS)}
    full = InputSpec.model_validate({"fields": fields})
    assert len(compile_validator(full)({f"f{i}": 1.0 for i in range(MAX_INPUT_FIELDS)})) == MAX_INPUT_FIELDS
    with pytest.raises(ValidationError):
        InputSpec.model_validate({"fields": {**fields, "one_more": {"type": "number"}}})


@pytest.mark.parametrize("simple", [True, False])
def test_the_wire_decoder_stops_at_the_field_limit(simple):
    """Decoding a request of 3,000 fields stops at the limit (fast path and upb path alike) and says too_many_fields."""
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
    from engine.grpc.wire import Malformed, decode_decide_request

    message = pb.DecideRequest(flow="f")
    name = (lambda i: f"k{i}") if simple else (lambda i: f"k{i}" + "x" * 130)  # keys over 127 bytes: upb decodes
    message.input.update({name(i): 1 for i in range(3000)})
    got = decode_decide_request(message.SerializeToString())
    assert isinstance(got, Malformed) and (got.field, got.code) == ("input", "too_many_fields")
    at_limit = pb.DecideRequest(flow="f")
    at_limit.input.update({name(i): 1 for i in range(MAX_INPUT_FIELDS)})
    assert len(decode_decide_request(at_limit.SerializeToString()).input) == MAX_INPUT_FIELDS


def test_quoted_unknown_names_are_clipped_after_scrubbing():
    """A 10,000-character unknown name is quoted in at most MAX_QUOTED_CHARS characters, card numbers masked first."""
    pan = "4111111111111111"
    error = _invalid({"age": 1, "amount": 2, "n" * 40 + pan + "n" * 10_000: 1})
    quoted = error.errors[0].field
    assert len(quoted) == MAX_QUOTED_CHARS and quoted.endswith("…")
    assert pan not in quoted and "411111" in quoted  # masked, keeping the first six digits


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (("f", "", "r" * (MAX_REQUEST_ID_CHARS + 1)), ["request_id"]),
        (("f" * 65, "v" * 33, ""), ["flow", "version"]),
    ],
)
def test_check_call_names_every_overlong_name(call, named):
    """flow, version and request_id beyond their limits are refused together, each with its limit."""
    with pytest.raises(InvalidInput) as info:
        check_call(*call)
    assert [e.field for e in info.value.errors] == named
    assert all(e.code == "too_long" and "at most" in e.message for e in info.value.errors)


def test_check_call_accepts_names_at_their_limits():
    """Names exactly at their limits pass."""
    check_call("f" * 64, "v" * 32, "r" * MAX_REQUEST_ID_CHARS)


def test_status_reply_stays_within_its_byte_budgets():
    """Even an InvalidInput built with huge non-ASCII messages fits the status and trailer budgets, counting what it drops."""
    errors = [FieldError("é" * 500, "ü" * 5000, "invalid") for _ in range(40)]
    code, message, metadata = status_for(InvalidInput(errors, omitted=7))
    trailers = dict(metadata)
    assert code is grpc.StatusCode.INVALID_ARGUMENT
    assert len(message.encode()) <= MAX_STATUS_MESSAGE_BYTES
    assert len(trailers[FIELD_ERRORS_KEY]) <= MAX_FIELD_ERRORS_TRAILER_BYTES
    listed = json.loads(trailers[FIELD_ERRORS_KEY])
    assert 1 <= len(listed) < 40
    assert all(len(e["message"]) <= MAX_ERROR_MESSAGE_CHARS and len(e["field"]) <= MAX_QUOTED_CHARS for e in listed)
    assert int(trailers[FIELD_ERRORS_OMITTED_KEY]) == 40 + 7 - len(listed)


def test_other_errors_have_a_bounded_message():
    """Any engine error's status message is clipped to MAX_STATUS_MESSAGE_BYTES."""
    from engine.errors import FlowNotFound

    _, message, _ = status_for(FlowNotFound("x" * 50_000))
    assert len(message.encode()) <= MAX_STATUS_MESSAGE_BYTES and message.endswith("…")


def test_suggestion_and_scrub_work_is_capped(monkeypatch):
    """250 unknown names cost at most MAX_SUGGESTIONS look-ups and MAX_FIELD_ERRORS scrubs, however many there are."""
    from engine.runtime import validation

    calls = {"suggest": 0, "scrub": 0}

    def count(key, fn):
        def wrapped(*args, **kwargs):
            calls[key] += 1
            return fn(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(validation, "did_you_mean", count("suggest", validation.did_you_mean))
    monkeypatch.setattr(validation, "scrub_text", count("scrub", validation.scrub_text))
    error = _invalid({"age": 1, "amount": 2, **{("amount" + "y" * 200 + f"{i:04d}"): 1 for i in range(250)}})
    assert error.omitted == 250 - MAX_FIELD_ERRORS
    assert calls == {"suggest": MAX_SUGGESTIONS, "scrub": MAX_FIELD_ERRORS}
