"""The CaseService servicer without a network: statuses for bad input, unknown cases and a missing
store, and the cap on open WatchCases streams (each holds a request thread)."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from engine.cases import Disposition, ReviewConfig, case_from_record, open_store
from engine.grpc.cases import CaseServicer
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.wire import Malformed

from .cases_helpers import T0, review_record
from .grpc_fakes import AbortError, FakeContext


class _Live(FakeContext):
    """A context whose call stays active (a stream reads until cancelled)."""

    def is_active(self) -> bool:
        return True


@pytest.fixture
def servicer(tmp_path: Path):
    store = open_store(tmp_path / "cases.db")
    for i in range(3):
        case = case_from_record(review_record(f"d{i}", ts=T0 + i), ReviewConfig({}))
        assert case is not None
        store.open_cases([case])
        store.decide(f"d{i}", Disposition.APPROVE, "", "ana", now=T0 + 10 + i)
    s = CaseServicer(poll_seconds=0.01, max_watchers=1)
    s.bind(store)
    yield s
    s.stop()
    store.close()


def test_watch_streams_are_capped_and_a_slot_frees_when_a_stream_ends(servicer) -> None:
    """With one slot, a second open stream is RESOURCE_EXHAUSTED; once the first ends, a new one streams."""
    first = servicer.WatchCases(pb.WatchCasesRequest(since=0), _Live())
    assert next(first).case_id == "d0"
    second = servicer.WatchCases(pb.WatchCasesRequest(since=0), _Live())
    with pytest.raises(AbortError) as caught:
        next(second)
    assert caught.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "too_many_watchers" in caught.value.details
    first.close()
    third = servicer.WatchCases(pb.WatchCasesRequest(since=1), _Live())
    assert [next(third).case_id, next(third).case_id] == ["d1", "d2"]
    third.close()


def test_bad_requests_name_their_fields(servicer) -> None:
    """Malformed bytes, a negative cursor, an oversized page and an empty case id are INVALID_ARGUMENT naming the field."""
    for call, request, field in (
        (servicer.ListCaseDecisions, Malformed("not a ListCaseDecisionsRequest"), "request"),
        (servicer.ListCaseDecisions, pb.ListCaseDecisionsRequest(since=-1), "since"),
        (servicer.ListCaseDecisions, pb.ListCaseDecisionsRequest(page_size=1001), "page_size"),
        (servicer.GetCase, pb.GetCaseRequest(), "case_id"),
        (servicer.DecideCase, pb.DecideCaseRequest(case_id="d0", disposition="approve", note="x" * 4001), "note"),
    ):
        with pytest.raises(AbortError) as caught:
            call(request, FakeContext())
        assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT and field in caught.value.details


def test_pages_resume_from_next_since(servicer) -> None:
    """Two pages of two and one, each starting after the previous page's next_since."""
    first = servicer.ListCaseDecisions(pb.ListCaseDecisionsRequest(page_size=2), FakeContext())
    second = servicer.ListCaseDecisions(pb.ListCaseDecisionsRequest(since=first.next_since, page_size=2), FakeContext())
    assert [d.case_id for d in first.decisions] + [d.case_id for d in second.decisions] == ["d0", "d1", "d2"]


def test_without_a_store_calls_are_unavailable() -> None:
    """A server started with --cases off answers UNAVAILABLE, naming the setting."""
    with pytest.raises(AbortError) as caught:
        CaseServicer().GetCase(pb.GetCaseRequest(case_id="x"), FakeContext())
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE and "cases" in caught.value.details


def test_decide_case_records_the_actor_and_the_outcome_label(tmp_path: Path) -> None:
    """DecideCase decides as the caller ("grpc" unauthenticated) and stores the outcome the review established."""
    store = open_store(tmp_path / "c.db")
    case = case_from_record(review_record("d9", ts=T0), ReviewConfig({}))
    assert case is not None
    store.open_cases([case])
    servicer = CaseServicer()
    servicer.bind(store)
    answer = servicer.DecideCase(pb.DecideCaseRequest(case_id="d9", disposition="decline", note="stolen card", outcome="confirmed_fraud"), FakeContext())
    assert (answer.state, answer.disposition, answer.decided_by, answer.decided_seq) == ("decided", "decline", "grpc", 1)
    labels = store.outcomes(["d9"])["d9"]
    assert [(label.kind.value, label.source, label.request_id) for label in labels] == [("confirmed_fraud", "case:d9", "req-d9")]
    store.close()


def _entry(decision_id: str = "d0", outcome: str = "chargeback", date: str = "2026-03-14") -> pb.OutcomeEntry:
    return pb.OutcomeEntry(decision_id=decision_id, outcome=outcome, date=date)


