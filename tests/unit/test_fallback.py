"""Latency budgets and declared fallbacks (engine.runtime.fallback): a slow or failing step is flagged, never a silent APPROVE."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import CancelledError
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import grpc
import pytest

from engine.audit.record import decision_from_record, decision_payload
from engine.errors import DeadlineExceeded, StepFailed, StepTimedOut
from engine.grpc.convert import decision_to_response
from engine.grpc.encoder import ResponseEncoder
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.status import status_for
from engine.policy.loader import load, load_policies
from engine.runtime.fallback import STEPS, Budget, Budgets, StepGuard, StepMissed
from engine.runtime.service import Decider
from engine.runtime.step_pool import StepCall, WorkerPool
from engine.types import Action

from .policy_roots import flows_copy

PROJECT = Path(__file__).resolve().parents[2]
# data/card_payments.csv line 2: an everyday chip payment version 1 approves (its policy tests); these tests
# pin version 1: its inputs carry the counters and it declares the budgets (a stateful flow runs unbudgeted)
PAYMENT = {
    "amount": 7.94, "currency": "EUR", "merchant_category": "grocery", "merchant_country": "DE", "card_country": "DE",
    "card_present": True, "entry_mode": "chip", "hour": 16, "customer_id": "C000747", "device_id": "D0007470",
    "account_age_days": 2058, "txn_count_1h": 0, "txn_count_24h": 4, "amount_avg_30d": 41.04, "new_device": False,
    "distance_from_home_km": 7.1,
}  # fmt: skip
# data/card_payments.csv line 312: a failed CVV check, declined by rule FR-001 whatever the score
CVV_FAIL = {
    "amount": 63.66, "currency": "EUR", "merchant_category": "gambling", "merchant_country": "DE", "card_country": "DE",
    "ip_country": "US", "card_present": False, "entry_mode": "ecommerce", "hour": 11, "customer_id": "C004060",
    "device_id": "D0040602", "account_age_days": 1231, "txn_count_1h": 1, "txn_count_24h": 4, "amount_avg_30d": 11.2,
    "new_device": False, "cvv_match": False,
}  # fmt: skip
NO_SCORE_RULE = """\
ruleset: fraud.no_score
description: What card_payment does when the fraud model gave no score (a rules_only fallback).
rules:
  - id: FS-NULL
    when: is_null(fraud_score)
    action: REVIEW
    reason: MODEL_UNAVAILABLE
    priority: 10
"""


def card_root(tmp: Path, budgets: str, *, no_score_rule: bool = False) -> Path:
    """A policy root with the bundled card_payment flow whose budgets: block is ``budgets``."""
    root = flows_copy(tmp, ("card_payment",))
    flow = root / "policies" / "card_payment" / "1" / "flow.yaml"
    text = flow.read_text()
    text = text[: text.index("\nbudgets:")] + "\nbudgets:\n" + budgets
    if no_score_rule:
        (root / "rules" / "fraud" / "no_score.yaml").write_text(NO_SCORE_RULE)
        text = text.replace("  - fraud.score\n", "  - fraud.score\n  - fraud.no_score\n")
    flow.write_text(text)
    return root


def slow_model(decider: Decider, seconds: float = 0.0, error: Exception | None = None) -> threading.Event:
    """Make card_payment's model sleep ``seconds`` (or raise ``error``); the event is set when a late call ends."""
    done = threading.Event()
    model = decider.policies.flows["card_payment"].versions["1"].models[0].model
    score = model.score

    def slow(x):
        if error is not None:
            raise error
        time.sleep(seconds)
        done.set()
        return score(x)

    model.score = slow  # type: ignore[method-assign]
    return done


class Sink:
    """Keeps every decision the Decider logs."""

    def __init__(self) -> None:
        self.decisions = []

    def record(self, decision, raw_input, *, masker, delivery: str = "") -> None:
        self.decisions.append(decision)


