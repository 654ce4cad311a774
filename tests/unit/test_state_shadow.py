"""Shadow versions of a stateful decision are evaluated on the features it read, and record nothing."""

from __future__ import annotations

from pathlib import Path

from engine.policy.loader import load_policies
from engine.runtime.service import Decider
from engine.state.store import MemoryStore

from .policy_roots import project_copy

T0 = 1_800_000_000.0
PAYMENT = {
    "amount": 20.0, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE", "card_country": "DE",
    "card_present": True, "entry_mode": "chip", "hour": 14, "customer_id": "C1", "device_id": "D1",
    "card_number": "4111111111111111", "account_age_days": 400,
}


def test_a_stateless_shadow_takes_the_counters_the_live_stateful_version_computed(tmp_path: Path):
    """Live v2 with v1 in shadow: v1 gets v2's computed txn_count_1h as its input field, so it declines the
    6th payment for VELOCITY too, with no shadow error; the shadows add no event to the history."""
    root = project_copy(tmp_path)
    (root / "policies/card_payment/routing.yaml").write_text('live: "2"\nshadow: ["1"]\n')
    now = [T0]
    decider = Decider(load_policies(root), state=MemoryStore(b"k" * 32), clock=lambda: now[0])
    for i in range(6):  # the server's clock: the request carries only fields version 1 has too
        now[0] = T0 + 60 * i
        decider.decide("card_payment", PAYMENT)
    assert decider.drain_shadows()
    m = decider.metrics
    assert m.get("shadow_errors", flow="card_payment", version="1") == 0
    assert m.get("shadow_decisions", flow="card_payment", version="1", action="DECLINE") == 1
    others = sum(m.get("shadow_decisions", flow="card_payment", version="1", action=a) for a in ("APPROVE", "REVIEW"))
    assert others == 5  # the first five: no VELOCITY (v1 derives no new_device from the history, so one may REVIEW)
    now[0] = T0 + 400
    assert decider.decide("card_payment", PAYMENT).state["txn_count_1h"] == 6
