"""Masking of sensitive input before anything reaches the decision log or a log line.

A flow marks input fields ``sensitive: mask_pan | hash | redact`` (``engine.policy.schema.FieldSpec``):

- ``mask_pan``: a card number keeps its first 6 and last 4 digits (PCI DSS 3.3); every other
  character becomes ``*``. Values shorter than 13 characters are masked whole.
- ``hash``: ``hmac-sha256:<hex>``, a keyed hash (HMAC-SHA256 with the audit hash key, setting
  ``VERDICT_AUDIT_HASH_KEY``): equal values stay joinable, the value cannot be recovered or
  brute-forced without the key.
- ``redact``: the value is replaced by ``[redacted]``.

A ``Masker`` is built once per flow version from its input schema, when the flow is compiled
(``CompiledFlow.masker``), and travels with the flow to the decision log, which calls it with the
log's hash key (``engine.audit.sink``): the log never looks the flow up again. Every other field, declared
or not, is kept, but any card number found in its name, its text or a whole number is masked
(``engine.runtime.pan``: 13-19 digits passing Luhn, with or without separators, any Unicode digits).
``scrub_text``, ``scrub_value`` and ``scrub_event`` apply the same scanner to free text, JSON-like
values and structlog events at the places where strings leave the process: the decision-log
record encoder, the structured-log processor chain, gRPC errors and trailers, the status service
and the CLI printers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from engine.policy.schema import FieldSpec
from engine.runtime.pan import PAN_MIN_DIGITS, luhn_valid, mask_digits, mask_pans

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
    """First 6 and last 4 digits of a card number kept, the rest ``*`` (separators dropped).

    Used for fields marked ``sensitive: mask_pan``: whatever the value, nothing but those 10
    digits survives; a value with fewer than 13 digits is masked whole (one ``*`` a character).
    """
    text = _text_of(value)
    digits = "".join(str(int(ch)) if ch.isdecimal() else "" for ch in text)
    if len(digits) < PAN_MIN_DIGITS:
        return "*" * len(text)
    return mask_digits(digits)


def keyed_hash(value: Any, key: HashKey) -> str:
    """``hmac-sha256:<hex>`` of the value's JSON text under ``key``."""
    data = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return HASH_PREFIX + hmac.new(key.secret, data, hashlib.sha256).hexdigest()


def scrub_text(text: str) -> str:
    """``text`` with every card number (``engine.runtime.pan``) masked to first 6 / last 4."""
    return mask_pans(text)


def _scrub_number(value: int | float) -> Any:
    """A whole number of 13-19 digits passing Luhn becomes its mask (a string); others stay."""
    if -1e12 < value < 1e12 or not math.isfinite(value):  # fewer than 13 digits: not a card number
        return value
    text = _text_of(value)
    masked = mask_pans(text)
    return value if masked is text else masked


def scrub_value(value: Any, _depth: int = 0) -> Any:
    """A JSON-like value with card numbers masked in every string, key and whole number."""
    if isinstance(value, str):
        return mask_pans(value)
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, (int, float)):
        return _scrub_number(value)
    if _depth > 32:
        return REDACTED
    if isinstance(value, Mapping):
        return {mask_pans(str(k)): scrub_value(v, _depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_value(v, _depth + 1) for v in value]
    return mask_pans(str(value))


def scrub_event(logger: Any, method_name: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: mask card numbers in every value of the event (run it last)."""
    return {k: scrub_value(v) for k, v in event_dict.items()}


_Rule = Callable[[Any, HashKey], Any]


def _mask_pan_rule(value: Any, key: HashKey) -> str:
    return mask_pan(value)


def _redact_rule(value: Any, key: HashKey) -> str:
    return REDACTED


# The rule of each ``sensitive:`` kind (engine.policy.schema.FieldSpec): value, log hash key -> stored value
_RULES: dict[str, _Rule] = {"mask_pan": _mask_pan_rule, "hash": keyed_hash, "redact": _redact_rule}


class Masker:
    """Masks one flow version's input as its schema says; built once (at compile time), called per record.

    ``Masker(None)`` is the conservative masker of an input whose schema is not known: every field
    is treated as undeclared, so only card numbers are masked.
    """

    __slots__ = ("_known", "_rules", "sensitive")

    def __init__(self, fields: Mapping[str, FieldSpec] | None) -> None:
        self._rules: dict[str, _Rule] = {
            name: _RULES[spec.sensitive] for name, spec in (fields or {}).items() if spec.sensitive in _RULES
        }
        self._known = frozenset(fields or ())
        self.sensitive: tuple[str, ...] = tuple(sorted(self._rules))

    def __call__(self, raw: Mapping[str, Any], key: HashKey) -> tuple[dict[str, Any], list[str]]:
        """The input as it may be stored, and the names of the sensitive fields that were masked.

        Sensitive fields get their rule (``hash`` under ``key``, the decision log's hash key); every
        other value and every undeclared field name has its card numbers masked (a PAN sent as a
        customer id or an unknown field never survives).
        """
        rules = self._rules
        known = self._known
        out: dict[str, Any] = {}
        for name, value in raw.items():
            if name in rules:
                out[name] = value
                continue
            if type(value) is str:  # the common case, inlined: most strings are short
                value = mask_pans(value)
            elif type(value) is float:
                value = _scrub_number(value)
            elif not (value is None or type(value) is bool):
                value = scrub_value(value)
            out[name if name in known else mask_pans(str(name))] = value
        masked: list[str] = []
        for name, rule in rules.items():
            v = out.get(name)
            if v is not None:
                out[name] = rule(v, key)
                masked.append(name)
        return out, masked
