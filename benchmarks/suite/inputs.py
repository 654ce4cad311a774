"""Real requests from the bundled data, exactly as the server's wire codec hands them to the core.

Each input is built as a ``DecideRequest``, serialized, and decoded by ``engine.grpc.wire`` (so
numbers are doubles, as on the wire); the serialized bytes are what the gRPC load generator sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.datasets import read_card_payments, read_credit_applications
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.wire import Malformed, decode_decide_request

__all__ = ["FlowInputs", "card_rows", "credit_rows", "flow_inputs"]

def credit_rows(root: Path, limit: int) -> list[dict[str, Any]]:
    """Applications from data/credit_data.csv as credit_application inputs (label dropped)."""
    return read_credit_applications(root / "data" / "credit_data.csv", limit)


def card_rows(root: Path, limit: int) -> list[dict[str, Any]]:
    """Payments from data/card_payments.csv as card_payment inputs (label dropped)."""
    return read_card_payments(root / "data" / "card_payments.csv", limit)


_READERS = {"credit_application": credit_rows, "card_payment": card_rows}
# The version whose inputs a flow's bundled rows are, pinned on every request ("": the live one):
# data/card_payments.csv carries version 1's counters, which version 2 (live) computes itself and refuses.
_VERSIONS = {"card_payment": "1"}


@dataclass(frozen=True)
class FlowInputs:
    """One flow's inputs: as the core receives them, and as serialized DecideRequests."""

    flow: str
    decoded: tuple[dict[str, Any], ...]
    requests: tuple[bytes, ...]
    version: str = ""  # the version every request pins ("": the live one)


def flow_inputs(root: Path, flow: str, limit: int, data_root: Path | None = None) -> FlowInputs:
    """``limit`` real inputs of a bundled flow (data from ``data_root``, default ``root``)."""
    reader = _READERS.get(flow)
    if reader is None:
        raise ValueError(f"no bundled data for flow {flow!r}; known: {', '.join(_READERS)}")
    decoded: list[dict[str, Any]] = []
    requests: list[bytes] = []
    version = _VERSIONS.get(flow, "")
    for row in reader(data_root or root, limit):
        message = pb.DecideRequest(flow=flow, version=version)
        message.input.update(row)
        data = message.SerializeToString()
        call = decode_decide_request(data)
        if isinstance(call, Malformed):  # pragma: no cover - we built it
            raise ValueError(call.message)
        decoded.append(call.input)
        requests.append(data)
    return FlowInputs(flow, tuple(decoded), tuple(requests), version)
