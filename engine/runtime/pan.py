"""Finding and masking payment card numbers (PANs) in any text, before it leaves the process.

PCI DSS 3.3/3.4: a primary account number is never stored or shown in full; at most its first 6
and last 4 digits. A card number can arrive in any field (a customer id, a device id, a request
id, a field name, free text), so every string written to disk, a log line, an error or a CLI
printer passes through ``mask_pans`` at the few places where strings leave the process.

What counts as a card number: a run of 13 to 19 decimal digits passing the Luhn check (ISO/IEC
7812-1, annex B), the digits either contiguous or grouped by single separators — space, dash,
dot, slash, and their Unicode forms (no-break and thin spaces, en/em dashes, minus sign,
ideographic space, full-width hyphen/full stop/solidus) and the escapes ``repr()`` writes for the
non-printable ones (``\\u3000``, ``\\xa0``). Digits may be any Unicode decimal digits
(``\\d``: full-width ``４１１１…``, Arabic-Indic, …); the mask shows them as ASCII digits.

How (one scanner, cheap when there is nothing to find):

1. A precompiled regex finds runs of at least 13 digits with single separators between them;
   most strings are shorter than 13 characters or hold no such run and cost one regex search.
2. For each run: the whole run if it has 13-19 digits and passes Luhn; otherwise the longest
   stretch of whole digit groups (between separators) that does, so ``4111 1111 1111 1111 2``
   (a PAN followed by a quantity) is still caught. Groups are never split, so a 16-digit order
   number that fails Luhn is not turned into a 13-digit "card number" by dropping digits.
3. A run whose only separator is one dot is a decimal number: only its integer part is a
   candidate (a score ``0.3598054051399231`` is not a card number).
4. A contiguous digit run inside a 16, 32, 40 or 64 character lowercase hex token that has a
   letter is part of an identifier the engine makes (decision ids, SHA-256 hashes, key ids), not
   a card number, and is kept: masking it would break lookups by id (about 1 id in 600 holds a
   Luhn-valid run of 13+ digits).

A run longer than 19 digits with no separator is not a card number (too long) and is kept.
"""

from __future__ import annotations

import re

__all__ = ["PAN_MAX_DIGITS", "PAN_MIN_DIGITS", "SEPARATORS", "find_pans", "luhn_valid", "mask_digits", "mask_pans"]

PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19
KEEP_FIRST = 6
KEEP_LAST = 4

# Single characters that may group the digits of a card number as people and systems write it.
SEPARATORS = (
    " -./"
    "\u00a0\u2007\u2009\u202f\u3000"  # no-break, figure, thin, narrow no-break, ideographic spaces
    "\u2010\u2011\u2012\u2013\u2014\u2015\u2212"  # hyphens, dashes, minus sign
    "\uff0d\uff0e\uff0f"  # full-width hyphen-minus, full stop, solidus
)
# Python's repr() (``{value!r}`` in error messages) writes the non-printable separators as escapes
# (``'4111\\u30001111…'``), which a reader still sees as a card number: they separate too.
_ESCAPED = ("\\xa0", "\\u00a0", "\\u2007", "\\u2009", "\\u202f", "\\u3000")
_SEP = "(?:[" + re.escape(SEPARATORS) + "]|" + "|".join(re.escape(e) for e in _ESCAPED) + ")"
# A digit, then 12 or more digits each optionally preceded by one separator (greedy: whole runs).
_RUN = re.compile(rf"\d(?:{_SEP}?\d){{{PAN_MIN_DIGITS - 1},}}")
_TOKEN = re.compile(rf"({_SEP})|(\d+)")  # a run's separators and digit groups, separators first
_ID_TOKEN = re.compile(r"[0-9a-f]{16}|[0-9a-f]{32}|[0-9a-f]{40}|[0-9a-f]{64}")
_ALNUM = frozenset("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")


def luhn_valid(digits: str) -> bool:
    """Whether a string of decimal digits (any Unicode digits) passes the Luhn check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def _ascii(digits: str) -> str:
    return digits if digits.isascii() else "".join(str(int(ch)) for ch in digits)


def mask_digits(digits: str) -> str:
    """``411111******1111``: first 6 and last 4 of a 13-19 digit PAN (ASCII), the rest ``*``."""
    text = _ascii(digits)
    return text[:KEEP_FIRST] + "*" * (len(text) - KEEP_FIRST - KEEP_LAST) + text[-KEEP_LAST:]


def _is_pan(digits: str) -> bool:
    return PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS and luhn_valid(digits)


def _inside_identifier(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] (digits only) lies inside an engine-made lowercase hex identifier."""
    left, right = start, end
    while left > 0 and text[left - 1] in _ALNUM:
        left -= 1
    while right < len(text) and text[right] in _ALNUM:
        right += 1
    if left == start and right == end:
        return False
    return _ID_TOKEN.fullmatch(text, left, right) is not None


def _spans_in_run(text: str, m: re.Match[str]) -> list[tuple[int, int, str]]:
    """(start, end, digits) of the card numbers in one run of digits and separators."""
    run = m.group(0)
    base = m.start()
    groups: list[tuple[int, int, str]] = []
    separators: list[str] = []
    for t in _TOKEN.finditer(run):
        if t.group(1) is not None:
            separators.append(t.group(1))
        else:
            groups.append((base + t.start(), base + t.end(), t.group(2)))
    if separators == ["."]:
        groups = groups[:1]  # one dot: a decimal number; only its integer part can be a PAN
    found: list[tuple[int, int, str]] = []
    i = 0
    while i < len(groups):
        digits = ""
        best, best_digits = -1, ""
        for j in range(i, len(groups)):
            digits += groups[j][2]
            if len(digits) > PAN_MAX_DIGITS:
                break
            if _is_pan(digits):
                best = j
                best_digits = digits
        if best >= 0:
            start, end = groups[i][0], groups[best][1]
            if not (i == best and _inside_identifier(text, start, end)):
                found.append((start, end, best_digits))
                i = best + 1
                continue
        i += 1
    return found


def find_pans(text: str) -> list[tuple[int, int, str]]:
    """Every card number in ``text``: (start, end, its digits as written), in order."""
    if len(text) < PAN_MIN_DIGITS:
        return []
    found: list[tuple[int, int, str]] = []
    for m in _RUN.finditer(text):
        found.extend(_spans_in_run(text, m))
    return found


def mask_pans(text: str) -> str:
    """``text`` with every card number replaced by its mask (first 6, last 4; separators dropped)."""
    if len(text) < PAN_MIN_DIGITS or _RUN.search(text) is None:
        return text
    spans = find_pans(text)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for start, end, digits in spans:
        out.append(text[pos:start])
        out.append(mask_digits(digits))
        pos = end
    out.append(text[pos:])
    return "".join(out)
