"""The fast codec the server uses on the request path.

Parsing a ``DecideRequest`` into upb messages and walking its ``Struct`` costs about 2 µs a field
in CPython (a wrapper object per map entry and per ``Value``); building a ``DecideResponse``
message field by field costs as much again. This module reads and writes the protobuf wire
format directly for the shapes real clients send, and falls back to the reference conversions in
``engine.grpc.convert`` for anything else (nested values, long varints, unknown fields, repeated
sub-messages, malformed bytes), so the meaning is always protobuf's own. Tests check both paths
agree on generated and real requests and responses.

Wire facts used (protobuf encoding): a tag byte is ``field_number << 3 | wire_type``; strings and
sub-messages are ``tag, varint length, bytes``; doubles are ``tag, 8 bytes little-endian``.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from google.protobuf.message import DecodeError

from engine.grpc.convert import decision_to_response, struct_to_dict
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.limits import MAX_INPUT_FIELDS
from engine.privacy import scrub_text
from engine.types import Decision, FiredRule

__all__ = ["DecideCall", "Malformed", "ResponseEncoder", "decode_decide_request", "tolerant_decoder"]

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


#: What a too-large input is told (the same words as engine.validation's own check).
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
    while i < end:
        if len(out) >= MAX_INPUT_FIELDS:  # a further entry: more than a request may carry
            raise _TooManyFields
        # map entry: 0x0a len | key: 0x0a klen bytes | value: 0x12 vlen | Value fields
        if data[i] != 0x0A or data[i + 2] != 0x0A:
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
        if data[k] != 0x12 or value_len >= 0x80 or k + 2 + value_len != entry_end:
            return None
        if value_len == 0:
            out[key] = None
        else:
            tag = data[k + 2]
            if tag == 0x11 and value_len == 9:  # number_value, fixed64
                out[key] = unpack(data, k + 3)[0]
            elif tag == 0x1A and data[k + 3] == value_len - 2:  # string_value
                out[key] = data[k + 4 : entry_end].decode()
            elif tag == 0x20 and value_len == 2 and data[k + 3] < 2:  # bool_value
                out[key] = data[k + 3] == 1
            elif tag == 0x08 and value_len == 2 and data[k + 3] == 0:  # null_value
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
        if tag == 0x0A:
            flow = data[i:stop].decode()
        elif tag == 0x12:
            version = data[i:stop].decode()
        elif tag == 0x1A:
            request_id = data[i:stop].decode()
        elif tag == 0x22 and input_ is None:
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


# DecideResponse field tags
_T_DECISION_ID = b"\x0a"
_T_ACTION = b"\x10"
_T_REASON = b"\x1a"
_T_SCORE = b"\x22"
_T_FLOW = b"\x2a"
_T_VERSION = b"\x32"
_T_REVISION = b"\x3a"
_T_MODEL = b"\x42"
_T_FIRED = b"\x4a"
_T_EVAL_US = b"\x51"
_T_ROUTE = b"\x5a"
_T_REQUEST_ID = b"\x62"
_T_FALLBACK = b"\x68"  # fallback = 13, varint: (13 << 3) | 0
_T_FALLBACK_STEP = b"\x72"  # fallback_step = 14, length-delimited
_T_FALLBACK_REASON = b"\x7a"  # fallback_reason = 15, length-delimited
_T_NOTICE = b"\xa2\x01"  # notice_reasons = 20, length-delimited: (20 << 3) | 2 = 162 as a varint
# Reason field tags: code 1, message 2, source 3, rule_id 4, feature 5, contribution 6 (double)
# FiredRule field tags: id 1, ruleset 2, action 3 (varint), reason_code 4, priority 5 (varint)
# NoticeReason field tags: code 1, text 2, source 3, feature 4
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
                head = b"".join(_text(t, s) for t, s in zip((b"\x0a", b"\x12", b"\x1a", b"\x22", b"\x2a"), key))
                if len(reasons) < self._limit:
                    reasons[key] = head
            parts.append(_delimited(_T_REASON, head + _double(b"\x31", r.contribution)))
        for name, score in outcome.scores.items():
            parts.append(_delimited(_T_SCORE, _text(b"\x0a", name) + _double(b"\x11", score)))
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
                _text(t, v) for t, v in zip((b"\x0a", b"\x12", b"\x1a", b"\x22"), (n.code, n.text, n.source, n.feature), strict=True)))
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
                    _delimited(_T_MODEL, _text(b"\x0a", name) + _text(b"\x12", ref))
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
            _text(b"\x0a", f.id)
            + _text(b"\x12", f.ruleset)
            + _enum(b"\x18", int(f.action))
            + _text(b"\x22", f.reason_code)
            + _enum(b"\x28", f.priority)
        )
        return _delimited(_T_FIRED, body)
