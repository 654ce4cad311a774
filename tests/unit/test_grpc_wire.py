"""The fast wire codec gives exactly what protobuf's own parser and serializer give."""

import math
import random
import struct

import pytest
from google.protobuf import struct_pb2

from engine.grpc import wire, wire_format
from engine.grpc.convert import decision_to_response, struct_to_dict
from engine.grpc.encoder import ResponseEncoder
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.wire import DecideCall, Malformed, decode_decide_request
from engine.types import Action, FiredRule, Reason

from .grpc_fakes import make_decision

CREDIT = {
    "seniority": 9, "home": "rent", "time": 60, "age": 30, "marital": "married", "records": False,
    "job": "freelance", "expenses": 73, "income": 129.0, "assets": 0.0, "debt": None, "amount": 800, "price": 846,
}


def _request(data, **fields):
    request = pb.DecideRequest(**fields)
    request.input.update(data)
    return request


def _reference(data: bytes):
    request = pb.DecideRequest.FromString(data)
    return DecideCall(request.flow, request.version, request.request_id, struct_to_dict(request.input))


def _same(a, b):
    """Equal, counting NaN equal to NaN and telling -0.0 from 0.0."""
    if isinstance(a, float) and isinstance(b, float):
        return struct.pack("<d", a) == struct.pack("<d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b


def _random_value(rng, depth=0, flat=False):
    nested = ["struct", "list"] if depth < 2 and not flat else []
    kind = rng.choice(["num", "num", "int", "str", "str", "bool", "null", *nested])
    if kind == "num":
        return rng.choice([rng.uniform(-1e6, 1e6), 0.0, -0.0, math.inf, -math.inf, math.nan, 1e-300])
    if kind == "int":
        return rng.randint(-(10**6), 10**6)
    if kind == "str":
        return "".join(rng.choice("aé€😀 _-\u0000x") for _ in range(rng.choice([0, 1, 5, 60, 125, 126, 127, 200])))
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "struct":
        return {f"k{i}": _random_value(rng, depth + 1) for i in range(rng.randint(0, 3))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]


def _random_key(rng, short=False):
    return "".join(rng.choice("abcdé_😀") for _ in range(rng.choice([0, 1, 8, 40] + ([] if short else [124, 130]))))


def test_decodes_a_credit_application_on_the_fast_path():
    """A typical request is decoded without upb and equals protobuf's own reading."""
    data = _request(CREDIT, flow="credit_application", version="1", request_id="r-9").SerializeToString()
    fast = wire._fast_request(data)
    assert fast is not None
    assert _same(fast, _reference(data))
    assert fast.input["seniority"] == 9.0 and fast.input["records"] is False and fast.input["debt"] is None


@pytest.mark.parametrize("seed", range(4))
def test_decoding_random_requests_agrees_with_protobuf(seed):
    """1,000 random flat and nested inputs decode the same through the fast path and through upb."""
    rng = random.Random(seed)
    fast_hits = 0
    for _ in range(250):
        flat = rng.random() < 0.5  # half like real clients' inputs, half anything
        data = {_random_key(rng, flat): _random_value(rng, flat=flat) for _ in range(rng.randint(0, 14))}
        raw = _request(data, flow=rng.choice(["", "credit_application", "f" * 200]), request_id=_random_key(rng))
        raw = raw.SerializeToString()
        fast_hits += wire._fast_request(raw) is not None
        assert _same(decode_decide_request(raw), _reference(raw)), data
    assert fast_hits > 50  # the fast path itself was exercised, not only the fallback


def _entry(key: bytes, value: bytes) -> bytes:
    body = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(value)]) + value
    return b"\x0a" + bytes([len(body)]) + body


def _input(*entries: bytes) -> bytes:
    body = b"".join(entries)
    return b"\x22" + bytes([len(body)]) + body