def test_every_step_the_flow_runs_is_registered():
    """The budgetable steps are the closed set docs/fallbacks.md lists; only model scores and the state store
    allow rules_only, and only they are preempted."""
    assert set(STEPS) == {"validate", "screening", "features", "score", "state", "rules", "explain"}
    assert [s.name for s in STEPS.values() if s.skippable] == ["score", "state"]
    assert [s.name for s in STEPS.values() if s.preempt] == ["score", "state"]


def test_a_slow_model_gives_the_flagged_review_within_the_budget(tmp_path):
    """A model slower than its 50 ms budget: REVIEW/MODEL_UNAVAILABLE flagged as a fallback, answered near 50 ms."""
    decider = Decider(load_policies(card_root(tmp_path, "  score: {budget_ms: 50, on_miss: action, action: REVIEW, reason: MODEL_UNAVAILABLE}\n")))
    slow_model(decider, 0.5)
    start = time.monotonic()
    decision = decider.decide("card_payment", PAYMENT, version="1")
    took = time.monotonic() - start
    decider.close()
    assert decision.action is Action.REVIEW
    assert [r.code for r in decision.reasons] == ["MODEL_UNAVAILABLE"]
    assert decision.reasons[0].source == "fallback"
    assert [(f.step, f.reason, f.mode) for f in decision.outcome.fallbacks] == [("score.card_fraud", "budget", "action")]
    assert 0.05 <= took < 0.4  # the model's 0.5 s is not waited for
    assert decider.metrics.get("verdict_fallbacks", flow="card_payment", version="1", step="score.card_fraud", reason="budget") == 1


def test_a_fixed_action_fallback_adds_nothing_to_the_drift_windows(tmp_path):
    """A fallback REVIEW (no feature values) is not fed to drift monitoring: it would count every input as missing."""
    decider = Decider(load_policies(card_root(tmp_path, "  rules: {budget_ms: 0.001, on_miss: action, action: REVIEW, reason: MODEL_UNAVAILABLE}\n")))
    decision = decider.decide("card_payment", PAYMENT, version="1")
    stability = decider.drift.refresh()
    decider.close()
    assert decision.outcome.fallbacks and decision.outcome.fallbacks[0].step == "rules"
    assert "fraud_score" in decision.outcome.scores  # scored before the rules missed their budget
    assert all(s["n"] == 0 for s in stability.values())


def test_a_fast_model_is_unaffected_by_its_budget(tmp_path):
    """Within budget the decision equals the one without budgets and is not flagged."""
    root = card_root(tmp_path, "  score: {budget_ms: 5000, on_miss: action, action: REVIEW, reason: MODEL_UNAVAILABLE}\n")
    decider = Decider(load_policies(root))
    decision = decider.decide("card_payment", PAYMENT, version="1")
    plain = decider.policies.flows["card_payment"].versions["1"].evaluate(PAYMENT)
    decider.close()
    assert decision.outcome.fallbacks == ()
    assert decision.action is plain.action is Action.APPROVE
    assert decision.outcome.scores == plain.scores


def test_rules_only_decides_with_the_score_missing(tmp_path):
    """rules_only: the score is missing, the rule testing is_null(score) fires, and the hard rules still decline."""
    root = card_root(tmp_path, "  score: {budget_ms: 20, on_miss: rules_only}\n", no_score_rule=True)
    decider = Decider(load_policies(root))
    slow_model(decider, 0.3)
    review = decider.decide("card_payment", PAYMENT, version="1")
    decline = decider.decide("card_payment", CVV_FAIL, version="1")
    decider.close()
    assert review.action is Action.REVIEW and [r.code for r in review.reasons] == ["MODEL_UNAVAILABLE"]
    assert "fraud_score" not in review.outcome.scores
    assert review.outcome.fallbacks[0].mode == "rules_only"
    assert decline.action is Action.DECLINE and "CVV_MISMATCH" in [r.code for r in decline.reasons]
    assert all(r.source == "rule" for r in decline.reasons)  # no model reasons without a score


