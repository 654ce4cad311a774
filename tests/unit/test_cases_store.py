"""The case store on SQLite and PostgreSQL: opening is idempotent, transitions are checked,
dispositions stream in commit order from a cursor, links find earlier cases, outcomes de-duplicate."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from engine.cases import (
    CaseNotFound,
    CaseQuery,
    CaseState,
    Disposition,
    IllegalTransition,
    OutcomeKind,
    OutcomeLabel,
    Priority,
    ReviewConfig,
    case_from_record,
    open_store,
)
from engine.cases.config import QueueConfig, parse_review
from engine.errors import PolicyError

from .cases_helpers import T0, review_record, store  # noqa: F401 - the fixture

CONFIG = ReviewConfig({})


def _open(store, *ids: str, customer: str = "C-1", start: float = T0) -> None:  # noqa: F811
    cases = [case_from_record(review_record(i, ts=start + n, customer=customer), CONFIG) for n, i in enumerate(ids)]
    store.open_cases([c for c in cases if c is not None])


def test_open_is_idempotent_and_keeps_the_masked_record(store) -> None:  # noqa: F811
    """Opening the same decision twice leaves one case, holding the record as logged (masked card)."""
    _open(store, "d1")
    _open(store, "d1")
    cases = store.list_cases()
    assert [c.case_id for c in cases] == ["d1"]
    case = store.get("d1")
    assert case.state is CaseState.OPEN
    assert case.record["input"]["card_number"] == "411111******1111"
    assert case.record["reasons"][1]["contribution"] == 0.12
    assert case.due_at - case.opened_at == 4 * 3600  # the default SLA of a normal priority


def test_claim_then_decide_then_refuse_a_second_decision(store) -> None:  # noqa: F811
    """open → assigned → decided; deciding again or claiming a decided case is refused with the state named."""
    _open(store, "d1")
    assert store.claim("d1", "ana", now=T0 + 10).state is CaseState.ASSIGNED
    decided = store.decide("d1", Disposition.DECLINE, "fraud ring", "ana", now=T0 + 20)
    assert (decided.state, decided.disposition, decided.decided_by, decided.note) == (CaseState.DECIDED, Disposition.DECLINE, "ana", "fraud ring")
    with pytest.raises(IllegalTransition, match="decided: cannot decide"):
        store.decide("d1", Disposition.APPROVE, "", "ana", now=T0 + 30)
    with pytest.raises(IllegalTransition, match="cannot claim"):
        store.claim("d1", "bob", now=T0 + 30)
    assert [s["step"] for s in store.steps("d1")] == ["opened", "claimed", "decided"]


def test_a_case_assigned_to_another_cannot_be_claimed_or_decided(store) -> None:  # noqa: F811
    """Only the assignee decides an assigned case; reassigning first makes it possible."""
    _open(store, "d1")
    store.claim("d1", "ana", now=T0)
    with pytest.raises(IllegalTransition, match="assigned to 'ana'"):
        store.decide("d1", Disposition.APPROVE, "", "bob", now=T0)
    store.assign("d1", "bob", "lead", now=T0)
    assert store.decide("d1", Disposition.APPROVE, "ok", "bob", now=T0).disposition is Disposition.APPROVE


def test_unknown_case_is_not_found(store) -> None:  # noqa: F811
    """Every call on an id that is not there raises CaseNotFound naming it."""
    with pytest.raises(CaseNotFound, match="nope"):
        store.get("nope")
    with pytest.raises(CaseNotFound):
        store.decide("nope", Disposition.APPROVE, "", "ana", now=T0)


def test_dispositions_stream_from_a_cursor(store) -> None:  # noqa: F811
    """Dispositions come back in decision order, each with a larger seq; `since` resumes after one."""
    _open(store, "d1", "d2", "d3")
    for i, case_id in enumerate(["d2", "d1", "d3"]):
        store.decide(case_id, Disposition.APPROVE, f"n{i}", "ana", now=T0 + i)
    events = store.dispositions(0)
    assert [e.case_id for e in events] == ["d2", "d1", "d3"]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    assert [e.case_id for e in store.dispositions(events[0].seq)] == ["d1", "d3"]
    assert store.dispositions(events[-1].seq) == []


def test_queue_order_is_priority_then_due_time(store) -> None:  # noqa: F811
    """A high-priority case (by reason code) comes before normal ones; filters narrow the list."""
    config = ReviewConfig({"credit_application": parse_review("priority:\n  - priority: high\n    reasons: [PD_HIGH]\n", "credit_application", "review.yaml")})
    normal = case_from_record(review_record("n1", ts=T0), config)
    high = case_from_record(review_record("h1", ts=T0 + 5, code="PD_HIGH"), config)
    assert normal is not None and high is not None
    store.open_cases([normal, high])
    assert [c.case_id for c in store.list_cases()] == ["h1", "n1"]
    assert [c.case_id for c in store.list_cases(CaseQuery(priority=Priority.NORMAL))] == ["n1"]
    assert store.get("h1").due_at == T0 + 5 + 3600


def test_linked_earlier_cases_by_customer(store) -> None:  # noqa: F811
    """A case lists the earlier cases with the same logged customer id, not later ones or other customers."""
    _open(store, "a1", "a2", customer="C-7", start=T0)
    _open(store, "b1", customer="C-8", start=T0 + 1)
    assert store.get("a2").linked == ("a1",)
    assert store.get("a1").linked == ()
    assert store.get("b1").linked == ()


def test_outcomes_are_deduplicated_per_decision_and_kind(store) -> None:  # noqa: F811
    """Re-importing the same labels adds nothing; labels come back by decision id."""
    labels = [OutcomeLabel("d1", OutcomeKind.CHARGEBACK, "2026-06-01", "import:a.csv"), OutcomeLabel("d2", OutcomeKind.REPAID, "2026-07-01", "import:a.csv")]
    assert store.add_outcomes(labels) == (2, 0)
    assert store.add_outcomes(labels) == (0, 2)
    found = store.outcomes(["d1"])
    assert list(found) == ["d1"] and found["d1"][0].kind is OutcomeKind.CHARGEBACK


def test_cursor_moves_with_the_cases_and_never_back(store) -> None:  # noqa: F811
    """The catch-up cursor is set with the cases and only grows."""
    assert store.cursor("chain-a") is None
    store.open_cases([], chain="chain-a", seq=10)
    store.open_cases([], chain="chain-a", seq=7)
    assert store.cursor("chain-a") == 10


def test_concurrent_deciders_get_one_disposition(tmp_path: Path) -> None:
    """Two stores (as two processes) racing to decide one case: exactly one succeeds."""
    a, b = open_store(tmp_path / "c.db"), open_store(tmp_path / "c.db")
    _open(a, "d1")
    results: list[str] = []

    def decide(s, who: str) -> None:
        try:
            s.decide("d1", Disposition.DECLINE, "", who, now=T0)
            results.append("ok")
        except IllegalTransition:
            results.append("refused")

    threads = [threading.Thread(target=decide, args=(s, w)) for s, w in ((a, "ana"), (b, "bob"))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["ok", "refused"]
    assert len(a.dispositions(0)) == 1
    a.close()
    b.close()


def test_shadow_and_non_review_decisions_open_no_case() -> None:
    """Only REVIEW decisions of a returned route open a case."""
    assert case_from_record(review_record("s", route="shadow"), CONFIG) is None
    assert case_from_record(review_record("a", action="APPROVE"), CONFIG) is None
    assert case_from_record(review_record("c", route="challenger"), CONFIG) is not None


def test_review_file_errors_are_all_reported_with_lines() -> None:
    """A bad review.yaml names every bad field at once."""
    with pytest.raises(PolicyError) as caught:
        parse_review("queue: ''\nsla_minutes: {high: -1}\npriority:\n  - priority: urgent\n    reasons: [X]\n", "f", "review.yaml")
    text = str(caught.value)
    assert "queue" in text and "priority.0.priority" in text and "sla_minutes" in text


def test_score_rule_sets_priority() -> None:
    """A score rule matches at its threshold (inclusive) and not below."""
    config = QueueConfig(queue="q", rules=((Priority.HIGH, frozenset(), "pd", 0.45),))
    assert config.priority_of({"scores": {"pd": 0.45}}) is Priority.HIGH
    assert config.priority_of({"scores": {"pd": 0.44}}) is Priority.NORMAL


def test_the_documented_review_file_parses_and_applies() -> None:
    """The review.yaml example in docs/review-queue.md is valid: its score rule makes pd 0.5 high, due in 60 minutes."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "review-queue.md").read_text(encoding="utf-8")
    example = doc.split("```yaml\n", 1)[1].split("```", 1)[0]
    config = parse_review(example, "credit_application", "review.yaml")
    assert config.queue == "credit-review"
    record = review_record("x", pd=0.5)
    assert config.priority_of(record) is Priority.HIGH and config.sla_seconds(Priority.HIGH) == 3600
    assert config.links_of(record) == {"customer_id": "C-1"}  # the masked card number links nothing


