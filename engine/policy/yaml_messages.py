"""PyYAML's parser errors as one plain sentence for a policy owner, at the line to fix, with a hint.

PyYAML reports what its state machine expected ("mapping values are not allowed here",
"expected <block end>, but found '<block mapping start>'"), often one line after the slip and in
its own terms. ``explain`` looks at the text around the reported mark and says what went wrong in
the owner's terms: a key indented further or less than its neighbours, a list item out of line,
a value with ': ' in it that needs quotes, a tab, a quote or bracket never closed, a key without
its ':'. Anything it does not recognise keeps PyYAML's words, with a general hint.

The YAML 1.1 number traps (PyYAML's resolver, YAML 1.1 spec section 10.3 "int" and "float"):
a plain ``0742`` is the octal number 482, ``0x1F`` is 31, ``1:30`` is 90 (base 60). Policy owners
write codes (merchant categories, branch codes, times), so ``number_trap`` refuses those spellings
and says to quote them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import yaml

__all__ = ["Explained", "explain", "number_trap"]


@dataclass(frozen=True, slots=True)
class Explained:
    """One YAML problem: a sentence, the 1-based line to fix (None: unknown), a hint (None: none)."""

    message: str
    line: int | None
    hint: str | None


_GENERAL_HINT = (
    "indent with spaces only, line up the keys of one block, and put quotes around a value that "
    "contains ': ' or starts with one of ' \" [ { * & ! | > % @ `"
)
_KEY = re.compile(r"^(?P<indent> *)(?P<dash>- +)?(?P<key>[^\s:#'\"\[\]{}][^:#]*?)\s*:(?:\s|$)")


def _lines(text: str) -> list[str]:
    return text.splitlines()


def _key_at(line: str) -> tuple[int, str] | None:
    """(column of the key, the key) when ``line`` starts with ``key:`` (or ``- key:``), else None."""
    m = _KEY.match(line)
    if m is None:
        return None
    return len(m.group("indent")) + len(m.group("dash") or ""), m.group("key")


def _previous(lines: list[str], index: int) -> tuple[int, str] | None:
    """The closest non-blank, non-comment line before ``index`` (0-based), with its index."""
    for i in range(index - 1, -1, -1):
        stripped = lines[i].strip()
        if stripped and not stripped.startswith("#"):
            return i, lines[i]
    return None


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _key_above(lines: list[str], index: int) -> tuple[int, str, int] | None:
    """(column, key, 1-based line) of the nearest ``key:`` line above ``index`` (0-based)."""
    for i in range(index - 1, -1, -1):
        found = _key_at(lines[i])
        if found is not None:
            return found[0], found[1], i + 1
    return None


def explain(exc: yaml.MarkedYAMLError, text: str) -> Explained:
    """The plain-language account of a PyYAML parser or scanner error in ``text``."""
    problem = exc.problem or str(exc)
    mark = exc.problem_mark or exc.context_mark
    line = mark.line + 1 if mark is not None else None
    lines = _lines(text)
    here = lines[line - 1] if line is not None and 0 < line <= len(lines) else ""
    context_line = exc.context_mark.line + 1 if exc.context_mark is not None else None

    if "'\\t'" in problem or "\t" in here[: _indent(here) + 1]:
        return Explained("this line is indented with a tab; YAML allows only spaces", line, "replace the tab with spaces")
    if problem.startswith("mapping values are not allowed"):
        return _mapping_values(lines, line, mark.column if mark is not None else 0)
    if problem.startswith("expected <block end>"):
        return _block_end(lines, line, problem)
    if "could not find expected ':'" in problem:
        at = context_line or line
        key = lines[at - 1].strip() if at and 0 < at <= len(lines) else ""
        return Explained(f"{key!r} needs a ':' after it (every line of a block is 'key: value' or '- item')", at,
                         f"write '{key}:'" if key else None)
    if "end of stream" in problem and exc.context and "quoted scalar" in exc.context:
        return Explained("a quote opened on this line is never closed", context_line or line,
                         "close the quote on the same line, e.g. when: \"amount > 100\"")
    if exc.context and "flow sequence" in exc.context:
        return Explained("a '[' list opened on this line is not closed with ']'", context_line or line,
                         "close it on the same line, e.g. values: [a, b]; or quote a value that contains ': '")
    if exc.context and "flow mapping" in exc.context:
        return Explained("a '{' mapping opened on this line is not closed with '}'", context_line or line,
                         "close it on the same line, e.g. {type: number, min: 0}")
    if "found undefined alias" in problem or "found undefined anchor" in problem:
        return Explained("a value starting with '*' or '&' is read as a YAML reference", line,
                         "put the value in quotes, e.g. '*x'")
    if "found character '@'" in problem or "found character '`'" in problem:
        return Explained("a value cannot start with '@' or '`' in YAML", line, "put the value in quotes")
    return Explained(f"YAML cannot read this: {problem}", line, _GENERAL_HINT)


def _mapping_values(lines: list[str], line: int | None, column: int) -> Explained:
    """``mapping values are not allowed here``: a key indented too far, or ': ' inside a value."""
    if line is None or not 0 < line <= len(lines):
        return Explained("a ':' is where YAML does not expect one", line, _GENERAL_HINT)
    here = lines[line - 1]
    prev = _previous(lines, line - 1)
    if prev is not None and re.match(r"^ *-[^\s-]", prev[1]):
        return Explained("a list item needs a space after '-'", prev[0] + 1, f"write '{prev[1].strip()[0]} {prev[1].strip()[1:]}'")
    key = _key_at(here)
    first_colon = here.find(":")
    if key is not None and first_colon < column:  # the ':' YAML objects to comes after the key's own
        return Explained(f"the value of {key[1]!r} contains ': ', which YAML reads as another key", line,
                         f"put the value in quotes: {key[1]}: \"{here[first_colon + 1:].strip()}\"")
    above = _key_above(lines, line - 1)
    if above is not None:
        name = key[1] if key is not None else here.strip()
        return Explained(
            f"{name!r} is indented further than the line above, so YAML reads it as part of the previous value",
            line, f"indent it {above[0]} spaces, like {above[1]!r} on line {above[2]}",
        )
    return Explained("a ':' is where YAML does not expect one", line, _GENERAL_HINT)


def _block_end(lines: list[str], line: int | None, problem: str) -> Explained:
    """``expected <block end>, but found ...``: a key or item out of line with its block, or text after a quote."""
    if line is None or not 0 < line <= len(lines):
        return Explained("a line is not lined up with its block", line, _GENERAL_HINT)
    here = lines[line - 1]
    if "'<scalar>'" in problem and re.search(r":\s*['\"]", here):
        return Explained("a value that starts with a quote must end with it, but text follows the closing quote", line,
                         "quote the whole value with the other kind of quote, e.g. when: \"country == 'GB'\"")
    column = _indent(here)
    if "'<block sequence start>'" in problem or here.lstrip().startswith("- "):
        for i in range(line - 2, -1, -1):
            if lines[i].lstrip().startswith("- ") and _indent(lines[i]) != column:
                want = _indent(lines[i])
                return Explained("this list item is not lined up with the items above it", line,
                                 f"indent it {want} spaces, like the item on line {i + 1}")
    key = _key_at(here)
    name = key[1] if key is not None else here.strip()
    above = _key_above(lines, line - 1)
    if above is not None and above[0] != column:
        return Explained(f"{name!r} is not lined up with the keys above it", line,
                         f"indent it {above[0]} spaces, like {above[1]!r} on line {above[2]}")
    return Explained(f"{name!r} is not lined up with its block", line, _GENERAL_HINT)


_OCTAL = re.compile(r"^[-+]?0[0-7_]+$")
_HEX_BIN = re.compile(r"^[-+]?0[xXbB][0-9a-fA-F_]+$")
_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")


def number_trap(text: str, value: object) -> str | None:
    """Why the plain scalar ``text`` (resolved to ``value``) is not what its writer meant, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if _OCTAL.match(text):
        return f"{text} would be read as the number {value} (YAML reads a leading 0 as octal)"
    if _HEX_BIN.match(text):
        return f"{text} would be read as the number {value} (YAML reads 0x as hexadecimal and 0b as binary)"
    if _BASE60.match(text):
        return f"{text} would be read as the number {value:g} (YAML reads a:b as base 60)"
    return None
