"""Tests of engine.runtime.privacy: masking card numbers, keyed hashes, redaction, scrubbing text and logs."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from engine.errors import InvalidInput
from engine.policy.schema import FieldSpec, InputSpec
from engine.runtime.privacy import HASH_PREFIX, REDACTED, HashKey, Masker, keyed_hash, luhn_valid, mask_pan, scrub_text, scrub_value
from engine.runtime.validation import compile_validator

PAN = "4111111111111111"  # a Luhn-valid test card number
PAN_19 = "6011000990139424123"


def spec(**fields: dict) -> dict[str, FieldSpec]:
    return {name: FieldSpec.model_validate(f) for name, f in fields.items()}


def test_mask_pan_keeps_first_six_and_last_four():
    """A 16-digit PAN keeps 6 + 4 digits; separators are dropped before masking."""
    assert mask_pan(PAN) == "411111******1111"
    assert mask_pan("4111 1111-1111 1111") == "411111******1111"
    assert mask_pan(4111111111111111.0) == "411111******1111"


def test_mask_pan_masks_short_values_whole():
    """A value too short to be a PAN reveals nothing (6 + 4 would reveal nearly all of it)."""
    assert mask_pan("123456789012") == "*" * 12
    assert mask_pan("") == ""


def test_keyed_hash_is_stable_per_key_and_differs_across_keys():
    """The same value hashes the same under one key and differently under another."""
    k1, k2 = HashKey(b"one"), HashKey(b"two")
    assert keyed_hash(PAN, k1) == keyed_hash(PAN, k1)
    assert keyed_hash(PAN, k1) != keyed_hash(PAN, k2)
    assert keyed_hash(PAN, k1).startswith(HASH_PREFIX) and PAN not in keyed_hash(PAN, k1)


def test_hash_key_never_prints_its_secret():
    """repr of a key names it by id only; an unset key is random and flagged ephemeral."""
    key = HashKey.from_setting("s3cret-value")
    assert "s3cret" not in repr(key) and len(key.key_id) == 16
    assert HashKey.from_setting(None).ephemeral and HashKey.from_setting(None).secret != HashKey.from_setting(None).secret


def test_luhn():
    """Luhn accepts real test card numbers and rejects a changed digit."""
    assert luhn_valid(PAN) and luhn_valid("5555555555554444") and luhn_valid(PAN_19[:16])
    assert not luhn_valid("4111111111111112")


def test_scrub_text_masks_card_numbers_only():
    """Luhn-valid 13-19 digit runs are masked; other numbers (amounts, ids, times) are kept."""
    text = f"card {PAN} paid 1234567890123 at 20240501120000 ref 4111-1111-1111-1111"
    out = scrub_text(text)
    assert PAN not in out and "4111-1111-1111-1111" not in out
    assert "411111******1111" in out
    assert "1234567890123" in out  # fails Luhn: not a card number
    assert "20240501120000" in out


def test_scrub_value_walks_nested_data_and_numbers():
    """Keys, nested strings and whole numbers holding a PAN are masked."""
    out = scrub_value({PAN: [1, {"x": f"pan={PAN}"}], "n": float(PAN), "ok": 12.5})
    assert PAN not in json.dumps(out)
    assert out["ok"] == 12.5


def test_masker_applies_each_kind():
    """mask_pan, hash and redact fields are masked; other declared fields are untouched."""
    key = HashKey(b"k")
    masker = Masker(
        spec(
            card={"type": "string", "sensitive": "mask_pan"},
            email={"type": "string", "sensitive": "hash"},
            name={"type": "string", "sensitive": "redact"},
            amount={"type": "number"},
        ),
    )
    out, masked = masker({"card": PAN, "email": "a@b.c", "name": "Ann", "amount": 5.0}, key)
    assert out == {"card": "411111******1111", "email": keyed_hash("a@b.c", key), "name": REDACTED, "amount": 5.0}
    assert masked == ["card", "email", "name"]
    assert masker.sensitive == ("card", "email", "name")


def test_masker_leaves_absent_fields_absent():
    """A missing or null sensitive field is not invented nor listed as masked."""
    masker = Masker(spec(card={"type": "string", "sensitive": "mask_pan"}))
    assert masker({"card": None}, HashKey(b"k")) == ({"card": None}, [])
    assert masker({}, HashKey(b"k")) == ({}, [])


def test_masker_scrubs_undeclared_fields():
    """A field the flow does not declare keeps its value, but a card number in it is masked."""
    masker = Masker(spec(amount={"type": "number"}))
    out, _ = masker({"amount": 1.0, "note": f"pan {PAN}", PAN: "x", "ref": "abc"}, HashKey(b"k"))
    assert PAN not in json.dumps(out)
    assert out["ref"] == "abc" and out["amount"] == 1.0


def test_conservative_masker_without_schema_masks_card_numbers():
    """With no schema (a flow revision no longer loaded) every card number is still masked."""
    out, _ = Masker(None)({"card_number": PAN, "amount": 3.0}, HashKey(b"k"))
    assert out == {"card_number": "411111******1111", "amount": 3.0}


SENSITIVE_SPEC = InputSpec.model_validate(
    {
        "fields": {
            "card": {"type": "string", "max_length": 19, "sensitive": "mask_pan"},
            "pin_tries": {"type": "integer", "max": 3, "sensitive": "redact"},
            "tier": {"type": "category", "values": ["gold", "silver"], "sensitive": "hash"},
            "amount": {"type": "number", "max": 1000},
            "merchant_category": {"type": "category", "values": ["grocery", "fuel"]},
        }
    }
)


def field_errors(raw: dict) -> str:
    with pytest.raises(InvalidInput) as info:
        compile_validator(SENSITIVE_SPEC)(raw)
    return str(info.value) + " | " + " | ".join(f"{e.field}: {e.message}" for e in info.value.errors)


def test_invalid_input_never_echoes_a_sensitive_value():
    """Errors on sensitive fields say what is wrong without quoting the value."""
    text = field_errors({"card": PAN + "0000", "pin_tries": 4111111111111111, "tier": PAN})
    assert PAN not in text and "4111111111111111" not in text
    assert "card" in text and "pin_tries" in text and "tier" in text


def test_invalid_input_masks_a_card_number_put_in_the_wrong_field():
    """A PAN sent in a non-sensitive field, or as a field name, is masked in the error message."""
    text = field_errors({"amount": float(PAN), "merchant_category": PAN, PAN: 1})
    assert PAN not in text
    assert "411111******1111" in text


def test_scrub_event_masks_log_lines():
    """The structlog processor masks card numbers in every value, exceptions included."""
    from engine.runtime.privacy import scrub_event

    out = io.StringIO()
    structlog.configure(
        processors=[structlog.processors.format_exc_info, scrub_event, structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=out),
    )
    try:
        try:
            raise ValueError(f"bad card {PAN}")
        except ValueError:
            structlog.get_logger().exception("failed", card=PAN, nested={"x": [PAN]})
    finally:
        structlog.reset_defaults()
    assert PAN not in out.getvalue() and "411111******1111" in out.getvalue()