@pytest.mark.parametrize(
    "raw",
    [
        b"",  # an empty request
        b"\x0a\x01f" + _input(_entry(b"a", b"")),  # an entry whose Value has no kind
        b"\x0a\x01f" + _input(b"\x0a\x03\x0a\x01a"),  # an entry without a value at all
        b"\x0a\x01f" + _input(_entry(b"a", b"\x20\x02")),  # bool sent as 2
        b"\x0a\x01f" + _input(_entry(b"a", b"\x11" + struct.pack("<d", 1.0) + b"\x1a\x01x")),  # two kinds: last wins
        b"\x0a\x01f" + _input(b"\x0a\x05\x12\x00\x0a\x01a"),  # value before key
        b"\x0a\x01f" + _input(_entry(b"a", b"\x08\x00")) + _input(_entry(b"b", b"\x20\x01")),  # input twice: merged
        b"\x0a\x01f" + _input(_entry(b"a", b"\x08\x00"), _entry(b"a", b"\x20\x01")),  # repeated key: last wins
        b"\x0a\x01f\x0a\x01g",  # flow twice: last wins
        b"\x0a\x01f\x28\x07",  # unknown varint field 5
        b"\x0a\x01f\xa2\x06\x01x",  # unknown length-delimited field 100
    ],
)
def test_unusual_encodings_read_as_protobuf_reads_them(raw):
    """Odd but valid wire encodings give protobuf's meaning (by fallback where needed)."""
    assert _same(decode_decide_request(raw), _reference(raw))


@pytest.mark.parametrize(
    "raw",
    [
        b"\x0a\x05ab",  # truncated string
        b"\x0a\x02\xff\xfe",  # flow not UTF-8
        b"\x22\x06" + _entry(b"a", b"\x1a\x02\xc3")[:6],  # truncated struct
        b"\x0a\x01f" + _input(_entry(b"a", b"\x1a\x01\xff")),  # string value not UTF-8
        b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",  # garbage tag
    ],
)
def test_malformed_bytes_are_reported_not_raised(raw):
    """Bytes that are not a DecideRequest give Malformed with protobuf's reason, never an exception."""
    result = decode_decide_request(raw)
    assert isinstance(result, Malformed)
    assert "DecideRequest" in result.message


def test_keys_are_interned_and_shared_between_requests():
    """Field names decode to the same string object on every request (fast dict lookups downstream)."""
    data = _request({"seniority": 1}).SerializeToString()
    a, b = decode_decide_request(data), decode_decide_request(data)
    (ka,), (kb,) = a.input.keys(), b.input.keys()
    assert ka is kb


def _parsed(encoder: ResponseEncoder, decision):
    return pb.DecideResponse.FromString(encoder.encode(decision))


def test_encoded_response_equals_protobuf_message():
    """The bytes the encoder writes parse to decision_to_response's message, also on cache hits."""
    encoder = ResponseEncoder()
    for decision in [make_decision(), make_decision(Action.REVIEW, request_id="", score=0.0), make_decision()]:
        assert _parsed(encoder, decision) == decision_to_response(decision)


@pytest.mark.parametrize("seed", range(2))
def test_random_decisions_encode_like_protobuf(seed):
    """Random decisions (long, unicode, empty strings; negative priorities; many reasons) round-trip."""
    rng = random.Random(seed)
    encoder = ResponseEncoder(limit=8)  # small caches: hits, misses and the limit all happen

    def text():
        return "".join(rng.choice("aZ9_é€😀") for _ in range(rng.choice([0, 1, 7, 126, 127, 128, 300])))

    for _ in range(150):
        reasons = tuple(
            Reason(text(), text(), rng.choice(["rule", "model"]), text(), text(), rng.choice([0.0, -0.0, rng.uniform(-2, 2)]))
            for _ in range(rng.randint(0, 5))
        )
        fired = tuple(
            FiredRule(rng.choice(["R1", "R2", text()]), text(), rng.choice(list(Action)), text(), rng.randint(-(2**31), 2**31 - 1))
            for _ in range(rng.randint(0, 4))
        )
        decision = make_decision(
            rng.choice(list(Action)),
            request_id=text(),
            decision_id=text(),
            score=rng.uniform(0, 1),
            reasons=reasons,
            fired=fired,
            models={text(): text() for _ in range(rng.randint(0, 3))},
        )
        assert _parsed(encoder, decision) == decision_to_response(decision)


