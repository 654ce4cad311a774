"""The wire codec of DecideBatch: split a DecideBatchRequest into DecideRequests, join the answers.

Each request of a batch is decoded by the very decoder of Decide (``wire.decode_decide_request``)
from its own bytes, and each decision is encoded by Decide's ``ResponseEncoder``, so a request
gets the same answer alone or in a batch, byte for byte (ids and timings aside). A failed request
becomes a ``DecideError`` carrying the status, message and field errors Decide would have sent
(``status.status_for``). The number of requests is checked while splitting, before any is
decoded (``MAX_BATCH_REQUESTS``): bounded cost.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import NamedTuple

from engine.errors import FieldError, InvalidInput, VerdictError
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.status import FIELD_ERRORS_KEY, FIELD_ERRORS_OMITTED_KEY, status_for
from engine.grpc.wire import DecideCall, Malformed, decode_decide_request
from engine.grpc.wire_format import delimited, read_varint
from engine.limits import MAX_BATCH_REQUESTS
from engine.types import Decision

__all__ = ["BatchCall", "decode_batch_request", "encode_batch_response", "requests_of"]

_T_REQUESTS = 1
_T_RESULT = b"\x0a"  # DecideBatchResponse.results, field 1, length-delimited
_T_RESPONSE = b"\x0a"  # DecideBatchResult.response, field 1
_T_ERROR = b"\x12"  # DecideBatchResult.error, field 2
_TOO_MANY = f"a batch may carry at most {MAX_BATCH_REQUESTS:,} requests"


class BatchCall(NamedTuple):
    """A decoded DecideBatchRequest: each request as Decide's decoder gives it (a call or Malformed)."""

    requests: tuple[DecideCall | Malformed, ...]

    def flows(self) -> set[str]:
        """The flows the batch's well-formed requests name (what authorization checks)."""
        return {r.flow for r in self.requests if isinstance(r, DecideCall)}


def _skip(data: bytes, i: int, wire_type: int) -> int:
    if wire_type == 0:
        return read_varint(data, i)[1]
    if wire_type == 1:
        return i + 8
    if wire_type == 2:
        n, i = read_varint(data, i)
        return i + n
    if wire_type == 5:
        return i + 4
    raise ValueError(f"wire type {wire_type}")


def decode_batch_request(data: bytes) -> BatchCall | Malformed:
    """Serialized DecideBatchRequest -> BatchCall; Malformed when it is not one or has too many requests.

    The requests are counted while splitting, then each is decoded by Decide's decoder. Unknown
    fields are skipped (a newer client's). Never raises.
    """
    out: list[bytes] = []
    i, end = 0, len(data)
    try:
        while i < end:
            key, i = read_varint(data, i)
            field, wire_type = key >> 3, key & 7
            if field == _T_REQUESTS and wire_type == 2:
                n, i = read_varint(data, i)
                if i + n > end:
                    raise ValueError("truncated request")
                if len(out) >= MAX_BATCH_REQUESTS:
                    return Malformed(_TOO_MANY, "requests", "too_many_requests")
                out.append(data[i : i + n])
                i += n
            else:
                i = _skip(data, i, wire_type)
        if i != end:
            raise ValueError("truncated message")
    except (IndexError, ValueError) as exc:
        return Malformed(f"request is not a valid verdict.v1.DecideBatchRequest: {exc}")
    return BatchCall(tuple(decode_decide_request(raw) for raw in out))


def requests_of(batch: BatchCall | Malformed) -> list[DecideCall | VerdictError]:
    """The batch's requests decoded as Decide decodes them; one that is malformed is its InvalidInput.

    Raises InvalidInput for a batch that is itself malformed or too large (the whole call fails).
    """
    if isinstance(batch, Malformed):
        raise InvalidInput([FieldError(batch.field, batch.message, batch.code)])
    return [
        InvalidInput([FieldError(call.field, call.message, call.code)]) if isinstance(call, Malformed) else call
        for call in batch.requests
    ]


def _error(error: VerdictError) -> bytes:
    code, message, metadata = status_for(error)
    trailers = dict(metadata)
    fields = json.loads(trailers.get(FIELD_ERRORS_KEY, "[]"))
    return pb.DecideError(
        code=code.value[0], message=message,
        field_errors=[pb.FieldError(field=f["field"], message=f["message"], code=f["code"]) for f in fields],
        field_errors_omitted=int(trailers.get(FIELD_ERRORS_OMITTED_KEY, "0")),
    ).SerializeToString()


def encode_batch_response(results: Sequence[Decision | VerdictError], encode: Callable[[Decision], bytes]) -> bytes:
    """Serialized DecideBatchResponse: each decision as Decide's response bytes, each error as a DecideError."""
    parts = [
        delimited(_T_RESULT, delimited(_T_ERROR, _error(r)) if isinstance(r, VerdictError) else delimited(_T_RESPONSE, encode(r)))
        for r in results
    ]
    return b"".join(parts)