def test_a_failing_model_takes_the_fallback_with_reason_error(tmp_path):
    """A model that raises takes the declared fallback (reason error) instead of answering INTERNAL."""
    root = card_root(tmp_path, "  score: {budget_ms: 50, on_miss: action, action: DECLINE, reason: MODEL_UNAVAILABLE}\n")
    decider = Decider(load_policies(root))
    slow_model(decider, error=RuntimeError("onnxruntime: broken graph"))
    decision = decider.decide("card_payment", PAYMENT, version="1")
    decider.close()
    assert decision.action is Action.DECLINE
    assert decision.outcome.fallbacks[0].reason == "error"


def test_error_fallbacks_answer_deadline_exceeded_or_unavailable(tmp_path):
    """on_miss: error gives DEADLINE_EXCEEDED for a missed budget and UNAVAILABLE for a failure; never UNKNOWN."""
    root = card_root(tmp_path, "  score: {budget_ms: 20, on_miss: error}\n")
    decider = Decider(load_policies(root), sink=(sink := Sink()))
    slow_model(decider, 0.2)
    with pytest.raises(StepTimedOut) as timed_out:
        decider.decide("card_payment", PAYMENT, version="1")
    slow_model(decider, error=ValueError("bad"))
    with pytest.raises(StepFailed) as failed:
        decider.decide("card_payment", PAYMENT, version="1")
    decider.close()
    assert status_for(timed_out.value)[0] is grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_for(failed.value)[0] is grpc.StatusCode.UNAVAILABLE
    assert "score.card_fraud" in str(timed_out.value) and "20 ms" in str(timed_out.value)
    assert sink.decisions == []  # nothing decided, nothing logged
    counted = decider.metrics.get("verdict_fallbacks", flow="card_payment", version="1", step="score.card_fraud", reason="budget")
    assert counted == 1


def test_the_callers_deadline_wins_over_a_longer_budget(tmp_path):
    """When the caller's deadline ends before the budget, the call is DEADLINE_EXCEEDED, not a fallback decision."""
    root = card_root(tmp_path, "  score: {budget_ms: 1000, on_miss: action, action: REVIEW, reason: MODEL_UNAVAILABLE}\n")
    decider = Decider(load_policies(root), sink=(sink := Sink()))
    slow_model(decider, 0.3)
    start = time.monotonic()
    with pytest.raises(DeadlineExceeded) as caught:
        decider.decide("card_payment", PAYMENT, version="1", deadline=time.monotonic() + 0.03)
    decider.close()
    assert time.monotonic() - start < 0.25
    assert not isinstance(caught.value, StepTimedOut)
    assert sink.decisions == []


def test_busy_workers_are_waited_for_within_the_budget_only():
    """With every worker held by a stuck call, the next preempted step waits for one within its budget,
    then misses with reason busy; a worker freed in time is used."""
    pool = WorkerPool(1)
    budget = Budget("score", 0.2, "action", Action.REVIEW, "X", "x", preempt=True)
    guard = StepGuard(Budgets({"score": budget}), pool)
    release = threading.Event()
    stuck = pool.try_submit(release.wait)
    start = time.monotonic()
    with pytest.raises(StepMissed) as missed:
        guard.run("score.m", lambda: 1.0)
    assert missed.value.reason == "busy" and 0.2 <= time.monotonic() - start < 0.6
    threading.Timer(0.05, release.set).start()  # freed within the next call's budget
    assert guard.run("score.m", lambda: 3.0) == 3.0
    release.set()
    stuck.result(timeout=5)
    assert guard.run("score.m", lambda: 2.0) == 2.0  # the worker is free again
    pool.close()


