"""The DecisionService servicer: convert in, call the core, convert out.

Decide receives the request already decoded by ``engine.grpc.wire`` (registered as the method's
deserializer) and returns serialized bytes (the serializer is the identity), so the request path
never builds upb messages. ``handlers`` registers the methods under the contract's names.
The call's deadline goes to the core as a ``time.monotonic()`` instant, never the context itself;
when the core traces (``tracing`` set, engine.tracing), the call's W3C trace headers go with it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol

import grpc

from engine.errors import FieldError, InvalidInput, NotReady
from engine.grpc.auth import caller_of
from engine.grpc.batch import BatchCall, decode_batch_request, encode_batch_response, requests_of
from engine.grpc.convert import flows_to_response, struct_to_dict
from engine.grpc.encoder import ResponseEncoder
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.status import translate_errors
from engine.grpc.wire import DecideCall, Malformed, decode_decide_request, tolerant_decoder
from engine.tracing import TRACE_HEADERS
from engine.types import Decision

__all__ = ["DecisionServicer", "Decider", "SERVICE_NAME", "handlers"]

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["DecisionService"].full_name


class Decider(Protocol):
    """What the servicer needs from the core (``engine.runtime.service.Decider``)."""

    def decide(
        self, flow: str, input: Mapping[str, Any], *, version: str = "", request_id: str = "", caller: str = "",
        deadline: float | None = None,
    ) -> Decision: ...

    def decide_many(
        self, requests: Any, *, caller: str = "", deadline: float | None = None
    ) -> list[Decision | Any]: ...

    def flows(self) -> dict[str, list[str]]: ...

    def live_version(self, flow: str) -> str: ...

    def record_event(self, kind: str, fields: Mapping[str, Any], *, event_time: float = 0.0) -> tuple[float, int]: ...


class DecisionServicer:
    """Serves Decide and ListFlows from a Decider, once one is attached with ``ready``, and Ping."""

    def __init__(self, decider: Decider | None = None) -> None:
        self._decider = decider
        self._encode = ResponseEncoder().encode

    def ready(self, decider: Decider) -> None:
        """Attach the loaded decider; calls before this get UNAVAILABLE."""
        self._decider = decider

    def on_error(self, method: str, code: grpc.StatusCode) -> None:
        """Count an error answer by status code (``verdict_errors_total``), once a core with metrics is attached."""
        metrics = getattr(self._decider, "metrics", None)
        if metrics is not None:
            metrics.inc("verdict_errors", method=method, code=code.name)

    def _core(self) -> Decider:
        decider = self._decider
        if decider is None:
            raise NotReady("policies are still loading")
        return decider

    @translate_errors
    def Decide(self, call: DecideCall | Malformed, context: grpc.ServicerContext) -> bytes:  # noqa: N802
        """Decide one request; answers serialized DecideResponse bytes."""
        if isinstance(call, Malformed):
            raise InvalidInput([FieldError(call.field, call.message, call.code)])
        remaining = context.time_remaining()  # seconds, None without a deadline
        deadline = None if remaining is None else time.monotonic() + remaining
        core = self._core()
        decision = core.decide(
            call.flow, call.input, version=call.version, request_id=call.request_id, caller=caller_of(context), deadline=deadline,
            **_trace_of(core, context),
        )
        return self._encode(decision)

    @translate_errors
    def DecideBatch(self, batch: BatchCall | Malformed, context: grpc.ServicerContext) -> bytes:  # noqa: N802
        """Decide each request of the batch on its own; answers serialized DecideBatchResponse bytes."""
        remaining = context.time_remaining()
        deadline = None if remaining is None else time.monotonic() + remaining
        core = self._core()
        results = core.decide_many(requests_of(batch), caller=caller_of(context), deadline=deadline, **_trace_of(core, context))
        return encode_batch_response(results, self._encode)

    @translate_errors
    def ListFlows(self, request: pb.ListFlowsRequest | Malformed, context: grpc.ServicerContext) -> pb.ListFlowsResponse:  # noqa: N802
        """The loaded flows, their versions and live versions."""
        if isinstance(request, Malformed):
            raise InvalidInput([FieldError(request.field, request.message, request.code)])
        core = self._core()
        flows = core.flows()
        return flows_to_response(flows, {name: core.live_version(name) for name in flows})

    @translate_errors
    def RecordEvent(self, request: pb.RecordEventRequest | Malformed, context: grpc.ServicerContext) -> pb.RecordEventResponse:  # noqa: N802
        """Record one event of a declared type in the stateful features' histories (engine.state)."""
        if isinstance(request, Malformed):
            raise InvalidInput([FieldError(request.field, request.message, request.code)])
        at, placed = self._core().record_event(request.type, struct_to_dict(request.fields), event_time=request.event_time)
        return pb.RecordEventResponse(event_time=at, recorded=placed)

    @staticmethod
    def Ping(payload: bytes, context: grpc.ServicerContext) -> bytes:  # noqa: N802
        """Echo the serialized PingRequest as the PingResponse (same wire layout: field 1, bytes)."""
        return payload


def _trace_of(core: Decider, context: grpc.ServicerContext) -> dict[str, Any]:
    """``{"trace": W3C headers of the call}`` for a core that traces, else nothing (no cost when off)."""
    if getattr(core, "tracing", None) is None:
        return {}
    return {"trace": {k: v for k, v in context.invocation_metadata() if k in TRACE_HEADERS}}


def handlers(servicer: DecisionServicer) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """The service's method handlers by method name, with the fast wire codec on Decide."""
    return {
        "Decide": grpc.unary_unary_rpc_method_handler(
            servicer.Decide,
            request_deserializer=decode_decide_request,
            response_serializer=None,  # Decide returns serialized bytes already
        ),
        "DecideBatch": grpc.unary_unary_rpc_method_handler(
            servicer.DecideBatch,
            request_deserializer=decode_batch_request,
            response_serializer=None,  # DecideBatch returns serialized bytes already
        ),
        "ListFlows": grpc.unary_unary_rpc_method_handler(
            servicer.ListFlows,
            request_deserializer=tolerant_decoder(pb.ListFlowsRequest),
            response_serializer=pb.ListFlowsResponse.SerializeToString,
        ),
        "RecordEvent": grpc.unary_unary_rpc_method_handler(
            servicer.RecordEvent,
            request_deserializer=tolerant_decoder(pb.RecordEventRequest),
            response_serializer=pb.RecordEventResponse.SerializeToString,
        ),
        # The transport floor: bytes in, the same bytes out, no parsing at all.
        "Ping": grpc.unary_unary_rpc_method_handler(servicer.Ping),
    }
