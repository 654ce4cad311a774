"""'Did you mean': the closest known name, at a bounded cost."""

from __future__ import annotations

import pytest

from engine.suggest import MAX_COMPARED_CHARS, closest, did_you_mean

KNOWN = ["income", "amount", "home", "customer_id", "seniority"]


@pytest.mark.parametrize(
    ("typo", "expected"),
    [("incme", "income"), ("hme", "home"), ("amuont", "amount"), ("Customer_Id", "customer_id"), ("senority", "seniority")],
)
def test_a_typo_finds_its_name(typo, expected):
    """A missing, swapped or wrong character, or a case slip, finds the intended name."""
    assert closest(typo, KNOWN) == expected
    assert did_you_mean(typo, KNOWN) == f"did you mean {expected!r}?"


@pytest.mark.parametrize("name", ["zzz", "", "x" * (2 * MAX_COMPARED_CHARS + 1), "income_tax_rate_2024"])
def test_nothing_close_gives_no_suggestion(name):
    """Unrelated, empty and very long names get no suggestion."""
    assert did_you_mean(name, KNOWN) is None


def test_long_candidates_are_compared_on_their_first_characters():
    """A name is compared on its first MAX_COMPARED_CHARS characters, and the full known name is returned."""
    long_name = "a" * 60 + "_suffix_beyond_the_compared_part"
    assert closest("a" * 59 + "b", [long_name, "other"]) == long_name
