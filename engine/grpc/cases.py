"""The CaseService servicer: dispositions for calling systems, cases for programmatic reviewers.

Convert in, call the store (``engine.cases``), convert out; errors go through the one status
table (unknown case NOT_FOUND, a refused step FAILED_PRECONDITION, bad fields INVALID_ARGUMENT
naming each, no store UNAVAILABLE). ``RecordOutcomes`` checks with ``engine.cases.outcomes``, the
same check as ``verdict outcomes import``. ``WatchCases`` polls the store every ``poll_seconds`` (one
indexed query) and ends when the call is cancelled or the server stops.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import grpc

from engine.cases.desk import decide_case, note_case
from engine.cases.errors import TooManyWatchers
from engine.cases.model import Case, CaseEvent
from engine.cases.outcomes import labels_from_entries
from engine.cases.store import MAX_PAGE, CaseStore
from engine.errors import FieldError, InvalidInput, NotReady
from engine.grpc.auth import caller_of
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.status import abort, translate_errors
from engine.grpc.wire import Malformed, tolerant_decoder
from engine.limits import MAX_WATCH_STREAMS

__all__ = ["CASE_SERVICE_NAME", "CaseServicer", "case_handlers"]

CASE_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["CaseService"].full_name
DEFAULT_PAGE = 100


def _ms(seconds: float | None) -> int:
    return round(seconds * 1000) if seconds else 0


def event_to_pb(event: CaseEvent) -> pb.CaseDecision:
    return pb.CaseDecision(
        seq=event.seq, case_id=event.case_id, decision_id=event.decision_id, request_id=event.request_id,
        flow=event.flow, version=event.version, disposition=event.disposition.value, note=event.note,
        actor=event.actor, decided_at_unix_ms=_ms(event.decided_at),
    )


def case_to_pb(case: Case) -> pb.Case:
    return pb.Case(
        case_id=case.case_id, decision_id=case.decision_id, request_id=case.request_id, flow=case.flow,
        version=case.version, route=case.route, queue=case.queue, priority=case.priority.value,
        state=case.state.value, assignee=case.assignee, disposition=case.disposition.value if case.disposition else "",
        note=case.note, decided_by=case.decided_by, opened_at_unix_ms=_ms(case.opened_at), due_at_unix_ms=_ms(case.due_at),
        decided_at_unix_ms=_ms(case.decided_at), decided_seq=case.decided_seq or 0, linked_case_ids=list(case.linked),
        record_json=json.dumps(case.record, ensure_ascii=False, default=str),
    )


def _check(request: Any) -> None:
    if isinstance(request, Malformed):
        raise InvalidInput([FieldError(request.field, request.message, request.code)])


def _cursor(since: int, page_size: int | None = None) -> int:
    errors = []
    if since < 0:
        errors.append(FieldError("since", "must be 0 or a seq received before", "out_of_range"))
    if page_size is not None and not 0 <= page_size <= MAX_PAGE:
        errors.append(FieldError("page_size", f"must be 0 to {MAX_PAGE}", "out_of_range"))
    if errors:
        raise InvalidInput(errors)
    return page_size or DEFAULT_PAGE


class CaseServicer:
    """Serves CaseService once a store is bound (``bind``); UNAVAILABLE before."""

    def __init__(self, *, poll_seconds: float = 0.2, max_watchers: int = MAX_WATCH_STREAMS) -> None:
        self._store: CaseStore | None = None
        self.poll_seconds = poll_seconds
        self._stopping = threading.Event()
        self._watchers = threading.BoundedSemaphore(max_watchers)

    def bind(self, store: CaseStore | None) -> None:
        self._store = store

    def stop(self) -> None:
        """End every WatchCases stream (server shutdown)."""
        self._stopping.set()

    def _core(self) -> CaseStore:
        store = self._store
        if store is None:
            raise NotReady("this server keeps no review cases (settings: cases)")
        return store

    @translate_errors
    def ListCaseDecisions(self, request: pb.ListCaseDecisionsRequest | Malformed, context: grpc.ServicerContext) -> pb.ListCaseDecisionsResponse:  # noqa: N802
        """One page of dispositions after ``since``."""
        _check(request)
        assert isinstance(request, pb.ListCaseDecisionsRequest)
        limit = _cursor(request.since, request.page_size)
        events = self._core().dispositions(request.since, limit, flow=request.flow or None)
        return pb.ListCaseDecisionsResponse(
            decisions=[event_to_pb(e) for e in events], next_since=events[-1].seq if events else request.since
        )

    def WatchCases(self, request: pb.WatchCasesRequest | Malformed, context: grpc.ServicerContext) -> Iterator[pb.CaseDecision]:  # noqa: N802
        """Every disposition after ``since``, then new ones as they are made, until cancelled.

        Checked before the stream starts (INVALID_ARGUMENT, UNAVAILABLE); a store failure mid-stream
        ends it with its mapped status (the caller resumes from the last seq it received).
        """
        try:
            _check(request)
            assert isinstance(request, pb.WatchCasesRequest)
            _cursor(request.since)
            store = self._core()
        except Exception as exc:  # noqa: BLE001 - every error becomes its mapped status
            abort(context, exc)
        return self._watch(store, request.since, request.flow or None, context)

    def _watch(self, store: CaseStore, since: int, flow: str | None, context: grpc.ServicerContext) -> Iterator[pb.CaseDecision]:
        """The stream; holds one of the watcher slots from its first message until it ends, however it ends."""
        if not self._watchers.acquire(blocking=False):
            abort(context, TooManyWatchers(f"{MAX_WATCH_STREAMS} WatchCases streams are open on this server; retry later or page with ListCaseDecisions"))
        try:
            yield from self._follow(store, since, flow, context)
        finally:
            self._watchers.release()

    def _follow(self, store: CaseStore, since: int, flow: str | None, context: grpc.ServicerContext) -> Iterator[pb.CaseDecision]:
        try:
            while context.is_active() and not self._stopping.is_set():
                events = store.dispositions(since, DEFAULT_PAGE, flow=flow)
                for event in events:
                    yield event_to_pb(event)
                    since = event.seq
                if len(events) < DEFAULT_PAGE:
                    self._stopping.wait(self.poll_seconds)
        except Exception as exc:  # noqa: BLE001 - every error becomes its mapped status
            abort(context, exc)

    @translate_errors
    def GetCase(self, request: pb.GetCaseRequest | Malformed, context: grpc.ServicerContext) -> pb.Case:  # noqa: N802
        """One case; NOT_FOUND naming the id when there is none."""
        _check(request)
        assert isinstance(request, pb.GetCaseRequest)
        if not request.case_id:
            raise InvalidInput([FieldError("case_id", "required", "required")])
        return case_to_pb(self._core().get(request.case_id))

    @translate_errors
    def DecideCase(self, request: pb.DecideCaseRequest | Malformed, context: grpc.ServicerContext) -> pb.Case:  # noqa: N802
        """Decide a case as the calling service (the actor is the authenticated caller, else "grpc")."""
        _check(request)
        assert isinstance(request, pb.DecideCaseRequest)
        actor = caller_of(context) or "grpc"
        case = decide_case(self._core(), request.case_id, request.disposition, request.note, actor, outcome=request.outcome)
        return case_to_pb(case)

    @translate_errors
    def RecordOutcomes(self, request: pb.RecordOutcomesRequest | Malformed, context: grpc.ServicerContext) -> pb.RecordOutcomesResponse:  # noqa: N802
        """Store outcome labels by decision id, all or none; source ``rpc:<caller>``."""
        _check(request)
        assert isinstance(request, pb.RecordOutcomesRequest)
        labels = labels_from_entries([(e.decision_id, e.outcome, e.date) for e in request.outcomes], f"rpc:{caller_of(context) or 'grpc'}")
        added, already = self._core().add_outcomes(labels)
        return pb.RecordOutcomesResponse(added=added, already=already)

    @translate_errors
    def AddCaseNote(self, request: pb.AddCaseNoteRequest | Malformed, context: grpc.ServicerContext) -> pb.Case:  # noqa: N802
        """A note on the case's history as the caller ("grpc" unauthenticated); NOT_FOUND for an unknown case."""
        _check(request)
        assert isinstance(request, pb.AddCaseNoteRequest)
        return case_to_pb(note_case(self._core(), request.case_id, request.text, caller_of(context) or "grpc"))


