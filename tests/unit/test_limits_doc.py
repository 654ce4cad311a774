"""docs/limits.md states every figure of engine/limits.py, with the value the code uses."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine import limits

DOC = (Path(__file__).resolve().parents[2] / "docs" / "limits.md").read_text()
FIGURES = [name for name in limits.__all__ if name.isupper()]


@pytest.mark.parametrize("name", FIGURES)
def test_every_limit_is_documented_with_its_value(name):
    """The constant's name appears in docs/limits.md on a line that also gives its value (or its value in MiB)."""
    value = getattr(limits, name)
    spellings = {f"{value:,}", str(value)}
    if value % (1024 * 1024) == 0:
        spellings.add(f"{value // (1024 * 1024)} MiB")
    lines = [line for line in DOC.splitlines() if f"`{name}`" in line]
    assert lines, f"{name} is not in docs/limits.md"
    assert any(re.search(rf"(?<![\d,]){re.escape(s)}(?![\d,])", line) for line in lines for s in spellings), (name, value)
