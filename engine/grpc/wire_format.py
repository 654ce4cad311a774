"""The protobuf wire format, as the fast codec (``engine.grpc.wire``, ``engine.grpc.encoder``) writes and reads it.

Wire facts used (protobuf encoding guide, "Message Structure"): a tag is the varint
``field_number << 3 | wire_type``; strings and sub-messages are ``tag, varint length, bytes``;
doubles are ``tag, 8 bytes little-endian``; proto3 omits a scalar at its default. Every tag is
derived from the generated descriptors (``field_tag``), never written by hand, so a renumbered
field in proto/ changes the codec with it; a test checks each against protobuf's own serializer.
"""

from __future__ import annotations

import struct
from typing import Any

from google.protobuf.descriptor import FieldDescriptor

__all__ = [
    "CACHE_LIMIT", "delimited", "double_field", "enum_field", "field_tag", "field_tags", "one_byte_tag", "read_varint",
    "text_field", "varint_bytes",
]

_pack_double = struct.Struct("<d").pack

CACHE_LIMIT = 4096  # entries per cache of the fast codec; beyond it values are encoded every time


def read_varint(data: bytes, i: int) -> tuple[int, int]:
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

_SMALL = [bytes((n,)) for n in range(128)]


def varint_bytes(n: int) -> bytes:
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


def delimited(tag: bytes, body: bytes) -> bytes:
    n = len(body)
    return tag + (_SMALL[n] if n < 0x80 else varint_bytes(n)) + body


def text_field(tag: bytes, text: str) -> bytes:
    """A string field, omitted when empty (proto3 default)."""
    if not text:
        return b""
    return delimited(tag, text.encode())


def enum_field(tag: bytes, value: int) -> bytes:
    return tag + varint_bytes(value) if value else b""


def double_field(tag: bytes, value: float) -> bytes:
    """A double field, always written (so -0.0 and NaN survive exactly)."""
    return tag + _pack_double(value)


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
    return varint_bytes(field.number << 3 | _WIRE_TYPES[field.type])


def field_tags(message: Any, *names: str) -> tuple[bytes, ...]:
    """``field_tag`` of each of ``names``, in order."""
    return tuple(field_tag(message, name) for name in names)


def one_byte_tag(tag: bytes) -> int:
    """A one-byte tag as the int the decoder compares with (fields 1-15 have one-byte tags)."""
    if len(tag) != 1:
        raise ValueError(f"tag {tag!r} is not one byte: the fast decoder reads one-byte tags only")
    return tag[0]
