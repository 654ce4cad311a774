"""Tests of the reference conversions between protobuf messages and the core's values."""

import math

from google.protobuf import json_format, struct_pb2

from engine.grpc.convert import (
    decision_to_response,
    flows_to_response,
    response_to_dict,
    struct_to_dict,
    to_struct,
)
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.types import Action

from .grpc_fakes import make_decision


def test_struct_to_dict_gives_plain_values():
    """Numbers come out as floats, null as None, nested structs and lists as dicts and lists."""
    data = {"n": 3, "x": 2.5, "s": "rent", "b": True, "z": None, "o": {"k": [1, "a", None, False]}}
    out = struct_to_dict(to_struct(data))
    assert out == {"n": 3.0, "x": 2.5, "s": "rent", "b": True, "z": None, "o": {"k": [1.0, "a", None, False]}}
    assert type(out["n"]) is float and type(out["b"]) is bool


def test_struct_to_dict_agrees_with_json_format():
    """The hand-written walk gives what protobuf's own json_format gives."""
    data = {"a": -0.5, "b": "é", "c": [1, {"d": None}], "e": {}, "f": [], "g": 1e300}
    struct = to_struct(data)
    assert struct_to_dict(struct) == json_format.MessageToDict(struct)


def test_value_without_kind_is_none():
    """A Value with no kind set (possible on the wire) reads as null, not as an error."""
    struct = struct_pb2.Struct()
    struct.fields["empty"].SetInParent()
    assert struct_to_dict(struct) == {"empty": None}


def test_decision_to_response_carries_every_field():
    """Every field of a Decision reaches the DecideResponse, the action as the proto enum."""
    d = make_decision()
    r = decision_to_response(d)
    assert r.decision_id == "d-1" and r.request_id == "req-1"
    assert r.action == pb.DECLINE
    assert (r.flow, r.version, r.revision, r.route) == ("credit_application", "1", "ab" * 32, "live")
    assert dict(r.models) == {"credit_default": "1@0123456789ab"}
    assert dict(r.scores) == {"pd": 0.71}
    assert math.isclose(r.eval_us, 12.5)
    assert [(x.code, x.source, x.rule_id, x.feature) for x in r.reasons] == [
        ("HIGH_RISK_SCORE", "rule", "RISK-001", ""),
        ("SHORT_EMPLOYMENT", "model", "RISK-001", "seniority"),
    ]
    assert r.reasons[1].contribution == 0.42
    assert [(f.id, f.ruleset, f.action, f.reason_code, f.priority) for f in r.fired_rules] == [
        ("RISK-001", "credit.risk_score", pb.DECLINE, "HIGH_RISK_SCORE", 80),
        ("AFF-002", "credit.affordability", pb.REVIEW, "INCOME_NOT_STATED", 40),
    ]


def test_proto_actions_match_core_actions():
    """The proto enum and the core's Action have the same names and numbers."""
    assert {a.name: int(a) for a in Action} == {
        name: number for name, number in pb.Action.items() if name != "ACTION_UNSPECIFIED"
    }


def test_response_to_dict_uses_proto_names_and_action_names():
    """The JSON document has the proto's field names, the action by name and every field present."""
    doc = response_to_dict(decision_to_response(make_decision(Action.APPROVE, reasons=(), fired=(), models={})))
    assert doc["action"] == "APPROVE"
    assert doc["reasons"] == [] and doc["fired_rules"] == [] and doc["models"] == {}
    assert set(doc) == {f.name for f in pb.DecideResponse.DESCRIPTOR.fields}


def test_flows_to_response_sorts_and_names_live_versions():
    """ListFlows lists flows by name with their versions and live version."""
    r = flows_to_response({"z": ["1"], "a": ["1", "2"]}, {"z": "1", "a": "2"})
    assert [(f.name, f.live_version, list(f.versions)) for f in r.flows] == [("a", "2", ["1", "2"]), ("z", "1", ["1"])]
