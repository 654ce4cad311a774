"""``verdict status``: ask a running server what it serves and how its last reload went."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
from typing import Any

from engine.commands._io import report, write_out

__all__ = ["format_status", "register", "run"]


def register(subparsers: Any) -> None:
    """Add ``status [--target HOST:PORT]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="show a running server's policy state and its last reload",
        description="Call PolicyService.GetStatus and print the serving revision, each flow's versions "
        "and routing, and the outcome of the last reload (with every problem by file and line).",
    )
    p.add_argument("--target", default="127.0.0.1:50051", help="server address (default 127.0.0.1:50051)")
    p.add_argument("--metrics", action="store_true", help="also print the server's counters")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
    p.set_defaults(run=run)


def _when(unix_ms: int) -> str:
    return dt.datetime.fromtimestamp(unix_ms / 1000, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC") if unix_ms else "-"


def format_status(status: Any, *, metrics: bool = False) -> str:
    """A StatusResponse as text for a person."""
    lines = [f"serving revision {status.revision[:12]} since {_when(status.serving_since_unix_ms)}"]
    for flow in status.flows:
        routing = f"live {flow.live_version}"
        if flow.challenger_version:
            routing += f", challenger {flow.challenger_version} ({flow.challenger_share:.0%} by {flow.challenger_key})"
        if flow.shadow_versions:
            routing += f", shadow {', '.join(flow.shadow_versions)}"
        versions = ", ".join(f"{v} ({flow.revisions[v][:12]})" for v in flow.versions)
        lines.append(f"  {flow.name}: {routing}; versions {versions}")
    if status.HasField("last_reload"):
        last = status.last_reload
        lines.append(f"last reload ({last.trigger}, {_when(last.at_unix_ms)}): {'OK' if last.ok else 'REFUSED'}: {last.message}")
        for p in last.problems:
            where = p.path + (f":{p.line}" if p.line else "")
            rule = f" rule {p.rule}:" if p.rule else ""
            hint = f" (hint: {p.hint})" if p.hint else ""
            lines.append(f"  {where}:{rule} [{p.code}] {p.message}{hint}")
        lines += [f"  FAIL {t}" for t in last.failed_tests]
    if metrics:
        lines += [f"  {name} = {value:g}" for name, value in sorted(status.metrics.items())]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the status; 0 when the last reload was OK (or none happened), 1 when it was refused."""
    import grpc

    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
    from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

    with grpc.insecure_channel(args.target) as channel:
        try:
            status = pb_grpc.PolicyServiceStub(channel).GetStatus(pb.StatusRequest(), timeout=args.timeout)
        except grpc.RpcError as exc:
            report(f"{exc.code().name}: {exc.details()}")  # type: ignore[attr-defined]
            return 1
    write_out(format_status(status, metrics=args.metrics) + "\n")
    return 1 if status.HasField("last_reload") and not status.last_reload.ok else 0