def test_models_change_under_the_same_revision_is_not_served_from_cache():
    """The cached header of a flow version is checked against the decision's models."""
    encoder = ResponseEncoder()
    first = make_decision(models={"m": "1@aaa"})
    second = make_decision(models={"m": "2@bbb"})
    assert dict(_parsed(encoder, first).models) == {"m": "1@aaa"}
    assert dict(_parsed(encoder, second).models) == {"m": "2@bbb"}


def test_negative_zero_and_nan_scores_survive():
    """Doubles are written bit for bit: -0.0 stays negative, NaN stays NaN."""
    decision = make_decision(score=-0.0)
    assert math.copysign(1, _parsed(ResponseEncoder(), decision).scores["pd"]) == -1
    assert math.isnan(_parsed(ResponseEncoder(), make_decision(score=math.nan)).scores["pd"])


def test_priority_outside_int32_falls_back_to_protobuf():
    """What the fast path cannot encode goes to protobuf's serializer, which rejects it."""
    fired = (FiredRule("R", "s", Action.DECLINE, "X", 2**40),)
    with pytest.raises(ValueError):
        ResponseEncoder().encode(make_decision(fired=fired))


def _with_one_field(message_class, field):
    """A message of ``message_class`` with only ``field`` set, to a value protobuf writes."""
    from google.protobuf.descriptor import FieldDescriptor

    message = message_class()
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        target = getattr(message, field.name)
        if field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                target["k"].SetInParent()
            else:
                target["k"] = 1.5 if value_field.type == FieldDescriptor.TYPE_DOUBLE else "v"
        elif field.is_repeated:
            target.add()
        else:
            target.SetInParent()
    else:
        value = {
            FieldDescriptor.TYPE_STRING: "x", FieldDescriptor.TYPE_DOUBLE: 1.5, FieldDescriptor.TYPE_BOOL: True,
            FieldDescriptor.TYPE_INT32: 7,
        }.get(field.type)
        if field.type == FieldDescriptor.TYPE_ENUM:
            value = field.enum_type.values[-1].number
        setattr(message, field.name, value)
    return message


_CODEC_MESSAGES = [pb.DecideRequest, pb.DecideResponse, pb.Reason, pb.FiredRule, pb.NoticeReason]


@pytest.mark.parametrize(
    ("message_class", "name"),
    [(m, f.name) for m in _CODEC_MESSAGES for f in m.DESCRIPTOR.fields]
    + [(struct_pb2.Value, f.name) for f in struct_pb2.Value.DESCRIPTOR.fields],
)
def test_every_field_tag_is_the_one_protobuf_writes(message_class, name):
    """field_tag (from the descriptor) equals the bytes protobuf's serializer writes first for that field alone."""
    field = message_class.DESCRIPTOR.fields_by_name[name]
    data = _with_one_field(message_class, field).SerializeToString()
    assert data.startswith(wire_format.field_tag(message_class.DESCRIPTOR, name))


def test_the_fast_decoder_reads_one_byte_tags_only():
    """A tag of a field numbered past 15 is refused when the decoder's constants are built, not misread."""
    assert len(wire_format.field_tag(pb.DecideResponse.DESCRIPTOR, "notice_reasons")) == 2
    with pytest.raises(ValueError, match="not one byte"):
        wire_format.one_byte_tag(wire_format.field_tag(pb.DecideResponse.DESCRIPTOR, "notice_reasons"))