def test_review_files_under_a_root_are_loaded_and_errors_name_file_and_line(tmp_path: Path) -> None:
    """load_review_config reads policies/<flow>/review.yaml and reports a bad one with its path and line."""
    from engine.cases import load_review_config

    (tmp_path / "policies" / "a").mkdir(parents=True)
    (tmp_path / "policies" / "b").mkdir()
    (tmp_path / "policies" / "a" / "review.yaml").write_text("queue: qa\n")
    assert load_review_config(tmp_path).for_flow("a").queue == "qa"
    assert load_review_config(tmp_path).for_flow("b").queue == "b"
    (tmp_path / "policies" / "b" / "review.yaml").write_text("queue: qb\nsla_minutes:\n  normal: 0\n")
    with pytest.raises(PolicyError) as caught:
        load_review_config(tmp_path)
    assert "b/review.yaml:3" in str(caught.value) and "sla_minutes.normal" in str(caught.value)


def test_a_new_sqlite_store_is_private_whatever_the_umask(tmp_path: Path) -> None:
    """With umask 0 the store's new directory is 0700 and its file 0600 (it holds decision records, like the log)."""
    import os
    import stat

    old = os.umask(0)
    try:
        open_store(tmp_path / "new" / "cases.db").close()
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "cases.db").stat().st_mode) == 0o600


