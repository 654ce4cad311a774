"""Masking of sensitive input before anything reaches the decision log or a log line.

A flow marks input fields ``sensitive: mask_pan | hash | redact`` (``engine.schema.FieldSpec``):

- ``mask_pan``: a card number keeps its first 6 and last 4 digits (PCI DSS 3.3); every other
  character becomes ``*``. Values shorter than 13 characters are masked whole.
- ``hash``: ``hmac-sha256:<hex>``, a keyed hash (HMAC-SHA256 with the audit hash key, setting
  ``VERDICT_AUDIT_HASH_KEY``): equal values stay joinable, the value cannot be recovered or
  brute-forced without the key.
- ``redact``: the value is replaced by ``[redacted]``.

A ``Masker`` is built once per flow version from its input schema. Fields the flow does not
declare (flows with ``unknown_fields: ignore``) are kept, but any card number found in their
names or text is masked. ``scrub_text`` and ``scrub_event`` do the same for free text and for
structlog events, as a last line of defence for error messages and log lines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from engine.schema import FieldSpec

__all__ = [
    "HASH_PREFIX",
    "REDACTED",
    "HashKey",
    "Masker",
    "keyed_hash",
    "luhn_valid",
    "mask_pan",
    "scrub_event",
    "scrub_text",
    "scrub_value",
]

REDACTED = "[redacted]"
HASH_PREFIX = "hmac-sha256:"
PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19
_KEEP_FIRST = 6
_KEEP_LAST = 4

# 13 to 19 digits, optionally grouped by single spaces or dashes, not inside a longer digit run.
_PAN_LIKE = re.compile(r"(?<![0-9])[0-9](?:[ -]?[0-9]){12,18}(?![0-9])")


@dataclass(frozen=True)
class HashKey:
    """The secret of keyed hashes; ``key_id`` names it without revealing it."""

    secret: bytes
    ephemeral: bool = False  # generated for this process because none was configured

    @property
    def key_id(self) -> str:
        return hashlib.sha256(b"verdict-audit-key-id\0" + self.secret).hexdigest()[:16]

    @classmethod
    def from_setting(cls, value: str | None) -> HashKey:
        """The configured key, or a random one for this process (hashes then differ per run)."""
        if value:
            return cls(value.encode("utf-8"))
        return cls(os.urandom(32), ephemeral=True)

    def __repr__(self) -> str:  # never print the secret
        return f"HashKey(key_id={self.key_id!r}, ephemeral={self.ephemeral})"


def _text_of(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return str(value)


def mask_pan(value: Any) -> str:
    """First 6 and last 4 characters of a card number kept, the rest ``*`` (spaces/dashes dropped)."""
    text = re.sub(r"[ -]", "", _text_of(value))
    n = len(text)
    if n < PAN_MIN_DIGITS:
        return "*" * n
    return text[:_KEEP_FIRST] + "*" * (n - _KEEP_FIRST - _KEEP_LAST) + text[-_KEEP_LAST:]


def keyed_hash(value: Any, key: HashKey) -> str:
    """``hmac-sha256:<hex>`` of the value's JSON text under ``key``."""
    data = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HASH_PREFIX + hmac.new(key.secret, data, hashlib.sha256).hexdigest()


def luhn_valid(digits: str) -> bool:
    """Whether a digit string passes the Luhn check every payment card number passes."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _mask_match(m: re.Match[str]) -> str:
    digits = re.sub(r"[ -]", "", m.group(0))
    if PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS and luhn_valid(digits):
        return mask_pan(digits)
    return m.group(0)


def scrub_text(text: str) -> str:
    """``text`` with every card-number-like digit run (13-19 digits passing Luhn) masked."""
    if len(text) < PAN_MIN_DIGITS:
        return text
    return _PAN_LIKE.sub(_mask_match, text)


def scrub_value(value: Any, _depth: int = 0) -> Any:
    """A JSON-like value with card numbers masked in every string, key and whole number."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        text = _text_of(value)
        return mask_pan(text) if scrub_text(text) != text else value
    if _depth > 32:
        return REDACTED
    if isinstance(value, Mapping):
        return {scrub_text(str(k)): scrub_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, _depth + 1) for v in value]
    return scrub_text(str(value))


def scrub_event(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    """structlog processor: mask card numbers in every value of the event (run it last)."""
    return {k: scrub_value(v) for k, v in event_dict.items()}


_Rule = Callable[[Any], Any]


class Masker:
    """Masks one flow version's input as its schema says; built once, called per record."""

    __slots__ = ("_known", "_rules", "sensitive")

    def __init__(self, fields: Mapping[str, FieldSpec] | None, key: HashKey) -> None:
        rules: dict[str, _Rule] = {}
        for name, spec in (fields or {}).items():
            if spec.sensitive == "mask_pan":
                rules[name] = mask_pan
            elif spec.sensitive == "hash":
                rules[name] = lambda v, _k=key: keyed_hash(v, _k)
            elif spec.sensitive == "redact":
                rules[name] = lambda v: REDACTED
        self._rules = rules
        self._known = frozenset(fields or ())
        self.sensitive: tuple[str, ...] = tuple(sorted(rules))

    def __call__(self, raw: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
        """The input as it may be stored, and the names of the fields that were masked."""
        out = dict(raw)
        masked: list[str] = []
        for name, rule in self._rules.items():
            v = out.get(name)
            if v is not None:
                out[name] = rule(v)
                masked.append(name)
        if not self._known.issuperset(out):
            for name in [k for k in out if k not in self._known]:
                value = out.pop(name)
                out[scrub_text(str(name))] = scrub_value(value)
        return out, masked
