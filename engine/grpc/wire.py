"""The fast decoder the server uses on the request path.

Parsing a ``DecideRequest`` into upb messages and walking its ``Struct`` costs about 2 µs a field
in CPython (a wrapper object per map entry and per ``Value``). This module reads the protobuf wire
format directly (``engine.grpc.wire_format``) for the shapes real clients send, and falls back to
the reference conversions in ``engine.grpc.convert`` for anything else (nested values, long
varints, unknown fields, repeated sub-messages, malformed bytes), so the meaning is always
protobuf's own. Tests check both paths agree on generated and real requests. Responses are
written by ``engine.grpc.encoder.ResponseEncoder``.
"""
from __future__ import annotations

import struct
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError

from engine.grpc.convert import struct_to_dict
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.wire_format import CACHE_LIMIT, field_tag, field_tags, one_byte_tag, read_varint
from engine.limits import MAX_INPUT_FIELDS

__all__ = ["DecideCall", "Malformed", "decode_decide_request", "tolerant_decoder"]

_unpack_double = struct.Struct("<d").unpack_from
_key_cache: dict[bytes, str] = {}


class DecideCall(NamedTuple):
    """A decoded DecideRequest: the fields the core needs, the input as a plain dict."""

    flow: str
    version: str
    request_id: str
    input: dict[str, Any]


class Malformed(NamedTuple):
    """Request bytes that are not a valid request, or a request refused before decoding it all.

    ``field`` and ``code`` are what the servicer's INVALID_ARGUMENT names: ``request``/``malformed``
    for bytes that are not the method's message, ``input``/``too_many_fields`` for an input of
    more than ``engine.limits.MAX_INPUT_FIELDS`` entries (decoding stops there: bounded cost).
    """

    message: str
    field: str = "request"
    code: str = "malformed"


class _TooManyFields(Exception):
    """The input has more entries than a request may carry; decoding stops at once."""


#: What a too-large input is told (the same words as engine.runtime.validation's own check).
TOO_MANY_FIELDS = f"has more than {MAX_INPUT_FIELDS} fields; a request may carry at most {MAX_INPUT_FIELDS}"


# One-byte tags of the request's fields, from the descriptors (engine.grpc.wire_format.field_tag).
_REQUEST = pb.DecideRequest.DESCRIPTOR
_R_FLOW, _R_VERSION, _R_REQUEST_ID, _R_INPUT = (one_byte_tag(t) for t in field_tags(_REQUEST, "flow", "version", "request_id", "input"))
_S_FIELDS = one_byte_tag(field_tag(struct_pb2.Struct.DESCRIPTOR, "fields"))
_E_KEY, _E_VALUE = (one_byte_tag(t) for t in field_tags(struct_pb2.Struct.DESCRIPTOR.fields_by_name["fields"].message_type, "key", "value"))
_V_NULL, _V_NUMBER, _V_STRING, _V_BOOL = (
    one_byte_tag(t) for t in field_tags(struct_pb2.Value.DESCRIPTOR, "null_value", "number_value", "string_value", "bool_value")
)


def _key(raw: bytes) -> str:
    key = _key_cache.get(raw)
    if key is None:
        key = sys.intern(raw.decode())
        if len(_key_cache) < CACHE_LIMIT:
            _key_cache[raw] = key
    return key