def test_record_outcomes_stores_labels_once_as_the_caller(servicer) -> None:
    """RecordOutcomes stores each label with source rpc:<caller>; the same call again adds nothing (added/already counts)."""
    request = pb.RecordOutcomesRequest(outcomes=[_entry("d0"), _entry("d1", "repaid", "2026-09-30"), _entry("d0", "confirmed_fraud")])
    first = servicer.RecordOutcomes(request, FakeContext())
    assert (first.added, first.already) == (3, 0)
    again = servicer.RecordOutcomes(request, FakeContext())
    assert (again.added, again.already) == (0, 3)
    labels = servicer._store.outcomes(["d0", "d1"])
    assert sorted((lb.decision_id, lb.kind.value, lb.occurred, lb.source) for found in labels.values() for lb in found) == [
        ("d0", "chargeback", "2026-03-14", "rpc:grpc"), ("d0", "confirmed_fraud", "2026-03-14", "rpc:grpc"),
        ("d1", "repaid", "2026-09-30", "rpc:grpc"),
    ]


def test_record_outcomes_names_every_bad_entry_and_stores_nothing(servicer) -> None:
    """Bad outcome, date and decision id are INVALID_ARGUMENT naming outcomes[i].field; the good entry beside them is not stored."""
    request = pb.RecordOutcomesRequest(outcomes=[
        _entry("d0"), _entry("d1", "fraud"), _entry("d2", date="2026-02-30"), _entry("", date="20260314"), _entry("x" * 129),
    ])
    with pytest.raises(AbortError) as caught:
        servicer.RecordOutcomes(request, FakeContext())
    details = caught.value.details
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    for field in ("outcomes[1].outcome", "outcomes[2].date", "outcomes[3].decision_id", "outcomes[3].date", "outcomes[4].decision_id"):
        assert field in details
    assert "outcomes[0]" not in details
    assert servicer._store.outcomes() == {}


@pytest.mark.parametrize("count", [0, 1001])
def test_record_outcomes_takes_1_to_1000_labels(servicer, count: int) -> None:
    """An empty call and one over 1,000 labels are INVALID_ARGUMENT on the outcomes field, before any entry is checked."""
    with pytest.raises(AbortError) as caught:
        servicer.RecordOutcomes(pb.RecordOutcomesRequest(outcomes=[_entry(f"d{i}") for i in range(count)]), FakeContext())
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT and "outcomes:" in caught.value.details and str(count) in caught.value.details


def test_record_outcomes_error_list_is_bounded(servicer) -> None:
    """1,000 bad entries: the status lists the first few fields and counts the rest, so the reply stays small."""
    with pytest.raises(AbortError) as caught:
        servicer.RecordOutcomes(pb.RecordOutcomesRequest(outcomes=[_entry(f"d{i}", "nope") for i in range(1000)]), FakeContext())
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "outcomes[0].outcome" in caught.value.details and "990 more" in caught.value.details
    assert len(caught.value.details) < 4096


def test_record_outcomes_without_a_store_is_unavailable() -> None:
    """A server without a case store answers RecordOutcomes UNAVAILABLE once the labels are checked."""
    with pytest.raises(AbortError) as caught:
        CaseServicer().RecordOutcomes(pb.RecordOutcomesRequest(outcomes=[_entry()]), FakeContext())
    assert caught.value.code == grpc.StatusCode.UNAVAILABLE


def test_add_case_note_masks_card_numbers_and_names_bad_fields(servicer) -> None:
    """AddCaseNote adds a note step as the caller with the card number masked; empty id and text are INVALID_ARGUMENT naming both; an unknown case NOT_FOUND."""
    servicer.AddCaseNote(pb.AddCaseNoteRequest(case_id="d1", text="card 4111 1111 1111 1111 reported stolen"), FakeContext())
    notes = [s for s in servicer._store.steps("d1") if s["step"] == "note"]
    assert [(s["actor"], s["detail"]) for s in notes] == [("grpc", "card 411111******1111 reported stolen")]
    with pytest.raises(AbortError) as caught:
        servicer.AddCaseNote(pb.AddCaseNoteRequest(case_id="", text="  "), FakeContext())
    assert caught.value.code == grpc.StatusCode.INVALID_ARGUMENT and "case_id" in caught.value.details and "text" in caught.value.details
    with pytest.raises(AbortError) as caught:
        servicer.AddCaseNote(pb.AddCaseNoteRequest(case_id="nope", text="x"), FakeContext())
    assert caught.value.code == grpc.StatusCode.NOT_FOUND
