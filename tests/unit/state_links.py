"""The shared-links scenario every state store must count the same way (tests/unit/test_state_links.py,
tests/integration/test_state_redis.py)."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from engine.policy.loader import load_policies
from engine.runtime.service import Decider

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_800_000_000.0
PAYMENT = {
    "amount": 20.0, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE", "card_country": "DE",
    "card_present": True, "entry_mode": "chip", "hour": 14, "card_number": "4111111111111111", "account_age_days": 400,
}
# (customer, device, seconds after T0, linked_customers_7d expected): A and B share D1, B and C share
# D2, A alone on D3. Two hops (A to C through B) do not count; the request's own device does.
STEPS = [
    ("A", "D1", 0, 0),  # nobody else on D1 yet
    ("B", "D1", 1, 1),  # its own device now: A used D1
    ("B", "D2", 2, 1),  # D1 (A) from its history, nobody yet on D2
    ("C", "D2", 3, 1),  # B on D2
    ("A", "D3", 4, 1),  # B through D1; not C (two hops)
    ("B", "D9", 5, 2),  # A through D1, C through D2
    ("B", "D9", 7 * 86400 + 10, 0),  # a week later: every link has left the window
]


def run_steps(store: Any) -> list[int]:
    """linked_customers_7d of each of ``STEPS`` decided in order through ``store`` (fresh ids per run)."""
    decider = Decider(load_policies(ROOT), state=store)
    run = uuid.uuid4().hex[:8]
    got = []
    for customer, device, dt, _ in STEPS:
        data = {**PAYMENT, "customer_id": f"{customer}-{run}", "device_id": f"{device}-{run}", "event_time": T0 + dt}
        got.append(decider.decide("card_payment", data, version="2").state["linked_customers_7d"])
    return got


EXPECTED = [want for *_, want in STEPS]
