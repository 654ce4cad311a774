"""What a custom list holds and how a value becomes its key: one normal form per kind of list.

A custom list is a block or allow list a policy owner maintains without a new flow version
(docs/lists.md). Its *kind* says what its entries identify, and fixes how an entry added by an
operator and a value read from a request are brought to the same key:

- ``card``: a payment card number (PAN). Only digits count (any Unicode decimal digits; spaces and
  dashes dropped); 13-19 digits passing the Luhn check (ISO/IEC 7812-1) are required of an entry.
  The key is a keyed fingerprint, ``HMAC-SHA256(key, "verdict-list-card\\0" + digits)`` in hex, with
  the decision log's hash key (``engine.runtime.privacy.HashKey``): the card number is never stored, and
  the fingerprint cannot be reversed or brute-forced without the key (PCI DSS 3.4: a keyed
  cryptographic hash of the entire PAN). What is shown of an entry is its mask (first 6, last 4).
- ``customer``, ``device``: an identifier compared exactly (surrounding spaces dropped; case kept).
- ``ip``: an IPv4 or IPv6 address, or (entries only) a CIDR range such as ``203.0.113.0/24``
  (RFC 4632); an IPv4-mapped IPv6 address (``::ffff:203.0.113.7``) is its IPv4 address. Ranges
  are normalised to their network address (``203.0.113.9/24`` is ``203.0.113.0/24``).
- ``email_domain``: the domain of an e-mail address or a domain: the part after the last ``@``,
  lower-cased, a trailing dot dropped, internationalised names in their ASCII form (IDNA 2008,
  RFC 5891, with the UTS 46 mapping, by the ``idna`` package): ``Bücher.Example.`` and
  ``xn--bcher-kva.example`` are one key.

``entry_key`` refuses a malformed entry (``ValueError`` with the reason); ``probe_key`` never
raises: a request value that cannot be a key of the kind is simply in no list (None).
"""

from __future__ import annotations

import hmac
import ipaddress
from enum import StrEnum

import idna

from engine.runtime.pan import PAN_MAX_DIGITS, PAN_MIN_DIGITS, luhn_valid, mask_digits
from engine.runtime.privacy import HashKey

__all__ = ["MAX_VALUE_CHARS", "ListKind", "Network", "entry_key", "parse_network", "probe_key", "shown"]

MAX_VALUE_CHARS = 256  # an entry or looked-up value longer than this is refused / in no list
_CARD_CONTEXT = b"verdict-list-card\0"
_CARD_SEPARATORS = frozenset(" -")


class ListKind(StrEnum):
    """What the entries of a custom list identify."""

    CARD = "card"
    CUSTOMER = "customer"
    DEVICE = "device"
    IP = "ip"
    EMAIL_DOMAIN = "email_domain"


Network = tuple[int, int, int]  # (IP version, prefix length, network address as an integer)


def _card_digits(value: str) -> str | None:
    if value.isascii() and value.isdigit():  # the common case: plain ASCII digits
        return value if PAN_MIN_DIGITS <= len(value) <= PAN_MAX_DIGITS else None
    digits = []
    for ch in value:
        if ch.isdecimal():
            digits.append(str(int(ch)))
        elif ch not in _CARD_SEPARATORS:
            return None
    text = "".join(digits)
    return text if PAN_MIN_DIGITS <= len(text) <= PAN_MAX_DIGITS else None


def card_fingerprint(digits: str, key: HashKey) -> str:
    """The keyed fingerprint of a card number's digits (hex; see the module docstring)."""
    return hmac.digest(key.secret, _CARD_CONTEXT + digits.encode("ascii"), "sha256").hex()  # one-shot C HMAC


def _domain(value: str) -> str | None:
    text = value.strip().rsplit("@", 1)[-1].strip().rstrip(".").lower()
    if not text or len(text) > 253 or any(ch.isspace() for ch in text):
        return None
    if text.isascii():
        return text
    try:
        return str(idna.encode(text, uts46=True).decode("ascii"))
    except (idna.IDNAError, UnicodeError):
        return None


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        addr = ipaddress.ip_address(value.strip())
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    return addr


def parse_network(key: str) -> Network | None:
    """A CIDR key (``entry_key`` of a range) as (version, prefix length, network integer); None for an address."""
    if "/" not in key:
        return None
    net = ipaddress.ip_network(key)
    return net.version, net.prefixlen, int(net.network_address)


def entry_key(kind: ListKind, value: str, key: HashKey) -> str:
    """The key of an entry an operator adds; raises ValueError saying why the value is not one."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError("an entry must be non-empty text")
    if len(value) > MAX_VALUE_CHARS:
        raise ValueError(f"an entry may have at most {MAX_VALUE_CHARS} characters")
    if kind is ListKind.CARD:
        digits = _card_digits(value.strip())
        if digits is None or not luhn_valid(digits):
            raise ValueError(f"not a card number ({PAN_MIN_DIGITS}-{PAN_MAX_DIGITS} digits passing the Luhn check)")
        return card_fingerprint(digits, key)
    if kind is ListKind.IP:
        text = value.strip()
        if "/" in text:
            try:
                net = ipaddress.ip_network(text, strict=False)
            except ValueError as exc:
                raise ValueError(f"not an IP address or CIDR range: {exc}") from None
            return str(net) if net.num_addresses > 1 else str(net.network_address)
        addr = _address(text)
        if addr is None:
            raise ValueError("not an IP address or CIDR range")
        return str(addr)
    if kind is ListKind.EMAIL_DOMAIN:
        domain = _domain(value)
        if domain is None or "." not in domain:
            raise ValueError("not an e-mail domain (e.g. example.com) or address")
        return domain
    return value.strip()


def probe_key(kind: ListKind, value: object, key: HashKey) -> str | None:
    """The key a request value is looked up by, or None when it cannot be in a list of this kind.

    IP values give the address's text; the ranges that contain it are found by the snapshot.
    """
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)) and kind in (ListKind.CUSTOMER, ListKind.DEVICE, ListKind.CARD):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str) or len(value) > MAX_VALUE_CHARS:
        return None
    if kind is ListKind.CARD:
        digits = _card_digits(value.strip())
        return card_fingerprint(digits, key) if digits is not None else None
    if kind is ListKind.IP:
        addr = _address(value)
        return str(addr) if addr is not None else None
    if kind is ListKind.EMAIL_DOMAIN:
        return _domain(value)
    return value.strip() or None


def shown(kind: ListKind, value: str) -> str:
    """What may be shown and stored of an entry as given: a card number masked (first 6, last 4)."""
    if kind is ListKind.CARD:
        digits = _card_digits(value.strip()) or ""
        return mask_digits(digits) if digits else "*" * min(len(value), 19)
    return value.strip()
