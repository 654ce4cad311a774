"""A shadow version with the same input schema, derived features and models as the version that
decided reuses that decision's values and scores (CompiledFlow.evaluate_prepared): its outcome
must equal a full evaluation of the raw input."""

from pathlib import Path

from engine.policy.loader import load_policies
from engine.runtime.service import Decider

from .audit_helpers import card_payments, credit_applications
from .test_routing import ListSink, routed_root

ROOT = Path(__file__).resolve().parents[2]


def _same(a, b) -> bool:
    return (a.action, a.reasons, a.fired, dict(a.scores), dict(a.features)) == (b.action, b.reasons, b.fired, dict(b.scores), dict(b.features))


def test_versions_share_a_prepare_key_only_when_they_prepare_alike():
    policies = load_policies(ROOT)
    credit = policies.flows["credit_application"].versions
    card = policies.flows["card_payment"].versions["1"]
    assert credit["1"].prepare_key and credit["1"].prepare_key == credit["2"].prepare_key  # rules differ, preparation not
    assert card.prepare_key not in (credit["1"].prepare_key, "")


def test_prepared_evaluation_equals_full_evaluation_on_real_applications():
    """Version 2 on version 1's values == version 2 on the raw input, for 1,500 real applications
    (model-driven declines included: their model reasons are computed again from the values)."""
    credit = load_policies(ROOT).flows["credit_application"].versions
    v1, v2 = credit["1"], credit["2"]
    differ = model_driven = 0
    for raw in credit_applications(1500):
        full = v2.evaluate(raw)
        prepared = v2.evaluate_prepared(v1.evaluate(raw).features)
        assert _same(full, prepared), raw
        differ += v1.evaluate(raw).action != full.action
        model_driven += any(r.source == "model" for r in full.reasons)
    assert differ > 50 and model_driven > 100  # the check covered disagreements and model reasons


def test_the_card_flow_prepared_on_its_own_values_is_unchanged():
    card = load_policies(ROOT).flows["card_payment"].versions["1"]
    for raw in card_payments(500):
        assert _same(card.evaluate(raw), card.evaluate_prepared(card.evaluate(raw).features))


def test_shadows_use_prepared_values_only_when_the_keys_match(tmp_path, monkeypatch):
    """Same key: the shadow never validates the raw input again; different key: it does."""
    root = routed_root(tmp_path, 'live: "1"\nshadow: ["2"]\n', limit2=9000)
    policies = load_policies(root)
    versions = policies.flows["demo"].versions
    assert versions["1"].prepare_key == versions["2"].prepare_key
    calls = {"evaluate": 0, "prepared": 0}
    cls = type(versions["2"])
    evaluate, prepared = cls.evaluate, cls.evaluate_prepared

    def counting_evaluate(self, raw, expired=None, *, mark=None):
        if self.version == "2":
            calls["evaluate"] += 1
        return evaluate(self, raw, expired, mark=mark)

    def counting_prepared(self, features):
        calls["prepared"] += 1
        return prepared(self, features)

    monkeypatch.setattr(cls, "evaluate", counting_evaluate)
    monkeypatch.setattr(cls, "evaluate_prepared", counting_prepared)
    sink = ListSink()
    decider = Decider(policies, sink=sink)
    for i in range(50):
        decider.decide("demo", {"amount": 5000 + i, "age": 30, "income": 100})
    assert decider.drain_shadows()
    assert calls == {"evaluate": 0, "prepared": 50}
    assert all(d.action.name == "APPROVE" for d in sink.decisions if d.route == "shadow")  # version 2's own rules ran
    decider.close()

    flow2 = root / "policies/demo/2/flow.yaml"  # a different input schema: a different key
    flow2.write_text(flow2.read_text().replace("max_length: 64", "max_length: 63"))
    policies = load_policies(root)
    assert policies.flows["demo"].versions["1"].prepare_key != policies.flows["demo"].versions["2"].prepare_key
    decider = Decider(policies, sink=ListSink())
    decider.decide("demo", {"amount": 5000, "age": 30, "income": 100})
    assert decider.drain_shadows()
    assert calls["evaluate"] == 1
    decider.close()
