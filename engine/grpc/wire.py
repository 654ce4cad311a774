"""The fast codec the server uses on the request path.

Parsing a ``DecideRequest`` into upb messages and walking its ``Struct`` costs about 2 µs a field
in CPython (a wrapper object per map entry and per ``Value``); building a ``DecideResponse``
message field by field costs as much again. This module reads and writes the protobuf wire
format directly for the shapes real clients send, and falls back to the reference conversions in
``engine.grpc.convert`` for anything else (nested values, long varints, unknown fields, repeated
sub-messages, malformed bytes), so the meaning is always protobuf's own. Tests check both paths
agree on generated and real requests and responses.

Wire facts used (protobuf encoding): a tag is the varint ``field_number << 3 | wire_type``; strings
and sub-messages are ``tag, varint length, bytes``; doubles are ``tag, 8 bytes little-endian``.
Every tag is derived from the generated descriptors (``field_tag``), never written by hand, so a
renumbered field in proto/ changes the codec with it; a test checks each against protobuf's own
serializer.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import DecodeError

from engine.grpc.convert import decision_to_response, struct_to_dict
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.limits import MAX_INPUT_FIELDS
from engine.runtime.privacy import scrub_text
from engine.types import Decision, FiredRule

__all__ = ["DecideCall", "Malformed", "ResponseEncoder", "decode_decide_request", "field_tag", "tolerant_decoder"]

_unpack_double = struct.Struct("<d").unpack_from
_pack_double = struct.Struct("<d").pack

_CACHE_LIMIT = 4096  # entries per cache; beyond it values are encoded every time
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


# --- decoding -------------------------------------------------------------------------------


def _varint(data: bytes, i: int) -> tuple[int, int]:
    """The varint at ``data[i]`` and the index after it."""
    result = 0
    shift = 0
    while True:
        byte = data[i]
        i += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _key(raw: bytes) -> str:
    key = _key_cache.get(raw)
    if key is None:
        key = sys.intern(raw.decode())
        if len(_key_cache) < _CACHE_LIMIT:
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
            n, i = _varint(data, i + 1)
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


# --- encoding -------------------------------------------------------------------------------

_SMALL = [bytes((n,)) for n in range(128)]


def _varint_bytes(n: int) -> bytes:
    if n < 0:
        n += 1 << 64  # negative int32/int64: ten-byte two's complement
    if n < 0x80:
        return _SMALL[n]
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _delimited(tag: bytes, body: bytes) -> bytes:
    n = len(body)
    return tag + (_SMALL[n] if n < 0x80 else _varint_bytes(n)) + body


def _text(tag: bytes, text: str) -> bytes:
    """A string field, omitted when empty (proto3 default)."""
    if not text:
        return b""
    return _delimited(tag, text.encode())


def _enum(tag: bytes, value: int) -> bytes:
    return tag + _varint_bytes(value) if value else b""


def _double(tag: bytes, value: float) -> bytes:
    """A double field, always written (so -0.0 and NaN survive exactly)."""
    return tag + _pack_double(value)


# --- field tags, from the descriptors ---------------------------------------------------------

#: The wire type of each scalar field type (protobuf encoding: 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32).
_WIRE_TYPES = {
    **dict.fromkeys((FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FIXED64, FieldDescriptor.TYPE_SFIXED64), 1),
    **dict.fromkeys((FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_SFIXED32), 5),
    **dict.fromkeys((FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES, FieldDescriptor.TYPE_MESSAGE), 2),
    **dict.fromkeys((
        FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_BOOL, FieldDescriptor.TYPE_ENUM,
    ), 0),
}


def field_tag(message: Any, name: str) -> bytes:  # Any: a Descriptor, of the Python or the upb implementation
    """The tag bytes protobuf writes before field ``name`` of ``message`` (one element of it, if repeated).

    The varint of ``number << 3 | wire_type``, both read from the descriptor (protobuf encoding
    guide, "Message Structure"). Raises ``KeyError`` for a field the message does not have.
    """
    field = message.fields_by_name[name]
    return _varint_bytes(field.number << 3 | _WIRE_TYPES[field.type])


def _tags(message: Any, *names: str) -> tuple[bytes, ...]:
    return tuple(field_tag(message, name) for name in names)


def _byte(tag: bytes) -> int:
    """A one-byte tag as the int the decoder compares with (fields 1-15 have one-byte tags)."""
    if len(tag) != 1:
        raise ValueError(f"tag {tag!r} is not one byte: the fast decoder reads one-byte tags only")
    return tag[0]


_REQUEST = pb.DecideRequest.DESCRIPTOR
_R_FLOW, _R_VERSION, _R_REQUEST_ID, _R_INPUT = (_byte(t) for t in _tags(_REQUEST, "flow", "version", "request_id", "input"))
_S_FIELDS = _byte(field_tag(struct_pb2.Struct.DESCRIPTOR, "fields"))
_E_KEY, _E_VALUE = (_byte(t) for t in _tags(struct_pb2.Struct.DESCRIPTOR.fields_by_name["fields"].message_type, "key", "value"))
_V_NULL, _V_NUMBER, _V_STRING, _V_BOOL = (
    _byte(t) for t in _tags(struct_pb2.Value.DESCRIPTOR, "null_value", "number_value", "string_value", "bool_value")
)

_RESPONSE = pb.DecideResponse.DESCRIPTOR
(_T_DECISION_ID, _T_ACTION, _T_REASON, _T_SCORE, _T_FLOW, _T_VERSION, _T_REVISION, _T_MODEL, _T_FIRED, _T_EVAL_US, _T_ROUTE,
 _T_REQUEST_ID, _T_NOTICE) = _tags(
    _RESPONSE, "decision_id", "action", "reasons", "scores", "flow", "version", "revision", "models", "fired_rules", "eval_us",
    "route", "request_id", "notice_reasons",
)
_REASON_TEXTS = _tags(pb.Reason.DESCRIPTOR, "code", "message", "source", "rule_id", "feature")  # the key of ResponseEncoder._reasons, in order
_T_CONTRIBUTION = field_tag(pb.Reason.DESCRIPTOR, "contribution")
_SCORE_KEY, _SCORE_VALUE = _tags(_RESPONSE.fields_by_name["scores"].message_type, "key", "value")
_MODEL_KEY, _MODEL_VALUE = _tags(_RESPONSE.fields_by_name["models"].message_type, "key", "value")
_FIRED_ID, _FIRED_RULESET, _FIRED_ACTION, _FIRED_REASON, _FIRED_PRIORITY = _tags(
    pb.FiredRule.DESCRIPTOR, "id", "ruleset", "action", "reason_code", "priority"
)
_NOTICE_TEXTS = _tags(pb.NoticeReason.DESCRIPTOR, "code", "text", "source", "feature")
_T_FALLBACK, _T_FALLBACK_STEP, _T_FALLBACK_REASON = _tags(_RESPONSE, "fallback", "fallback_step", "fallback_reason")
_INT32 = range(-(2**31), 2**31)


class ResponseEncoder:
    """Encodes a Decision as serialized DecideResponse bytes, caching the parts rules repeat.

    A flow version's header (flow, version, revision, models), each fired rule and each reason's
    text are the same across requests; they are encoded once and reused. Thread-safe: caches
    only grow through single dict assignments, and a race at worst encodes a part twice.
    """

    def __init__(self, limit: int = _CACHE_LIMIT) -> None:
        self._limit = limit
        self._headers: dict[tuple[str, str, str], tuple[Mapping[str, str], bytes]] = {}
        self._fired: dict[FiredRule, bytes] = {}
        self._reasons: dict[tuple[str, str, str, str, str], bytes] = {}

    def encode(self, decision: Decision) -> bytes:
        """Serialized DecideResponse for ``decision``; same message as ``decision_to_response``."""
        try:
            return self._encode(decision)
        except (UnicodeEncodeError, TypeError, ValueError, OverflowError, struct.error):
            # Something the fast path does not handle: protobuf's serializer decides (and raises).
            return decision_to_response(decision).SerializeToString()

    def _encode(self, d: Decision) -> bytes:
        outcome = d.outcome
        parts = [_text(_T_DECISION_ID, d.decision_id), _enum(_T_ACTION, outcome.action)]
        reasons = self._reasons
        for r in outcome.reasons:
            key = (r.code, r.message, r.source, r.rule_id, r.feature)
            head = reasons.get(key)
            if head is None:
                head = b"".join(_text(t, s) for t, s in zip(_REASON_TEXTS, key))
                if len(reasons) < self._limit:
                    reasons[key] = head
            parts.append(_delimited(_T_REASON, head + _double(_T_CONTRIBUTION, r.contribution)))
        for name, score in outcome.scores.items():
            parts.append(_delimited(_T_SCORE, _text(_SCORE_KEY, name) + _double(_SCORE_VALUE, score)))
        parts.append(self._header(d))
        fired = self._fired
        for f in outcome.fired:
            body = fired.get(f)
            if body is None:
                body = self._fired_rule(f)
                if len(fired) < self._limit:
                    fired[f] = body
            parts.append(body)
        parts.append(_double(_T_EVAL_US, d.eval_us))
        parts.append(_text(_T_ROUTE, d.route))
        parts.append(_text(_T_REQUEST_ID, scrub_text(d.request_id)))  # a card number is echoed masked
        if outcome.fallbacks:  # fields 13-15 come before notice_reasons (20), as protobuf orders them
            first = outcome.fallbacks[0]
            parts.extend((_enum(_T_FALLBACK, 1), _text(_T_FALLBACK_STEP, first.step), _text(_T_FALLBACK_REASON, first.reason)))
        parts.extend(  # only a DECLINE of a flow with a notices: catalogue has any
            _delimited(_T_NOTICE, b"".join(
                _text(t, v) for t, v in zip(_NOTICE_TEXTS, (n.code, n.text, n.source, n.feature), strict=True)))
            for n in outcome.notice
        )
        return b"".join(parts)

    def _header(self, d: Decision) -> bytes:
        key = (d.flow, d.version, d.revision)
        cached = self._headers.get(key)
        if cached is not None and (cached[0] is d.models or cached[0] == d.models):
            return cached[1]
        header = b"".join(
            [
                _text(_T_FLOW, d.flow),
                _text(_T_VERSION, d.version),
                _text(_T_REVISION, d.revision),
                *(
                    _delimited(_T_MODEL, _text(_MODEL_KEY, name) + _text(_MODEL_VALUE, ref))
                    for name, ref in d.models.items()
                ),
            ]
        )
        if len(self._headers) < self._limit:
            self._headers[key] = (d.models, header)
        return header

    @staticmethod
    def _fired_rule(f: FiredRule) -> bytes:
        if f.priority not in _INT32:
            raise ValueError(f"priority {f.priority} of rule {f.id} is not an int32")
        body = (
            _text(_FIRED_ID, f.id)
            + _text(_FIRED_RULESET, f.ruleset)
            + _enum(_FIRED_ACTION, int(f.action))
            + _text(_FIRED_REASON, f.reason_code)
            + _enum(_FIRED_PRIORITY, f.priority)
        )
        return _delimited(_T_FIRED, body)
