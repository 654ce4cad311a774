"""Columns that identify rows rather than describe them: found, and left out of training unless kept.

A per-row identifier (an application id, a timestamp written as text) carries no information a
new row can use: every new value is an unseen category. Worse, any transformation fitted with the
label on all rows (a category order by positive rate, target/WoE encoding) lets each one-row
category encode its own label, and cross-validation then reports near-perfect AUC for a model that
serves at chance level on that column (PythonPredictions/cobra#24, "TargetEncoder is dangerous").

A selected column is an identifier (``identifier_reason``) when it has at least ``MIN_ROWS``
values and

- it is text with distinct values in at least ``NEARLY_UNIQUE`` (90%) of its non-empty cells
  (one category per row or nearly), or
- it is text whose every value is a calendar date or date-time (``2023-01-05``, ``05/01/2023``,
  ``2023-01-05T10:00``): as categories, a future date is always unseen, or
- it is numeric with distinct whole numbers strictly increasing (or decreasing) down the file: a
  row counter, a sequence id or an epoch timestamp.

Such columns are left out and named in the command's output and the card (``data.left_out``);
``keep`` (``verdict train --keep-column NAME``) keeps one.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence

__all__ = ["MIN_ROWS", "NEARLY_UNIQUE", "identifier_reason"]

MIN_ROWS = 20
NEARLY_UNIQUE = 0.9
_DATE = re.compile(
    r"(?:\d{4}-\d{1,2}-\d{1,2}|\d{4}/\d{1,2}/\d{1,2}|\d{1,2}[./-]\d{1,2}[./-]\d{4})"
    r"(?:[T ]\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"
)


def _monotone(values: Sequence[float]) -> bool:
    pairs = list(itertools.pairwise(values))
    return all(a < b for a, b in pairs) or all(a > b for a, b in pairs)


def identifier_reason(kind: str, values: Sequence[object]) -> str | None:
    """Why a column of ``kind`` (numeric, boolean, categorical) with these values is an identifier, or None."""
    present = [v for v in values if v is not None]
    if len(present) < MIN_ROWS:
        return None
    if kind == "categorical":
        texts = [str(v) for v in present]
        distinct = len(set(texts))
        if all(_DATE.fullmatch(t) for t in set(texts)):
            return f"dates stored as text ({distinct} distinct): a new date is always an unseen category"
        if distinct >= NEARLY_UNIQUE * len(texts):
            return f"one category per row or nearly ({distinct} distinct values in {len(texts)} rows), like an id"
        return None
    if kind == "numeric":
        numbers = [float(v) for v in present]  # type: ignore[arg-type]
        if all(n.is_integer() for n in numbers) and len(set(numbers)) == len(numbers) and _monotone(numbers):
            return "distinct whole numbers that rise or fall with the row order, like a row counter or sequence id"
    return None
