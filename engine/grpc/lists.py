"""The ListService servicer: custom block and allow lists changed and read over gRPC (docs/lists.md).

Each method converts in, calls the list store (``engine.custom_lists.store``), makes this
process's view current at once (``ListRefresher.refresh``; other workers poll within 0.25 s) and
converts out. Bad input is ``InvalidInput`` naming every bad field (INVALID_ARGUMENT); no store is
``ListsUnavailable`` (FAILED_PRECONDITION); before the store is attached, ``NotReady``
(UNAVAILABLE). The authenticated caller, when there is one, is audited beside the given actor.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import grpc

from engine.custom_lists.refresh import ListRefresher
from engine.custom_lists.store import Change
from engine.errors import FieldError, InvalidInput, ListsUnavailable, NotReady
from engine.grpc.auth import caller_of
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.status import translate_errors
from engine.grpc.wire import Malformed, tolerant_decoder
from engine.runtime.privacy import scrub_text

__all__ = ["LIST_SERVICE_NAME", "ListServicer", "list_handlers"]

LIST_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["ListService"].full_name


def _ms(seconds: float | None) -> int:
    return round(seconds * 1000) if seconds and math.isfinite(seconds) else 0


def _change_to_pb(change: Change) -> pb.ListChangeResult:
    record = change.record
    return pb.ListChangeResult(
        seq=change.seq, action=str(record.get("action", "")), list=str(record.get("list", "")), key=str(record.get("key", "")),
        record_json=scrub_text(json.dumps(record, ensure_ascii=False, separators=(",", ":"))),
    )


class ListServicer:
    """Serves ListService once a store is attached (``attach``); refuses with FAILED_PRECONDITION when off."""

    def __init__(self) -> None:
        self._refresher: ListRefresher | None = None
        self._off = False

    def attach(self, refresher: ListRefresher | None) -> None:
        """Serve the store of ``refresher``; None: this server keeps no list store."""
        self._refresher = refresher
        self._off = refresher is None

    def _store(self) -> ListRefresher:
        if self._off:
            raise ListsUnavailable("this server keeps no custom-list store (started with --lists off and no decision log directory)")
        if self._refresher is None:
            raise NotReady("the list store is still opening")
        return self._refresher

    @staticmethod
    def _decoded(request: Any) -> Any:
        if isinstance(request, Malformed):
            raise InvalidInput([FieldError(request.field, request.message, request.code)])
        return request

    @translate_errors
    def AddListEntry(self, call: pb.ListEntryChange | Malformed, context: grpc.ServicerContext) -> pb.ListChangeResult:  # noqa: N802
        """Add (or renew) an entry; the audited change."""
        return self._change(call, context, add=True)

    @translate_errors
    def RemoveListEntry(self, call: pb.ListEntryChange | Malformed, context: grpc.ServicerContext) -> pb.ListChangeResult:  # noqa: N802
        """Remove an entry; the audited change."""
        return self._change(call, context, add=False)

    def _change(self, call: pb.ListEntryChange | Malformed, context: grpc.ServicerContext, *, add: bool) -> pb.ListChangeResult:
        """Convert in, change the store, make this process's view current, convert out."""
        request: pb.ListEntryChange = self._decoded(call)
        refresher = self._store()
        store, via = refresher.store, caller_of(context) or "grpc"
        if not add:
            change = store.remove(request.list, request.value, actor=request.actor, reason=request.reason, via=via)
        else:
            expires = request.expires_at_unix_ms / 1000 if request.expires_at_unix_ms else None
            try:
                change = store.add(request.list, request.value, actor=request.actor, reason=request.reason, expires_at=expires,
                                   note=request.note, via=via)
            except InvalidInput as exc:  # the store's "expires_at" is this message's expires_at_unix_ms
                raise InvalidInput([replace(e, field="expires_at_unix_ms") if e.field == "expires_at" else e for e in exc.errors],
                                   exc.omitted) from None
        refresher.refresh()
        return _change_to_pb(change)

    @translate_errors
    def GetList(self, call: pb.GetListRequest | Malformed, context: grpc.ServicerContext) -> pb.GetListResponse:  # noqa: N802
        """The entries of one list (card numbers masked)."""
        request: pb.GetListRequest = self._decoded(call)
        refresher = self._store()
        if not request.list.strip():
            raise InvalidInput([FieldError("list", "is required", "required")])
        return pb.GetListResponse(entries=[
            pb.ListEntry(entry=e.shown, key=e.key, note=e.note, added_by=e.added_by, added_at_unix_ms=_ms(e.added_at),
                         expires_at_unix_ms=_ms(e.expires_at))
            for e in refresher.store.entries(request.list)
        ])


def list_handlers(servicer: ListServicer) -> dict[str, Any]:
    """The ListService method handlers by method name."""
    return {
        name: grpc.unary_unary_rpc_method_handler(
            getattr(servicer, name), request_deserializer=tolerant_decoder(req), response_serializer=resp.SerializeToString,
        )
        for name, req, resp in (
            ("AddListEntry", pb.ListEntryChange, pb.ListChangeResult),
            ("RemoveListEntry", pb.ListEntryChange, pb.ListChangeResult),
            ("GetList", pb.GetListRequest, pb.GetListResponse),
        )
    }