def test_a_relay_claims_dispositions_for_a_lease(store) -> None:  # noqa: F811
    """A claimed disposition is not handed to another relay until its lease runs out or it is marked logged."""
    _open(store, "d1")
    store.decide("d1", Disposition.APPROVE, "", "ana", now=T0)
    claimed = store.unlogged(now=T0 + 1, lease=60)
    assert [e.case_id for e in claimed] == ["d1"]
    assert store.unlogged(now=T0 + 2, lease=60) == []
    assert [e.case_id for e in store.unlogged(now=T0 + 62, lease=60)] == ["d1"]  # its holder died
    store.mark_logged([claimed[0].seq])
    assert store.unlogged(now=T0 + 200, lease=60) == []


def test_a_note_is_a_step_in_any_state_and_changes_nothing_else(store) -> None:  # noqa: F811
    """add_note appends a note step (who, when, text) to an open and to a decided case; the case's state and note stay; unknown ids are CaseNotFound."""
    _open(store, "n1")
    store.add_note("n1", "called the customer", "ana", now=T0 + 5)
    store.decide("n1", Disposition.APPROVE, "fine", "ana", now=T0 + 6)
    after = store.add_note("n1", "customer confirmed by phone", "bob", now=T0 + 7)
    assert (after.state, after.note, after.decided_by) == (CaseState.DECIDED, "fine", "ana")
    notes = [(s["at"], s["actor"], s["detail"]) for s in store.steps("n1") if s["step"] == "note"]
    assert notes == [(T0 + 5, "ana", "called the customer"), (T0 + 7, "bob", "customer confirmed by phone")]
    with pytest.raises(CaseNotFound):
        store.add_note("nope", "x", "ana", now=T0)
