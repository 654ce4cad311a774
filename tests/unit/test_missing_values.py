"""A missing model input reaches the model as missing and is scored by a learned branch (issue 10, item 4).

Case missing-new-device-scored-as-false, copied into tests/data/missing_new_device/: a payment
without new_device scored exactly like new_device: false. Also: declared defaults, the lint
warnings for features a model never saw missing and categories it does not know, and models
without an explainer.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.models.runtime import load_model
from engine.policy.lint import lint
from engine.policy.loader import load
from engine.runtime.service import load_decider

from .policy_roots import project_copy

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "missing_new_device"


def _payment(which: str) -> dict:
    return json.loads((DATA / f"payment_new_device_{which}.json").read_text())


@pytest.fixture(scope="module")
def decider():
    """The bundled policies, loaded once."""
    return load_decider(ROOT)


def test_a_missing_new_device_is_not_scored_as_false(decider) -> None:
    """The case's three payments: missing new_device scores neither like false nor like true."""
    score = {w: decider.decide("card_payment", _payment(w), version="1").outcome.scores["fraud_score"] for w in ("false", "missing", "true")}
    assert score["false"] < score["missing"] < score["true"]
    assert score["missing"] - score["false"] > 0.05 and score["true"] - score["missing"] > 0.05


def test_a_missing_ip_country_is_not_scored_as_matching(decider) -> None:
    """A card-not-present payment without ip_country does not score like one whose IP country matches."""
    matching = _payment("false")
    missing = {k: v for k, v in matching.items() if k != "ip_country"}
    got = decider.decide("card_payment", missing, version="1").outcome
    assert got.features["ip_mismatch"] is None
    assert abs(got.scores["fraud_score"] - decider.decide("card_payment", matching, version="1").outcome.scores["fraud_score"]) > 1e-3


def test_the_fraud_model_learned_missing_branches() -> None:
    """card_fraud's card records missing training rows for every feature card_payment can send missing."""
    card = load_model(ROOT / "model_artifacts" / "card_fraud" / "1").card
    missing = {f.name: f.missing_in_training for f in card.features}
    for name in ("new_device", "ip_mismatch", "cvv_match", "distance_from_home_km", "amount_to_avg"):
        assert missing[name] and missing[name] > 0, name


def test_a_missing_feature_is_never_a_model_reason(decider) -> None:
    """The missing new_device raises the score but NEW_DEVICE ('a device not seen before') is not given; true gives it."""
    missing = decider.decide("card_payment", _payment("missing"), version="1").outcome
    assert missing.action.name == "REVIEW" and "ELEVATED_FRAUD_SCORE" in [r.code for r in missing.reasons]
    assert "NEW_DEVICE" not in [r.code for r in missing.reasons]
    assert "NEW_DEVICE" in [r.code for r in decider.decide("card_payment", _payment("true"), version="1").outcome.reasons]


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_a_declared_default_is_what_the_model_receives(tmp_path: Path) -> None:
    """With `default: false` on new_device, an absent value scores exactly like false."""
    root = project_copy(tmp_path)
    _edit(root / "policies/card_payment/1/flow.yaml",
          "new_device: {type: boolean, description:", "new_device: {type: boolean, default: false, description:")
    d = load_decider(root)
    absent = d.decide("card_payment", _payment("missing"), version="1").outcome
    assert absent.features["new_device"] is False
    assert absent.scores == d.decide("card_payment", _payment("false"), version="1").outcome.scores


@pytest.mark.parametrize(("spec", "message"), [
    ("{type: boolean, default: 0}", "true or false"),
    ("{type: boolean, required: true, default: false}", "required field cannot have a 'default'"),
    ("{type: number, min: 0, default: -1}", "outside min/max"),
    ("{type: category, values: [a, b], default: c}", "not one of the field's values"),
])
def test_a_default_that_does_not_fit_its_field_is_an_error(tmp_path: Path, spec: str, message: str) -> None:
    """A default of the wrong type, outside the range, not an allowed value, or on a required field is refused with its line."""
    root = project_copy(tmp_path)
    _edit(root / "policies/card_payment/1/flow.yaml",
          "new_device: {type: boolean, description: first time this device is seen for the customer}", f"new_device: {spec}")
    result = load(root)
    problems = [p for p in result.errors if p.path == "policies/card_payment/1/flow.yaml"]
    assert problems and message in problems[0].message and problems[0].line == 30


def test_lint_warns_when_a_flow_can_send_a_model_a_value_it_never_saw_missing(tmp_path: Path) -> None:
    """`records` made optional: credit_default never saw it missing, so lint warns with the flow's line and a hint."""
    root = project_copy(tmp_path)
    for lock in root.glob("policies/*/*/release.lock"):
        lock.unlink()
    _edit(root / "policies/credit_application/1/flow.yaml", "records: {type: boolean, required: true,", "records: {type: boolean,")
    report = lint(root)
    assert report.ok
    (warning,) = [p for p in report.warnings if p.code == "model_never_saw_missing"]
    assert (warning.path, warning.field) == ("policies/credit_application/1/flow.yaml", "records")
    assert warning.line == 17 and "as 0, i.e. false" in warning.message and "default" in (warning.hint or "")


def test_the_bundled_flows_feed_no_model_a_value_it_cannot_score() -> None:
    """Lint of the bundled root has no missing-value or unknown-category warning (card_fraud learned its gaps)."""
    codes = {p.code for p in lint(ROOT).problems}
    assert not codes & {"model_never_saw_missing", "model_unknown_category"}


def test_lint_reports_category_values_the_model_does_not_know(tmp_path: Path) -> None:
    """A `home` value the flow accepts but credit_default's card lacks is reported (it would be scored as missing)."""
    root = project_copy(tmp_path)
    for lock in root.glob("policies/*/*/release.lock"):
        lock.unlink()
    _edit(root / "policies/credit_application/1/flow.yaml", "values: [rent, owner, parents, priv, other, ignore]",
          "values: [rent, owner, parents, priv, other, ignore, boat, castle]")
    (warning,) = [p for p in lint(root).warnings if p.code == "model_unknown_category"]
    assert warning.field == "home" and "boat, castle" in warning.message and warning.line == 13
