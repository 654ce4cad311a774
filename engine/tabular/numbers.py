"""Numbers as people write them in CSV files, read under one convention per column.

A cell is a number under a *convention* (``NUMBER_FORMATS``):

``plain``
    Optional sign, digits with an optional ``.`` decimal point, optional exponent:
    ``1234.5``, ``-0.25``, ``.5``, ``1e-4`` (what Python, JSON and most programs write).
``thousands_comma``
    ``,`` groups thousands and ``.`` is the decimal point: ``1,234.56``, ``12,345``, ``1234.5``
    (English-language spreadsheets). A grouped number has 1-3 digits, then groups of exactly 3.
``decimal_comma``
    ``,`` is the decimal point and ``.``, a space, a no-break or a thin space groups thousands
    (one kind per cell): ``1.234,56``, ``1 234,56``, ``1234,56``, ``1.234`` (most of Europe).

Never numbers: ``inf``, ``nan``, ``1_000``, currency signs, percentages, values beyond the
float range. A column is numeric when every non-empty cell parses under ONE convention
(:func:`column_convention`); when several conventions fit and give different values (``"1,234"``
is 1234 or 1.234), the column takes the file's convention, else ``plain`` if it fits, else it is
ambiguous and the reader refuses it (see ``engine.tabular.columns``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

__all__ = ["NUMBER_FORMATS", "fitting_conventions", "parse_number"]

NUMBER_FORMATS = ("plain", "thousands_comma", "decimal_comma")

_PLAIN = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_THOUSANDS_COMMA = re.compile(r"[+-]?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)")
_DECIMAL_COMMA = re.compile(r"[+-]?(?:(?:\d{1,3}(?P<g>[. \u00a0\u202f])\d{3}(?:(?P=g)\d{3})*|\d+)(?:,\d+)?|,\d+)")
_GROUPS = str.maketrans("", "", ". \u00a0\u202f")


def _finite(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def parse_number(cell: str, convention: str) -> float | None:
    """``cell`` (already trimmed) as a float under ``convention``, or None when it is not a number there.

    Raises ValueError for an unknown convention.
    """
    if convention == "plain":
        return _finite(cell) if _PLAIN.fullmatch(cell) else None
    if convention == "thousands_comma":
        return _finite(cell.replace(",", "")) if _THOUSANDS_COMMA.fullmatch(cell) else None
    if convention == "decimal_comma":
        return _finite(cell.translate(_GROUPS).replace(",", ".")) if _DECIMAL_COMMA.fullmatch(cell) else None
    raise ValueError(f"unknown number format {convention!r}; known: {', '.join(NUMBER_FORMATS)}")


_PATTERNS = {"plain": _PLAIN, "thousands_comma": _THOUSANDS_COMMA, "decimal_comma": _DECIMAL_COMMA}


def _normalise(cell: str, convention: str) -> str:
    if convention == "thousands_comma":
        return cell.replace(",", "")
    if convention == "decimal_comma":
        return cell.translate(_GROUPS).replace(",", ".")
    return cell


def _parse_all(cells: Sequence[str], convention: str) -> list[float] | None:
    """Every cell under ``convention``, or None when one is not a number there (a column at a time: fast)."""
    if not all(map(_PATTERNS[convention].fullmatch, cells)):
        return None
    values = [float(_normalise(c, convention)) for c in cells] if convention != "plain" else list(map(float, cells))
    return values if all(map(math.isfinite, values)) else None


def fitting_conventions(cells: Sequence[str], conventions: Iterable[str] = NUMBER_FORMATS) -> dict[str, list[float]]:
    """Each convention (of ``conventions``) under which every cell is a number, with the values it gives.

    ``cells`` are the column's non-empty, trimmed cells. Cost: one regex match per cell and convention,
    skipped for the separator conventions when no cell carries a separator they read differently.
    """
    out: dict[str, list[float]] = {}
    wanted = tuple(conventions)
    for convention in wanted:
        if convention == "thousands_comma" and "plain" in out and not any("," in c for c in cells):
            continue  # same values as plain
        if convention == "decimal_comma" and "plain" in out and not any(("," in c or "." in c or " " in c) for c in cells):
            continue  # whole numbers only: same values as plain
        values = _parse_all(cells, convention)
        if values is not None:
            out[convention] = values
    return out