def test_boundary_checked_steps_discard_a_late_result():
    """A step that is not preempted runs to its end, and its result is discarded when it overran."""
    clock = iter([0.0, 0.011]).__next__
    guard = StepGuard(Budgets({"rules": Budget("rules", 0.010, "error")}), WorkerPool(1), clock=clock)
    with pytest.raises(StepMissed) as missed:
        guard.run("rules", lambda: [1])
    assert missed.value.reason == "budget"
    assert isinstance(missed.value.as_error(), StepTimedOut)


def test_invalid_input_is_the_callers_error_not_a_fallback(tmp_path):
    """A budget on validate never turns bad input into a fallback: InvalidInput still names the fields."""
    root = card_root(tmp_path, "  validate: {budget_ms: 50, on_miss: action, action: REVIEW, reason: MODEL_UNAVAILABLE}\n")
    decider = Decider(load_policies(root))
    from engine.errors import InvalidInput

    with pytest.raises(InvalidInput, match="amount"):
        decider.decide("card_payment", {**PAYMENT, "amount": -1}, version="1")
    decider.close()


def test_the_response_and_the_log_say_fallback(tmp_path):
    """A fallback decision carries fallback/fallback_step/fallback_reason on the wire (fast and reference
    encoders agree) and a fallback entry in its log record that reads back."""
    decider = Decider(load_policies(card_root(tmp_path, "  score: {budget_ms: 10, on_miss: action, action: REVIEW, reason: MODEL_UNAVAILABLE}\n")))
    slow_model(decider, 0.2)
    decision = decider.decide("card_payment", PAYMENT, version="1")
    decider.close()
    fast = pb.DecideResponse.FromString(ResponseEncoder().encode(decision))
    assert fast == decision_to_response(decision)
    assert (fast.fallback, fast.fallback_step, fast.fallback_reason) == (True, "score.card_fraud", "budget")
    import json

    record = json.loads(decision_payload(decision, {}, [], ts=0.0))
    assert record["fallback"] == [{"step": "score.card_fraud", "reason": "budget", "mode": "action"}]
    assert decision_from_record(record).outcome.fallbacks == decision.outcome.fallbacks


def test_an_unflagged_decision_has_no_fallback_fields(tmp_path):
    """Without a fallback the response leaves the fields unset and the record has no fallback key."""
    decider = Decider(load_policies(card_root(tmp_path, "  score: {budget_ms: 5000, on_miss: error}\n")))
    decision = decider.decide("card_payment", PAYMENT, version="1")
    decider.close()
    assert decision_to_response(decision).fallback is False
    assert b'"fallback"' not in decision_payload(decision, {}, [], ts=0.0)


@pytest.mark.parametrize(
    ("budgets", "message"),
    [
        ("  score: {budget_ms: 50, on_miss: action, action: APPROVE, reason: MODEL_UNAVAILABLE}\n", "a fallback never approves"),
        ("  screening: {budget_ms: 50, on_miss: rules_only}\n", "rules_only applies to steps the rules can do without"),
        ("  scoring: {budget_ms: 50, on_miss: error}\n", "unknown step 'scoring'"),
        ("  score.other_model: {budget_ms: 50, on_miss: error}\n", "unknown step 'score.other_model'"),
        ("  score: {budget_ms: 50, on_miss: action, action: REVIEW}\n", "needs both 'action'"),
        ("  score: {budget_ms: 50, on_miss: action, action: REVIEW, reason: NOT_A_CODE}\n", "NOT_A_CODE is not in the flow's reasons"),
        ("  score: {budget_ms: 0, on_miss: error}\n", "must be more than 0"),
    ],
)
def test_lint_refuses_bad_budgets(tmp_path, budgets, message):
    """Each kind of bad budget is an error naming the file, its line and what is wrong; the version is not loaded."""
    root = card_root(tmp_path, budgets)
    result = load(root)
    errors = [p for p in result.problems if p.severity == "error"]
    assert errors and all(p.path.endswith("card_payment/1/flow.yaml") for p in errors)
    assert any(re.search(re.escape(message), p.message) for p in errors), [p.message for p in errors]
    lines = (root / "policies" / "card_payment" / "1" / "flow.yaml").read_text().splitlines()
    assert all(p.line and lines[p.line - 1].startswith(budgets.split(":")[0]) for p in errors), [(p.line, p.message) for p in errors]
    assert result.policies is None or "card_payment" not in result.policies.flows


