"""Reference conversions between protobuf messages and the core's plain values.

These work on parsed messages and are the definition of what the edge means: ``engine.grpc.wire``
is the fast path the server uses on the request path, and tests prove it gives the same results.
The CLI uses these to print the exact document the service would answer.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from google.protobuf import json_format, struct_pb2

from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.types import Decision

__all__ = [
    "decision_to_response",
    "flows_to_response",
    "response_to_dict",
    "struct_to_dict",
    "to_struct",
    "value_to_python",
]


def value_to_python(value: struct_pb2.Value) -> Any:
    """One ``google.protobuf.Value`` as a plain value; numbers stay floats, null is None."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return value.number_value
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return value.bool_value
    if kind == "struct_value":
        return struct_to_dict(value.struct_value)
    if kind == "list_value":
        return [value_to_python(v) for v in value.list_value.values]
    return None  # null_value, or no kind set at all


def struct_to_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A ``google.protobuf.Struct`` as a plain dict, without json_format's round trip."""
    return {key: value_to_python(value) for key, value in struct.fields.items()}


def to_struct(data: Mapping[str, Any]) -> struct_pb2.Struct:
    """A JSON-like mapping as a Struct (ints become doubles, as on the wire)."""
    struct = struct_pb2.Struct()
    struct.update(data)
    return struct


def decision_to_response(decision: Decision) -> pb.DecideResponse:
    """The core's Decision as the contract's DecideResponse."""
    outcome = decision.outcome
    return pb.DecideResponse(
        decision_id=decision.decision_id,
        action=cast("pb.Action", int(outcome.action)),  # the core numbers its actions as the proto does
        reasons=[
            pb.Reason(
                code=r.code,
                message=r.message,
                source=r.source,
                rule_id=r.rule_id,
                feature=r.feature,
                contribution=r.contribution,
            )
            for r in outcome.reasons
        ],
        scores=dict(outcome.scores),
        flow=decision.flow,
        version=decision.version,
        revision=decision.revision,
        models=dict(decision.models),
        fired_rules=[
            pb.FiredRule(
                id=f.id,
                ruleset=f.ruleset,
                action=cast("pb.Action", int(f.action)),
                reason_code=f.reason_code,
                priority=f.priority,
            )
            for f in outcome.fired
        ],
        eval_us=decision.eval_us,
        route=decision.route,
        request_id=decision.request_id,
        notice_reasons=[
            pb.NoticeReason(code=n.code, text=n.text, source=n.source, feature=n.feature) for n in outcome.notice
        ],
        fallback=bool(outcome.fallbacks),
        fallback_step=outcome.fallbacks[0].step if outcome.fallbacks else "",
        fallback_reason=outcome.fallbacks[0].reason if outcome.fallbacks else "",
    )


def flows_to_response(flows: Mapping[str, list[str]], live: Mapping[str, str]) -> pb.ListFlowsResponse:
    """Loaded flows (name -> versions) and their live versions as a ListFlowsResponse."""
    return pb.ListFlowsResponse(
        flows=[
            pb.FlowInfo(name=name, live_version=live[name], versions=list(versions))
            for name, versions in sorted(flows.items())
        ]
    )


def response_to_dict(response: pb.DecideResponse) -> dict[str, Any]:
    """A DecideResponse as JSON-ready data: the proto's field names, the action as its name."""
    return json_format.MessageToDict(
        response,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
