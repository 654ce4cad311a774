"""The state store as a budgeted step (engine.runtime.fallback ``state``): a slow or dead store takes the
flow's declared fallback, flagged, and a transaction the request gave up on records nothing."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from engine.errors import StateUnavailable, StepFailed, StepTimedOut
from engine.policy.loader import load_policies
from engine.runtime.fallback import STEPS, Gate
from engine.runtime.service import Decider
from engine.state.sqlite import SqliteStore
from engine.state.store import MemoryStore
from engine.types import Action

from .policy_roots import flows_copy

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
# tests/unit/test_state_core.py's everyday payment, for card_payment version 2 (stateful features)
PAYMENT = {
    "amount": 20.0, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE", "card_country": "DE",
    "card_present": True, "entry_mode": "chip", "hour": 14, "customer_id": "C1", "device_id": "D1",
    "card_number": "4111111111111111", "account_age_days": 400,
}  # fmt: skip
REVIEW_ON_STATE = "  state: {budget_ms: 50, on_miss: action, action: REVIEW, reason: VELOCITY}\n"


def v2_root(tmp: Path, budgets: str) -> Path:
    """A policy root with the bundled card_payment flow whose version 2 has the ``budgets:`` block ``budgets``."""
    root = flows_copy(tmp, ("card_payment",))
    flow = root / "policies" / "card_payment" / "2" / "flow.yaml"
    text = flow.read_text()
    if "\nbudgets:" in text:
        text = text[: text.index("\nbudgets:")] + "\n"
    flow.write_text(text + "budgets:\n" + budgets)
    return root


class SlowStore(MemoryStore):
    """A memory store whose transactions wait ``delay`` seconds for the series (a held lock, a slow
    network) or raise ``error``; ``ended`` is set when a transaction returns or raises. Not ``inline``: it
    waits outside its lock, as a remote store does, so a budget runs it on a step worker."""

    inline = False

    def __init__(self, delay: float = 0.0, error: Exception | None = None) -> None:
        super().__init__(b"k" * 32)
        self.delay = delay
        self.error = error
        self.ended = threading.Event()

    def transact(self, slots, step, expand=None, intent=None):  # type: ignore[no-untyped-def]
        try:
            if self.error is not None:
                raise self.error
            time.sleep(self.delay)
            return super().transact(slots, step, expand, intent)
        finally:
            self.ended.set()


def decide(decider: Decider, i: int = 0):  # type: ignore[no-untyped-def]
    return decider.decide("card_payment", {**PAYMENT, "event_time": T0 + i}, version="2")


def test_state_is_a_skippable_preempted_step():
    """``state`` is registered, allows rules_only and is preempted like the model scores."""
    assert STEPS["state"].skippable and STEPS["state"].preempt


def test_the_gate_lets_exactly_one_side_win():
    """Abandon before enter: the transaction must roll back; enter before abandon: the request waits for it."""
    first = Gate()
    assert first.abandon() and not first.enter()
    second = Gate()
    assert second.enter() and not second.abandon() and second.ready.is_set()


def test_a_slow_store_gives_the_flagged_fixed_action_within_the_budget_and_records_nothing(tmp_path):
    """A store 0.5 s slow against a 50 ms budget: REVIEW/VELOCITY flagged state/budget near 50 ms, counted in
    verdict_fallbacks_total, and the late transaction, once it gets its series, records nothing."""
    store = SlowStore(delay=0.5)
    decider = Decider(load_policies(v2_root(tmp_path, REVIEW_ON_STATE)), state=store)
    start = time.monotonic()
    decision = decide(decider)
    took = time.monotonic() - start
    assert decision.action is Action.REVIEW and [r.code for r in decision.reasons] == ["VELOCITY"]
    assert decision.reasons[0].source == "fallback"
    assert [(f.step, f.reason, f.mode) for f in decision.outcome.fallbacks] == [("state", "budget", "action")]
    assert 0.05 <= took < 0.4
    assert decider.metrics.get("verdict_fallbacks", flow="card_payment", version="2", step="state", reason="budget") == 1
    assert store.ended.wait(5)
    time.sleep(0.05)
    assert len(store) == 0  # the abandoned transaction rolled back
    store.delay = 0.0
    assert decide(decider, 1).state["txn_count_1h"] == 0
    decider.close()


def test_a_dead_store_takes_the_fallback_at_once_with_reason_error(tmp_path):
    """A store that fails (StateUnavailable) gives the flagged REVIEW with reason error, without waiting the budget."""
    decider = Decider(load_policies(v2_root(tmp_path, "  state: {budget_ms: 2000, on_miss: action, action: REVIEW, reason: VELOCITY}\n")),
                      state=SlowStore(error=StateUnavailable("Redis does not answer")))
    start = time.monotonic()
    decision = decide(decider)
    assert time.monotonic() - start < 1.0
    assert decision.action is Action.REVIEW
    assert [(f.step, f.reason) for f in decision.outcome.fallbacks] == [("state", "error")]
    assert decider.metrics.get("verdict_fallbacks", flow="card_payment", version="2", step="state", reason="error") == 1
    decider.close()


def test_error_fallbacks_answer_deadline_exceeded_or_unavailable(tmp_path):
    """on_miss: error answers StepTimedOut (DEADLINE_EXCEEDED) for a slow store and StepFailed (UNAVAILABLE)
    for a dead one; both count in verdict_fallbacks_total."""
    root = v2_root(tmp_path, "  state: {budget_ms: 30, on_miss: error}\n")
    slow = Decider(load_policies(root), state=SlowStore(delay=0.3))
    with pytest.raises(StepTimedOut):
        decide(slow)
    assert slow.metrics.get("verdict_fallbacks", flow="card_payment", version="2", step="state", reason="budget") == 1
    slow.close()
    dead = Decider(load_policies(root), state=SlowStore(error=StateUnavailable("locked")))
    with pytest.raises(StepFailed):
        decide(dead)
    assert dead.metrics.get("verdict_fallbacks", flow="card_payment", version="2", step="state", reason="error") == 1
    dead.close()


def test_rules_only_decides_with_every_stateful_feature_missing_and_records_nothing(tmp_path):
    """rules_only: the decision is flagged state/rules_only, every stateful feature is None (logged so), and
    the store never records it."""
    store = SlowStore(delay=0.3)
    decider = Decider(load_policies(v2_root(tmp_path, "  state: {budget_ms: 30, on_miss: rules_only}\n")), state=store)
    decision = decide(decider)
    assert [(f.step, f.reason, f.mode) for f in decision.outcome.fallbacks] == [("state", "budget", "rules_only")]
    assert decision.state and set(decision.state.values()) == {None}
    assert decision.outcome.features["txn_count_1h"] is None
    assert store.ended.wait(5)
    time.sleep(0.05)
    assert len(store) == 0
    decider.close()


def test_a_transaction_that_read_in_time_is_awaited_and_recorded_once(tmp_path):
    """A store that answers within the budget but a model slower than it: the decision is the evaluated
    one (no fallback) and the store counts it exactly once."""
    store = MemoryStore(b"k" * 32)
    decider = Decider(load_policies(v2_root(tmp_path, "  state: {budget_ms: 20, on_miss: error}\n")), state=store)
    model = decider.policies.flows["card_payment"].versions["2"].models[0].model
    score = model.score

    def slow(x):  # type: ignore[no-untyped-def]
        time.sleep(0.1)
        return score(x)

    model.score = slow  # type: ignore[method-assign]
    first = decide(decider)
    assert not first.outcome.fallbacks and first.state["txn_count_1h"] == 0
    assert decide(decider, 1).state["txn_count_1h"] == 1
    decider.close()


def test_a_state_file_held_locked_takes_the_fallback_within_the_budget(tmp_path):
    """Another connection holding SQLite's write lock: the flagged REVIEW near the 50 ms budget (not the 10 s
    busy timeout), and once the lock is released the history holds nothing of the abandoned decision."""
    store = SqliteStore(tmp_path / "s.db", busy_ms=1000)
    decider = Decider(load_policies(v2_root(tmp_path, REVIEW_ON_STATE)), state=store)
    holder = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    start = time.monotonic()
    decision = decide(decider)
    took = time.monotonic() - start
    holder.execute("ROLLBACK")
    assert decision.action is Action.REVIEW and [(f.step, f.reason) for f in decision.outcome.fallbacks] == [("state", "budget")]
    assert took < 0.5
    time.sleep(0.1)  # the abandoned transaction takes the lock and rolls back
    assert decide(decider, 1).state["txn_count_1h"] == 0
    decider.close()


def test_a_lazy_redis_store_starts_without_redis_and_fails_each_use_until_it_answers():
    """RedisStore(lazy=True) on a port nothing listens on: built, says why in ``unreachable``, and reading
    its salt (every transaction does) raises StateUnavailable naming the address."""
    from engine.state.redis_store import RedisStore

    store = RedisStore("redis://127.0.0.1:1/0", lazy=True)
    assert "127.0.0.1:1" in store.unreachable
    with pytest.raises(StateUnavailable, match=r"127\.0\.0\.1:1\b"):
        store.salt  # noqa: B018
    store.close()


NO_STATE_RULE = """\
ruleset: fraud.no_state
description: What card_payment 2 does when it decided without its state store (a rules_only fallback).
rules:
  - id: ST-NULL
    when: is_null(txn_count_1h)
    action: REVIEW
    reason: VELOCITY
    priority: 10
