"""Derived features, defined once: training computes them here, flows mirror them in expressions.

Each definition says, in words and as a formula, exactly what the flow must compute; the Python
function is the reference implementation used to build the training matrix. A derived value is
None (missing, NaN to the model) whenever the formula says so, never silently 0.

The same table is rendered into ``model_artifacts/README.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "CARD_FRAUD_DERIVED",
    "CARD_FRAUD_STREAM_DERIVED",
    "CREDIT_DEFAULT_DERIVED",
    "DerivedFeature",
    "add_derived",
]

Row = Mapping[str, object]


@dataclass(frozen=True)
class DerivedFeature:
    """A feature computed from input fields."""

    name: str
    type: str  # numeric | boolean
    inputs: tuple[str, ...]
    formula: str  # what the flow computes, in plain notation
    missing_when: str  # when the value is missing
    compute: Callable[[Row], object]


def _num(row: Row, key: str) -> float | None:
    v = row.get(key)
    if v is None or isinstance(v, bool):
        return None
    f = float(v)  # type: ignore[arg-type]
    return None if f != f else f


def _ratio(num: str, den: str) -> Callable[[Row], object]:
    def compute(row: Row) -> object:
        a, b = _num(row, num), _num(row, den)
        if a is None or b is None or b == 0:
            return None
        return a / b

    return compute


def _difference(a_key: str, b_key: str) -> Callable[[Row], object]:
    def compute(row: Row) -> object:
        a, b = _num(row, a_key), _num(row, b_key)
        if a is None or b is None:
            return None
        return a - b

    return compute


def _differs(a_key: str, b_key: str) -> Callable[[Row], object]:
    def compute(row: Row) -> object:
        a, b = row.get(a_key), row.get(b_key)
        if a is None or b is None:
            return None
        return a != b

    return compute


def _is_zero(key: str) -> Callable[[Row], object]:
    def compute(row: Row) -> object:
        a = _num(row, key)
        return None if a is None else a == 0

    return compute


CREDIT_DEFAULT_DERIVED: tuple[DerivedFeature, ...] = (
    DerivedFeature(
        "loan_to_price", "numeric", ("amount", "price"), "amount / price",
        "price missing or 0", _ratio("amount", "price"),
    ),
    DerivedFeature(
        "income_minus_expenses", "numeric", ("income", "expenses"), "income - expenses",
        "income or expenses missing", _difference("income", "expenses"),
    ),
    DerivedFeature(
        "debt_to_income", "numeric", ("debt", "income"), "debt / income",
        "debt or income missing, or income 0", _ratio("debt", "income"),
    ),
)

CARD_FRAUD_DERIVED: tuple[DerivedFeature, ...] = (
    DerivedFeature(
        "amount_to_avg", "numeric", ("amount", "amount_avg_30d"), "amount / amount_avg_30d",
        "amount_avg_30d missing or 0", _ratio("amount", "amount_avg_30d"),
    ),
    DerivedFeature(
        "cross_border", "boolean", ("merchant_country", "card_country"),
        "merchant_country != card_country", "either country missing",
        _differs("merchant_country", "card_country"),
    ),
    DerivedFeature(
        "ip_mismatch", "boolean", ("ip_country", "card_country"),
        "ip_country != card_country", "either country missing",
        _differs("ip_country", "card_country"),
    ),
)


# card_fraud/2 (card_payment version 3): its rows carry the stateful features the serving code computed
# (engine.training.stream_features), and the flow derives new_device from one of them.
CARD_FRAUD_STREAM_DERIVED: tuple[DerivedFeature, ...] = (
    DerivedFeature(
        "new_device", "boolean", ("device_txn_90d",), "device_txn_90d == 0",
        "device_txn_90d missing (no device_id)", _is_zero("device_txn_90d"),
    ),
    *CARD_FRAUD_DERIVED,
)


def add_derived(records: Sequence[dict[str, object]], derived: Sequence[DerivedFeature]) -> None:
    """Add every derived feature to every record, in place."""
    for rec in records:
        for d in derived:
            rec[d.name] = d.compute(rec)
