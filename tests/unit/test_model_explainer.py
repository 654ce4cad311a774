"""A model without an explainer (account_anomaly) gives rule reasons only, never INTERNAL (issue 10, item 7)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.policy.lint import lint
from engine.policy.loader import load, load_policies
from engine.runtime.service import Decider

from .policy_roots import project_copy, write

ROOT = Path(__file__).resolve().parents[2]
PAYMENT = json.loads((ROOT / "tests/data/missing_new_device/payment_new_device_true.json").read_text())

ANOMALY_RULES = """\
ruleset: fraud.anomaly
rules:
  - id: AN-001
    when: anomaly_score >= 0.0
    action: REVIEW
    reason: UNUSUAL_PAYMENT
"""


def _with_anomaly_model(tmp_path: Path, reasons: str = "") -> Path:
    """The project with card_payment 1 also running account_anomaly, and a rule on its score."""
    root = project_copy(tmp_path)
    flow = root / "policies/card_payment/1/flow.yaml"
    text = flow.read_text()
    text = text.replace("\nrulesets:\n", f"  - name: account_anomaly\n    version: \"1\"\n    output: anomaly_score\n{reasons}\nrulesets:\n  - fraud.anomaly\n", 1)
    text = text.replace("reasons:\n  SANCTIONED_COUNTRY:", "reasons:\n  UNUSUAL_PAYMENT: Unusual payment for this account\n  SANCTIONED_COUNTRY:", 1)
    flow.write_text(text)
    write(root, "rules/fraud/anomaly.yaml", ANOMALY_RULES)
    registry = root / "model_artifacts/registry.yaml"  # a routed version may only run approved models
    registry.write_text(registry.read_text().replace(
        "    state: validated\n    owner: Head of Operational Risk",
        "    state: approved\n    approval: {by: Operational Risk Committee, at: 2026-11-25}\n    owner: Head of Operational Risk", 1))
    return root


def test_a_rule_on_a_model_without_explainer_gives_its_own_reason(tmp_path: Path) -> None:
    """The rule reading anomaly_score fires and the decision carries its reason; no model reasons, no error."""
    root = _with_anomaly_model(tmp_path)
    decider = Decider(load_policies(root))  # compiled as loaded: the rule fires on every payment, so the bundled policy tests would hold the flow back
    outcome = decider.decide("card_payment", PAYMENT, version="1").outcome
    assert "AN-001" in [f.id for f in outcome.fired]
    assert "UNUSUAL_PAYMENT" in [r.code for r in outcome.reasons]
    assert not [r for r in outcome.reasons if r.source == "model" and r.rule_id == "AN-001"]
    assert not lint(root).errors


def test_mapping_reasons_for_a_model_without_explainer_is_refused_at_load(tmp_path: Path) -> None:
    """A `reasons:` mapping on account_anomaly is an error with the flow file, line and a hint."""
    root = _with_anomaly_model(tmp_path, reasons="    reasons:\n      amount: UNUSUAL_PAYMENT")
    result = load(root)
    (problem,) = [p for p in result.errors if p.code == "model_has_no_explainer"]
    assert problem.path == "policies/card_payment/1/flow.yaml" and problem.line
    assert "account_anomaly" in problem.message and "remove 'reasons'" in (problem.hint or "")
    assert not lint(root).ok