def test_every_bad_budget_is_reported_at_once(tmp_path):
    """Three bad entries: three problems, each at its own line (policy owners fix them in one pass)."""
    budgets = ("  scoring: {budget_ms: 50, on_miss: error}\n"
               "  rules: {budget_ms: 50, on_miss: rules_only}\n"
               "  score: {budget_ms: 50, on_miss: action, action: REVIEW, reason: NOT_A_CODE}\n")
    problems = [p for p in load(card_root(tmp_path, budgets)).problems if p.severity == "error"]
    assert sorted(p.code for p in problems) == ["rules_only_not_allowed", "unknown_reason", "unknown_step"]
    assert len({p.line for p in problems}) == 3


def test_slow_screening_sends_the_applicant_to_manual_review():
    """The bundled customer_onboarding 1: screening over its 100 ms budget gives REVIEW/SCREENING_UNAVAILABLE,
    flagged; screening is never skipped (its results are discarded, not approved without)."""
    decider = Decider(load_policies(PROJECT))
    compiled = decider.policies.flows["customer_onboarding"].versions["1"]
    screens = compiled.screens

    class Slow:
        """A screening step that takes 150 ms before screening as the real one does."""

        def __init__(self, real):
            self.real, self.score_name = real, real.score_name

        def apply(self, values):
            time.sleep(0.15)
            return self.real.apply(values)

    compiled.screens = tuple(Slow(s) for s in screens)
    applicant = {"full_name": "Anna Schmidt", "date_of_birth": "1990-01-01", "age": 36, "nationality": "de",
                 "residence_country": "DE", "document_type": "passport"}
    try:
        decision = decider.decide("customer_onboarding", applicant)
    finally:
        compiled.screens = screens
    normal = decider.decide("customer_onboarding", applicant)
    decider.close()
    assert decision.action is Action.REVIEW and [r.code for r in decision.reasons] == ["SCREENING_UNAVAILABLE"]
    assert decision.outcome.fallbacks[0].step == "screening" and decision.outcome.fallbacks[0].reason == "budget"
    assert normal.action is Action.APPROVE and not normal.outcome.fallbacks


def test_a_replay_does_not_count_a_logged_fallback_as_a_failure_to_reproduce(tmp_path):
    """Replaying with the version that decided: a fallback decision is counted apart, the others must reproduce."""
    import json

    from engine.audit.replay import replay

    # a budget no loaded machine misses for a 0.1 ms model, and a model far beyond it
    decider = Decider(load_policies(card_root(tmp_path, "  score: {budget_ms: 500, on_miss: action, action: REVIEW, reason: MODEL_UNAVAILABLE}\n")))
    model = decider.policies.flows["card_payment"].versions["1"].models[0].model
    normal = decider.decide("card_payment", PAYMENT, version="1")
    slow_model(decider, 1.5)
    fallen = decider.decide("card_payment", PAYMENT, version="1")
    del model.score
    compiled = decider.policies.flows["card_payment"].versions["1"]
    decider.close()
    records = [json.loads(decision_payload(d, PAYMENT, [], ts=0.0)) for d in (normal, fallen)]
    report = replay(records, compiled)
    assert (report.same_version, report.same_version_differs, report.same_version_fallbacks) == (1, 0, 1)
    assert report.as_dict()["reproduction"]["fallbacks_left_out"] == 1


