"""Features as of decision time, recomputed from a logged (masked) record by the version that decided:
the case page, `verdict cases show` and `verdict train --from-log` share engine.training.from_log.recompute_features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.cases import ReviewConfig, case_from_record, open_store
from engine.cases.model import OutcomeKind, OutcomeLabel
from engine.cli import main
from engine.policy.loader import load
from engine.training.from_log import flow_versions, recompute_features, training_set

from .cases_helpers import review_record

ROOT = Path(__file__).resolve().parents[2]
# data/credit_data.csv line 2 (policies/credit_application/2/tests/decisions.yaml)
APPLICATION = {"seniority": 9, "home": "rent", "time": 60, "age": 30, "marital": "married", "records": False, "job": "freelance",
               "expenses": 73, "income": 129, "assets": 0, "debt": 0, "amount": 800, "price": 846}


@pytest.fixture(scope="module")
def compiled() -> dict[tuple[str, str], Any]:
    return load(ROOT).compiled


def _record(compiled: dict[tuple[str, str], Any], masked: list[str], **extra: Any) -> dict[str, Any]:
    record = review_record("f1")
    values = {**APPLICATION, **{k: "***" for k in masked}}
    record.update(input=values, masked=masked, revision=compiled[("credit_application", "2")].revision, **extra)
    return record


def test_derived_features_are_recomputed_and_masked_ones_are_unavailable(compiled) -> None:
    """With income masked, loan_to_price and installment are recomputed exactly; the two features reading income are unavailable, not guessed."""
    found = recompute_features(_record(compiled, ["income"]), flow_versions(compiled, "credit_application"))
    assert found.problem == ""
    assert found.derived == pytest.approx({"loan_to_price": 800 / 846, "installment": 800 / 60})
    assert found.unavailable == ["debt_to_income", "income_minus_expenses"]


def test_nothing_is_masked_so_every_feature_is_recomputed(compiled) -> None:
    """Without masking every derived feature of version 2 has its value from the logged input."""
    found = recompute_features(_record(compiled, []), flow_versions(compiled, "credit_application"))
    assert found.derived == pytest.approx({"loan_to_price": 800 / 846, "income_minus_expenses": 129 - 73, "debt_to_income": 0.0, "installment": 800 / 60})
    assert found.unavailable == []


def test_a_version_no_longer_loaded_with_that_revision_recomputes_nothing(compiled) -> None:
    """A record whose revision is not the loaded one gets a problem naming the version and no values; its stateful features still show."""
    record = {**_record(compiled, []), "revision": "0" * 64, "state": {"txn_count_1h": 3}}
    found = recompute_features(record, flow_versions(compiled, "credit_application"))
    assert found.derived == {} and "version '2' is not loaded" in found.problem and found.state == {"txn_count_1h": 3}


def test_stateful_features_from_the_record_feed_derived_ones(compiled) -> None:
    """card_payment v2 derives new_device and amount_to_avg from the stateful features the record carries."""
    state = {"device_txn_90d": 0, "amount_avg_30d": 50.0}
    record = {"kind": "decision", "flow": "card_payment", "version": "2", "revision": compiled[("card_payment", "2")].revision,
              "input": {"amount": 200.0, "merchant_country": "DE", "card_country": "DE", "hour": 3, "merchant_category": "grocery",
                        "card_number": "411111******1111"}, "masked": ["card_number"], "state": state}
    found = recompute_features(record, flow_versions(compiled, "card_payment"))
    assert found.state == state
    assert found.derived["new_device"] is True and found.derived["amount_to_avg"] == pytest.approx(4.0)
    assert found.derived["night"] is True and found.derived["cross_border"] is False


def test_training_set_leaves_masked_features_empty(compiled) -> None:
    """train --from-log uses the same recomputation: a feature reading a masked field is an empty cell, the others have values."""
    record = _record(compiled, ["income"])
    built = training_set([record], {"f1": [OutcomeLabel("f1", OutcomeKind.DEFAULT, "2026-09-30", "t")]}, flow_versions(compiled, "credit_application"))
    row = dict(zip(built.header, built.rows[0], strict=True))
    assert row["debt_to_income"] is None and row["income_minus_expenses"] is None
    assert row["installment"] == pytest.approx(800 / 60) and row["label"] == "bad"


def test_cases_show_prints_the_features(compiled, tmp_path: Path, capsys) -> None:
    """`verdict cases show --root` lists recomputed features and marks the masked ones unavailable."""
    store_path = str(tmp_path / "cases.db")
    store = open_store(store_path)
    case = case_from_record(_record(compiled, ["income"]), ReviewConfig({}))
    assert case is not None
    store.open_cases([case])
    store.close()
    assert main(["cases", "show", "f1", "--store", store_path, "--root", str(ROOT)]) == 0
    out = capsys.readouterr().out
    assert "installment=13.33" in out and "debt_to_income=unavailable (reads a masked field)" in out


def test_screening_features_of_a_masked_name_are_unavailable(compiled) -> None:
    """customer_onboarding screens full_name: with the name masked, its screening features are unavailable rather than a no-match guess."""
    record = {"kind": "decision", "flow": "customer_onboarding", "version": "1", "revision": compiled[("customer_onboarding", "1")].revision,
              "input": {"full_name": "***", "age": 40, "residence_country": "DE", "document_type": "passport", "nationality": "de"},
              "masked": ["full_name"]}
    found = recompute_features(record, flow_versions(compiled, "customer_onboarding"))
    assert "sanctions_match_score" in found.unavailable and "sanctions_match_score" not in found.derived
    assert found.problem == ""