def _fast_struct(data: bytes, i: int, end: int) -> dict[str, Any] | None:  # noqa: C901 (the request hot path: one inlined loop over tags, measured in benchmarks)
    """The Struct in ``data[i:end]`` as a dict, or None when it is not in the simple shape.

    The simple shape: every entry is ``key, value`` in that order, with lengths under 128 bytes,
    and every value is one number, string, bool or null.
    """
    out: dict[str, Any] = {}
    unpack = _unpack_double
    entry, key_tag, value_tag = _S_FIELDS, _E_KEY, _E_VALUE  # locals: the loop runs once per input field
    number, string, boolean, null = _V_NUMBER, _V_STRING, _V_BOOL, _V_NULL
    while i < end:
        if len(out) >= MAX_INPUT_FIELDS:  # a further entry: more than a request may carry
            raise _TooManyFields
        # map entry: fields tag, len | key tag, klen, bytes | value tag, vlen | Value fields
        if data[i] != entry or data[i + 2] != key_tag:
            return None
        entry_len = data[i + 1]
        key_len = data[i + 3]
        if entry_len >= 0x80 or key_len >= 0x80:
            return None
        entry_end = i + 2 + entry_len
        k = i + 4 + key_len
        if entry_end > end or k > entry_end:
            return None
        key = _key(data[i + 4 : k])
        if k == entry_end:  # an entry without a value: a Value with no kind set
            out[key] = None
            i = entry_end
            continue
        value_len = data[k + 1]
        if data[k] != value_tag or value_len >= 0x80 or k + 2 + value_len != entry_end:
            return None
        if value_len == 0:
            out[key] = None
        else:
            tag = data[k + 2]
            if tag == number and value_len == 9:  # number_value, fixed64
                out[key] = unpack(data, k + 3)[0]
            elif tag == string and data[k + 3] == value_len - 2:  # string_value
                out[key] = data[k + 4 : entry_end].decode()
            elif tag == boolean and value_len == 2 and data[k + 3] < 2:  # bool_value
                out[key] = data[k + 3] == 1
            elif tag == null and value_len == 2 and data[k + 3] == 0:  # null_value
                out[key] = None
            else:
                return None
        i = entry_end
    return out


def _fast_request(data: bytes) -> DecideCall | None:
    """The request decoded without upb, or None when it is not in the simple shape."""
    flow = version = request_id = ""
    input_: dict[str, Any] | None = None
    i = 0
    end = len(data)
    while i < end:
        tag = data[i]
        n = data[i + 1]
        if n < 0x80:
            i += 2
        else:
            n, i = read_varint(data, i + 1)
        stop = i + n
        if stop > end:
            return None
        if tag == _R_FLOW:
            flow = data[i:stop].decode()
        elif tag == _R_VERSION:
            version = data[i:stop].decode()
        elif tag == _R_REQUEST_ID:
            request_id = data[i:stop].decode()
        elif tag == _R_INPUT and input_ is None:
            input_ = _fast_struct(data, i, stop)
            if input_ is None:
                return None
        else:  # unknown field, other wire type, or a second input to merge: protobuf decides
            return None
        i = stop
    return DecideCall(flow, version, request_id, {} if input_ is None else input_)


def decode_decide_request(data: bytes) -> DecideCall | Malformed:
    """Serialized DecideRequest -> DecideCall; Malformed when the bytes are not a DecideRequest
    or its input has more than ``MAX_INPUT_FIELDS`` entries (decoding stops after that many).

    Never raises, so the server can answer INVALID_ARGUMENT instead of gRPC's own INTERNAL.
    """
    try:
        call = _fast_request(data)
    except (IndexError, ValueError, struct.error):  # truncated or not UTF-8: let upb judge
        call = None
    except _TooManyFields:
        return Malformed(TOO_MANY_FIELDS, "input", "too_many_fields")
    if call is not None:
        return call
    try:
        request = pb.DecideRequest.FromString(data)
    except DecodeError as exc:
        return Malformed(f"request is not a valid verdict.v1.DecideRequest: {exc}")
    if len(request.input.fields) > MAX_INPUT_FIELDS:  # upb parsed it in C; do not convert it in Python
        return Malformed(TOO_MANY_FIELDS, "input", "too_many_fields")
    return DecideCall(request.flow, request.version, request.request_id, struct_to_dict(request.input))


def tolerant_decoder(message_class: Any) -> Callable[[bytes], Any]:
    """A request deserializer for ``message_class`` that returns Malformed instead of raising.

    gRPC answers a deserializer's exception with its own INTERNAL; the servicer turns Malformed into
    INVALID_ARGUMENT instead (the caller sent bytes that are not the method's request).
    """
    name = message_class.DESCRIPTOR.full_name

    def decode(data: bytes) -> Any:
        try:
            return message_class.FromString(data)
        except DecodeError as exc:
            return Malformed(f"request is not a valid {name}: {exc}")

    return decode