def case_handlers(servicer: CaseServicer) -> dict[str, Any]:
    """The CaseService method handlers by method name."""
    return {
        "ListCaseDecisions": grpc.unary_unary_rpc_method_handler(
            servicer.ListCaseDecisions, request_deserializer=tolerant_decoder(pb.ListCaseDecisionsRequest),
            response_serializer=pb.ListCaseDecisionsResponse.SerializeToString,
        ),
        "WatchCases": grpc.unary_stream_rpc_method_handler(
            servicer.WatchCases, request_deserializer=tolerant_decoder(pb.WatchCasesRequest),
            response_serializer=pb.CaseDecision.SerializeToString,
        ),
        "GetCase": grpc.unary_unary_rpc_method_handler(
            servicer.GetCase, request_deserializer=tolerant_decoder(pb.GetCaseRequest), response_serializer=pb.Case.SerializeToString,
        ),
        "DecideCase": grpc.unary_unary_rpc_method_handler(
            servicer.DecideCase, request_deserializer=tolerant_decoder(pb.DecideCaseRequest), response_serializer=pb.Case.SerializeToString,
        ),
        "RecordOutcomes": grpc.unary_unary_rpc_method_handler(
            servicer.RecordOutcomes, request_deserializer=tolerant_decoder(pb.RecordOutcomesRequest),
            response_serializer=pb.RecordOutcomesResponse.SerializeToString,
        ),
        "AddCaseNote": grpc.unary_unary_rpc_method_handler(
            servicer.AddCaseNote, request_deserializer=tolerant_decoder(pb.AddCaseNoteRequest), response_serializer=pb.Case.SerializeToString,
        ),
    }