def test_lint_warns_when_rules_only_would_approve_a_request_without_its_score(tmp_path):
    """rules_only with an APPROVE default and no is_null(score) rule: a rules_only_unguarded warning at budgets:;
    with the is_null rule, none."""
    from engine.policy.lint import lint

    budgets = "  score: {budget_ms: 20, on_miss: rules_only}\n"
    bare = [p for p in lint(card_root(tmp_path / "a", budgets)).problems if p.code == "rules_only_unguarded"]
    guarded = [p for p in lint(card_root(tmp_path / "b", budgets, no_score_rule=True)).problems if p.code == "rules_only_unguarded"]
    assert len(bare) == 1 and bare[0].severity == "warning" and "is_null(fraud_score)" in bare[0].message
    assert bare[0].path.endswith("card_payment/1/flow.yaml") and bare[0].line
    assert guarded == []


def test_step_call_returns_raises_and_times_out():
    """A step worker's call gives its result, re-raises its exception, and times out while it runs."""
    pool = WorkerPool(2)
    assert pool.try_submit(lambda a, b: a + b, 2, 3).result(timeout=5) == 5
    failing = pool.try_submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        failing.result(timeout=5)
    release = threading.Event()
    slow = pool.try_submit(release.wait)
    with pytest.raises(FutureTimeout):
        slow.result(timeout=0.01)
    release.set()
    assert slow.result(timeout=5) is True
    pool.close()


def test_step_call_callbacks_run_once_whenever_added():
    """A done callback added before the end runs when the call ends; one added after runs at once."""
    pool = WorkerPool(1)
    release = threading.Event()
    call = pool.try_submit(release.wait)
    seen: list[str] = []
    call.add_done_callback(lambda _c: seen.append("before"))
    assert seen == []
    release.set()
    call.result(timeout=5)
    deadline = time.monotonic() + 5
    while seen != ["before"] and time.monotonic() < deadline:  # the worker runs it just after the result
        time.sleep(0.001)
    call.add_done_callback(lambda _c: seen.append("after"))
    assert seen == ["before", "after"]
    pool.close()


def test_a_call_cancelled_before_it_starts_never_runs_and_frees_its_worker():
    """Cancelling a queued call stops it; its result raises CancelledError; the worker serves the next call."""
    ran: list[int] = []
    queued = StepCall(lambda: ran.append(1), ())
    assert queued.cancel() is True
    queued.run()  # what the worker does when it reaches it
    assert ran == []
    with pytest.raises(CancelledError):
        queued.result(timeout=1)
    pool = WorkerPool(1)
    assert pool.try_submit(lambda: 7).result(timeout=5) == 7
    started = pool.try_submit(time.sleep, 0.05)
    time.sleep(0.01)
    assert started.cancel() is False  # already running: it runs to its end
    started.result(timeout=5)
    pool.close()
    with pytest.raises(RuntimeError, match="closed"):
        pool.try_submit(lambda: 1)


def test_at_most_workers_calls_run_at_once():
    """The pool never runs more calls at once than it has workers; the next waits for a free one."""
    pool = WorkerPool(2)
    release = threading.Event()
    held = [pool.try_submit(release.wait) for _ in range(2)]
    assert all(h is not None for h in held)
    assert pool.try_submit(lambda: 1) is None  # no wait: refused at once
    threading.Timer(0.05, release.set).start()
    third = pool.try_submit(lambda: 3, wait=5)
    assert third is not None and third.result(timeout=5) == 3
    pool.close()


def test_close_ends_every_worker_thread_including_busy_ones():
    """After close, idle workers end at once and a worker busy at the time ends when its call does."""
    before = set(threading.enumerate())  # other tests' pools may still have workers
    pool = WorkerPool(3)
    release = threading.Event()
    busy = pool.try_submit(release.wait)
    for call in [pool.try_submit(lambda: 1) for _ in range(2)]:
        call.result(timeout=5)
    mine = [t for t in threading.enumerate() if t not in before and t.name.startswith("verdict-step_")]
    assert len(mine) == 3
    pool.close()
    release.set()
    busy.result(timeout=5)
    for t in mine:
        t.join(timeout=5)
    assert not [t.name for t in mine if t.is_alive()]