"""


def guarded_root(tmp: Path) -> Path:
    """v2_root with state rules_only and the ST-NULL rule applied by version 2."""
    root = v2_root(tmp, "  state: {budget_ms: 30, on_miss: rules_only}\n")
    (root / "rules" / "fraud" / "no_state.yaml").write_text(NO_STATE_RULE)
    flow = root / "policies" / "card_payment" / "2" / "flow.yaml"
    flow.write_text(flow.read_text().replace("  - fraud.score\n", "  - fraud.score\n  - fraud.no_state\n", 1))
    return root


def test_an_is_null_rule_catches_a_decision_without_the_store(tmp_path):
    """rules_only with a rule on is_null(txn_count_1h): the store-less decision is REVIEW by ST-NULL, flagged."""
    decider = Decider(load_policies(guarded_root(tmp_path)), state=SlowStore(error=StateUnavailable("down")))
    decision = decide(decider)
    decider.close()
    assert decision.action is Action.REVIEW and "ST-NULL" in [f.id for f in decision.outcome.fired]
    assert [(f.step, f.reason, f.mode) for f in decision.outcome.fallbacks] == [("state", "error", "rules_only")]


def test_lint_warns_when_state_rules_only_would_approve_without_the_store(tmp_path):
    """A state rules_only budget with no is_null rule on a stateful feature: rules_only_unguarded at budgets:;
    with the ST-NULL rule, none."""
    from engine.policy.lint import lint

    bare = [p for p in lint(v2_root(tmp_path / "a", "  state: {budget_ms: 30, on_miss: rules_only}\n")).problems
            if p.code == "rules_only_unguarded"]
    guarded = [p for p in lint(guarded_root(tmp_path / "b")).problems if p.code == "rules_only_unguarded"]
    assert len(bare) == 1 and "state" in bare[0].message and bare[0].path.endswith("card_payment/2/flow.yaml")
    assert guarded == []
