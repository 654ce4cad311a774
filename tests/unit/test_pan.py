"""Tests of engine.runtime.pan (the card-number scanner) and of the choke points that apply it."""

from __future__ import annotations

import io
import json

import grpc
import pytest

from engine.audit.record import decision_payload
from engine.commands._io import print_json, report, write_out
from engine.errors import FieldError, FlowNotFound, IdempotencyConflict, InvalidInput
from engine.grpc.status import status_for
from engine.policy.schema import FieldSpec
from engine.runtime.pan import SEPARATORS, find_pans, luhn_valid, mask_pans
from engine.runtime.privacy import HashKey, Masker, scrub_value

from .grpc_fakes import make_decision

PAN = "4111111111111111"  # Visa test number (Luhn-valid)
MASKED = "411111******1111"
AMEX = "378282246310005"  # 15 digits, Luhn-valid
MASKED_AMEX = "378282*****0005"


def grouped(digits: str, sep: str, size: int = 4) -> str:
    return sep.join(digits[i : i + size] for i in range(0, len(digits), size))


def to_fullwidth(text: str) -> str:
    return "".join(chr(ord(c) - ord("0") + 0xFF10) if c.isdigit() else c for c in text)


@pytest.mark.parametrize("sep", list(SEPARATORS))
def test_every_separator_kind_is_masked(sep):
    """A PAN grouped in fours by each separator (ASCII and Unicode) is masked to first 6 / last 4."""
    assert mask_pans(f"ref {grouped(PAN, sep)} end") == f"ref {MASKED} end"


def test_fullwidth_digits_and_separators_are_masked():
    """Full-width digits, alone or with full-width separators, are found and masked in ASCII."""
    assert mask_pans(to_fullwidth(PAN)) == MASKED
    assert mask_pans(grouped(to_fullwidth(PAN), "\uff0d")) == MASKED
    assert mask_pans("card:" + grouped(to_fullwidth(AMEX), "\u3000", 5)) == "card:" + MASKED_AMEX


def test_lengths_13_to_19_and_luhn_only():
    """13, 15, 16 and 19-digit Luhn-valid numbers are masked; one changed digit is not."""
    for digits in ("4222222222222", AMEX, PAN, "6011111111111117", "4000000000000000006"):
        assert luhn_valid(digits), digits
        assert mask_pans(f"x {digits} y") != f"x {digits} y"
    assert mask_pans("4111111111111112") == "4111111111111112"


def test_order_numbers_and_other_digit_runs_are_not_masked():
    """Non-Luhn runs (order numbers), too long or too short runs, and decimals are kept as they are."""
    text = "order 1234567890123456 ref 1234-5678-9012-3457 n 123456789012 big 41111111111111110000 score 0.4111111111111111"
    assert not luhn_valid("1234567890123456") and not luhn_valid("1234567890123457")
    assert luhn_valid("04111111111111111")  # the decimal's digits would pass Luhn: a decimal is not a PAN
    assert mask_pans(text) == text
    assert find_pans(text) == []


def test_pan_next_to_other_numbers_is_still_masked():
    """A PAN followed by a quantity or a decimal part is masked; the extra number stays."""
    assert mask_pans(f"{grouped(PAN, ' ')} 2 items") == f"{MASKED} 2 items"
    assert mask_pans(f"{PAN}.0") == f"{MASKED}.0"
    assert mask_pans(f"id:{PAN}x") == f"id:{MASKED}x"


def test_engine_identifiers_are_not_masked():
    """A digit run inside a 32/64-char lowercase hex id (decision id, hash) is not a card number."""
    decision_id = "ab" + PAN + "0123456789abcd"
    assert len(decision_id) == 32
    assert mask_pans(f"decision {decision_id}") == f"decision {decision_id}"
    # a bare PAN (all digits, no letter) is never an identifier
    assert mask_pans(PAN) == MASKED


def test_scrub_value_masks_keys_strings_and_whole_numbers_only():
    """Structured values: keys, strings and whole numbers are scanned; fractions and bools are kept."""
    out = scrub_value({PAN: [float(PAN), int(PAN), f"n={PAN}"], "p": 0.3598054051399231, "b": True})
    assert out == {MASKED: [MASKED, MASKED, f"n={MASKED}"], "p": 0.3598054051399231, "b": True}


def test_masker_scans_declared_non_sensitive_fields():
    """A PAN sent as customer_id, device_id (declared, not sensitive) or an unknown field is masked."""
    fields = {
        "customer_id": FieldSpec.model_validate({"type": "string"}),
        "device_id": FieldSpec.model_validate({"type": "string"}),
        "email": FieldSpec.model_validate({"type": "string", "sensitive": "hash"}),
        "amount": FieldSpec.model_validate({"type": "number"}),
    }
    key = HashKey(b"k" * 32)
    out, masked = Masker(fields)(
        {"customer_id": PAN, "device_id": grouped(PAN, "."), "email": "a@b.c", "amount": 12.5, "note": to_fullwidth(PAN)}, key
    )
    assert out["customer_id"] == MASKED and out["device_id"] == MASKED and out["note"] == MASKED
    assert out["amount"] == 12.5 and out["email"].startswith("hmac-sha256:") and masked == ["email"]


def test_record_encoder_masks_the_request_id():
    """The decision-log encoder masks a PAN used as request id; the masked input is kept as given."""
    body = decision_payload(make_decision(request_id=f"retry-{PAN}"), {"x": 1.0}, [], ts=0.0)
    data = json.loads(body)
    assert data["request_id"] == f"retry-{MASKED}" and PAN.encode() not in body
    assert data["input"] == {"x": 1.0}


def test_grpc_errors_and_trailers_mask_card_numbers():
    """Status messages and the field-errors trailer mask a PAN in a flow name, request id or field."""
    code, message, _ = status_for(FlowNotFound(PAN, ["card_payment"]))
    assert code is grpc.StatusCode.NOT_FOUND and PAN not in message and MASKED in message
    _, message, _ = status_for(IdempotencyConflict(f"request_id {grouped(PAN, '-')!r} was already used"))
    assert "1111-1111" not in message and MASKED in message
    _, message, trailer = status_for(InvalidInput([FieldError(PAN, f"bad value {PAN}", "invalid")]))
    assert PAN not in message and PAN not in trailer[0][1] and MASKED in trailer[0][1]


def test_cli_printers_mask_card_numbers(capsys):
    """print_json, write_out and report (the CLI's printers) never echo a PAN."""
    print_json({"request_id": PAN, "n": float(PAN)})
    write_out(f"line {grouped(PAN, ' ')}\n")
    report(f"bad {to_fullwidth(PAN)}")
    captured = capsys.readouterr()
    assert PAN not in captured.out + captured.err and "4111 1111" not in captured.out
    assert captured.out.count(MASKED) == 3 and MASKED in captured.err
    stream = io.StringIO()
    print_json({"ok": 1}, stream)
    assert json.loads(stream.getvalue()) == {"ok": 1}


def test_separators_escaped_by_repr_still_separate():
    """An error message quoting a value with repr() writes \\u3000 or \\xa0: the PAN is still masked."""
    for sep in ("\u3000", "\u00a0", "\u2009"):
        quoted = repr(grouped(PAN, sep))
        assert "\\" in quoted and mask_pans(quoted) == f"'{MASKED}'"
    assert mask_pans("path C:\\u3000 1234") == "path C:\\u3000 1234"
