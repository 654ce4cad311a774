"""The seeded card-payment generator: deterministic, well-formed, with learnable fraud patterns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from engine.training.fraud_data import CATEGORIES, COLUMNS, generate, to_csv

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    """20,000 generated transactions."""
    return generate(20_000, seed=1)


def test_deterministic_for_a_seed() -> None:
    """The same seed gives the same rows; another seed gives different rows."""
    assert generate(1500, seed=9) == generate(1500, seed=9)
    assert generate(1500, seed=9) != generate(1500, seed=10)


def test_columns_and_domains(rows: list[dict]) -> None:
    """Exactly the documented columns, with values in their documented domains."""
    assert all(tuple(r) == COLUMNS for r in rows[:10])
    assert {r["currency"] for r in rows} == {"EUR", "USD", "GBP", "CHF", "PLN", "SEK"}
    assert {r["merchant_category"] for r in rows} == set(CATEGORIES)
    assert {r["entry_mode"] for r in rows} == {"chip", "contactless", "swipe", "ecommerce", "manual"}
    assert {r["hour"] for r in rows} == set(range(24))
    assert all(len(r["merchant_country"]) == 2 and r["merchant_country"].isupper() for r in rows)
    assert all(r["amount"] > 0 and r["account_age_days"] >= 1 for r in rows)
    assert all(r["txn_count_24h"] >= r["txn_count_1h"] >= 0 for r in rows)
    assert {r["is_fraud"] for r in rows} == {0, 1}


def test_missing_value_rules(rows: list[dict]) -> None:
    """distance is missing exactly for card-not-present, cvv_match exactly for card-present, avg for ~5%."""
    assert all((r["distance_from_home_km"] is None) == (not r["card_present"]) for r in rows)
    assert all((r["cvv_match"] is None) == r["card_present"] for r in rows)
    missing_avg = np.mean([r["amount_avg_30d"] is None for r in rows])
    assert 0.03 <= missing_avg <= 0.08
    assert all(r["account_age_days"] < 30 for r in rows if r["amount_avg_30d"] is None)


def test_fraud_rate_and_patterns(rows: list[dict]) -> None:
    """About 1-3% fraud, concentrated where the documented patterns say."""
    y = np.array([r["is_fraud"] for r in rows])
    assert 0.01 <= y.mean() <= 0.03

    def rate(pred) -> float:
        sel = [r["is_fraud"] for r in rows if pred(r)]
        return float(np.mean(sel))

    base = y.mean()
    assert rate(lambda r: r["cvv_match"] is False) > 5 * base
    assert rate(lambda r: r["txn_count_1h"] >= 4) > 5 * base
    assert rate(lambda r: not r["card_present"] and r["merchant_category"] in ("crypto", "electronics")) > 2 * base
    assert rate(lambda r: r["merchant_category"] == "grocery") < base
    assert rate(lambda r: r["new_device"] and r["merchant_country"] != r["card_country"]) > 3 * base


def test_committed_csv_is_the_seeded_output() -> None:
    """data/card_payments.csv is exactly generate(60000, seed=7), under 10 MB."""
    path = ROOT / "data" / "card_payments.csv"
    assert path.stat().st_size < 10 * 2**20
    assert path.read_text(encoding="utf-8") == to_csv(generate(60_000, seed=7))
