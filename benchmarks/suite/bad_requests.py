"""The bad_request_cost case: the server CPU of the worst bad request a client can send, per good decision.

A client can send requests up to the server's size limit (64 KiB) built to make the check as
costly as possible. For each kind below one ``verdict serve`` process (one worker, decision log
off) gets the same number of sequential calls from a default client in this process; the server
process's CPU time over the batch (utime + stime from ``/proc/<pid>/stat``) divided by the calls is
the cost. The kind that costs most is reported again as kind ``worst``; the manifest's target
divides it by the cost of kind ``good`` (real credit applications). Every bad kind must get
INVALID_ARGUMENT (never RESOURCE_EXHAUSTED: the reply must fit a default client's metadata limit).

Kinds (all credit_application requests just under ``LIMIT`` bytes unless said otherwise):

- ``unknown_fields``: the case grpc-field-errors-trailer-overflow's shape, short unknown names.
- ``unknown_long_names``: 255 unknown names of ~230 characters, each close to a real field
  (the most "did you mean" work a request can ask for).
- ``too_many_fields``: as many one-character-value fields as fit (~4,000).
- ``long_values``: known text fields with 30,000-character values.
- ``long_request_id``: a 60,000-character request id.
- ``malformed``: 60,000 bytes that are not a DecideRequest.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from benchmarks.suite.grpc_cases import DECIDE
from benchmarks.suite.inputs import FlowInputs
from benchmarks.suite.loadgen import _server_cpu_seconds
from benchmarks.suite.manifest import Profile
from benchmarks.suite.server import ServeProcess
from benchmarks.suite.stats import median_of_rounds, summarize
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

__all__ = ["BAD_KINDS", "LIMIT", "bad_payloads", "run_bad_requests"]

LIMIT = 64 * 1024 - 512  # just under the default max_message_bytes, leaving room for framing
FLOW = "credit_application"
BAD_KINDS = ("unknown_fields", "unknown_long_names", "too_many_fields", "long_values", "long_request_id", "malformed")


def _request(inp: dict[str, Any], **fields: str) -> bytes:
    message = pb.DecideRequest(flow=FLOW, **fields)
    message.input.update(inp)
    return message.SerializeToString()


def _fill(base: dict[str, Any], name: Callable[[int], str], limit: int, most: int = 20_000) -> bytes:
    """The request with as many extra fields ``name(i): 1`` as fit in ``limit`` bytes (at most ``most``)."""

    def build(k: int) -> bytes:
        return _request({**base, **{name(i): 1 for i in range(k)}})

    lo, hi = 0, most  # binary search for the largest count that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if len(build(mid)) <= limit:
            lo = mid
        else:
            hi = mid - 1
    return build(lo)


def bad_payloads(good: dict[str, Any], limit: int = LIMIT) -> dict[str, bytes]:
    """One serialized request of each bad kind, each at most ``limit`` bytes (built from one good input)."""
    return {
        "unknown_fields": _fill(good, lambda i: f"application_attribute_{i:04d}", limit, most=255 - len(good)),
        "unknown_long_names": _fill({}, lambda i: "amount" + "y" * 220 + f"{i:04d}", limit, most=255),
        "too_many_fields": _fill({}, lambda i: f"{i:x}", limit),
        "long_values": _request(dict(good, home="h" * 30_000, job="j" * 30_000)),
        "long_request_id": _request(good, request_id="r" * 60_000),
        "malformed": b"\x0a\xff\xff\x03" + b"\xff" * 60_000,
    }


def _batch(call: Callable[..., Any], payloads: Sequence[bytes], n: int, pids: Sequence[int]) -> tuple[dict[str, Any], dict[str, int]]:
    """``n`` sequential calls: latency summary, server CPU µs per call, and the status codes seen."""
    codes: dict[str, int] = {}
    lat: list[int] = []
    pc = time.perf_counter_ns
    s0 = _server_cpu_seconds(pids)
    for i in range(n):
        t0 = pc()
        try:
            call(payloads[i % len(payloads)], timeout=30)
            code = "OK"
        except grpc.RpcError as exc:
            code = exc.code().name
        lat.append(pc() - t0)
        codes[code] = codes.get(code, 0) + 1
    cpu = _server_cpu_seconds(pids) - s0
    stats: dict[str, Any] = summarize(lat)
    stats["server_cpu_us_per_request"] = cpu / n * 1e6
    return stats, codes


def run_bad_requests(root: Path, credit: FlowInputs, profile: Profile, workdir: Path, project: Path) -> list[dict[str, Any]]:
    """One row per kind (good, each bad kind, and worst); rounds alternate the kinds so drift hits them alike."""
    good = list(credit.requests)
    bad = bad_payloads(dict(credit.decoded[0]))
    kinds: dict[str, list[bytes]] = {"good": good, **{k: [v] for k, v in bad.items()}}
    n = max(200, min(profile.grpc_requests, 2000))
    per_round: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds}
    seen: dict[str, dict[str, int]] = {k: {} for k in kinds}
    with ServeProcess(root, workers=1, workdir=workdir / "serve-bad", project=project) as server, \
            grpc.insecure_channel(server.target) as channel:
        call = channel.unary_unary(DECIDE)  # raw bytes, a default client (8 KiB metadata limit)
        for payloads in kinds.values():  # warm-up
            _batch(call, payloads, max(20, profile.grpc_warmup // 10), server.pids)
        for _ in range(profile.grpc_rounds):
            for kind, payloads in kinds.items():
                stats, codes = _batch(call, payloads, n, server.pids)
                per_round[kind].append(stats)
                for code, count in codes.items():
                    seen[kind][code] = seen[kind].get(code, 0) + count
    rows = []
    for kind, rounds in per_round.items():
        row = {"name": "bad_request_cost", "flow": FLOW, "kind": kind, **median_of_rounds(rounds),
               "server_cpu_us_per_request": statistics.median(r["server_cpu_us_per_request"] for r in rounds),
               "statuses": seen[kind], "request_bytes": max(len(p) for p in kinds[kind])}
        rows.append(row)
    worst = max((r for r in rows if r["kind"] != "good"), key=lambda r: r["server_cpu_us_per_request"])
    rows.append(dict(worst, kind="worst", worst_kind=worst["kind"]))
    return rows
