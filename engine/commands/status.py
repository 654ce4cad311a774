"""``verdict status``: ask a running server what it serves and how its last reload went."""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any

from engine.commands._channel import CallFailed, add_connection_flags, call_policy_service
from engine.commands._io import write_out

__all__ = ["format_status", "metric_value", "register", "run"]


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
    add_connection_flags(p)
    p.set_defaults(run=run)


def _when(unix_ms: int) -> str:
    return dt.datetime.fromtimestamp(unix_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if unix_ms else "-"


def _problem(p: Any, indent: str = "  ") -> str:
    where = p.path + (f":{p.line}" if p.line else "")
    rule = f" rule {p.rule}:" if p.rule else ""
    warning = "warning: " if p.severity == "warning" else ""
    hint = f" (hint: {p.hint})" if p.hint else ""
    return f"{indent}{where}:{rule} {warning}[{p.code}] {p.message}{hint}"


_STATE = {"ok": "", "stale": " [STALE: its files have errors; serving its last good version]",
          "unavailable": " [UNAVAILABLE: no good version loaded; requests get FAILED_PRECONDITION]"}
_RESULT = {"ok": "OK", "refused": "REFUSED", "error": "FAILED"}


def format_status(status: Any, *, metrics: bool = False) -> str:
    """A StatusResponse as text for a person: the root, each flow and its health, the last reload."""
    lines = [f"serving revision {status.revision[:12]} since {_when(status.serving_since_unix_ms)}"
             + (f" from {status.root}" if status.root else "")]
    for flow in status.flows:
        if flow.state == "unavailable":
            lines.append(f"  {flow.name}:{_STATE['unavailable']}")
        else:
            routing = f"live {flow.live_version}"
            if flow.challenger_version:
                routing += f", challenger {flow.challenger_version} ({flow.challenger_share:.0%} by {flow.challenger_key})"
            if flow.shadow_versions:
                routing += f", shadow {', '.join(flow.shadow_versions)}"
            versions = ", ".join(f"{v} ({flow.revisions[v][:12]})" for v in flow.versions)
            routed = f"; routing {flow.routing_revision[:12]}" if flow.routing_revision else "; no routing.yaml (newest is live)"
            lines.append(f"  {flow.name}: {routing}; versions {versions}{routed}{_STATE.get(flow.state, '')}")
        lines += [_problem(p, "    ") for p in flow.problems if p.code != "test_failed"]
        failed_tests = sum(1 for p in flow.problems if p.code == "test_failed")
        if failed_tests:
            lines.append(f"    {failed_tests} policy test{'s' if failed_tests != 1 else ''} failed (FAIL lines below)")
    if status.HasField("last_reload"):
        last = status.last_reload
        result = _RESULT.get(last.result) or ("OK" if last.ok else "REFUSED")
        lines.append(f"last reload ({last.trigger}, {_when(last.at_unix_ms)}): {result}: {last.message}")
        lines += [_problem(p) for p in last.problems]
        lines += [f"  FAIL {t}" for t in last.failed_tests]
        lines += [_problem(p) for p in last.warnings]
    if metrics:
        lines += [f"  {name} = {metric_value(value)}" for name, value in sorted(status.metrics.items())]
    return "\n".join(lines)


def metric_value(value: float) -> str:
    """A metric as people read it: whole numbers in full (a Unix time as 1795970000, not 1.79597e+09)."""
    if value == value and abs(value) < 1e15:
        if value == int(value):
            return str(int(value))
        if abs(value) >= 1e5:  # e.g. a Unix time with its fraction: milliseconds, never an exponent
            return f"{value:.3f}"
    return f"{value:.6g}"


def failed(status: Any) -> bool:
    """Whether the status reports a failure: the last reload failed or crashed, or a flow is held back."""
    last_failed = status.HasField("last_reload") and not status.last_reload.ok
    return last_failed or any(flow.state not in ("", "ok") for flow in status.flows)


def run(args: argparse.Namespace) -> int:
    """Print the status; 0 when all is well, 1 when the last reload failed (or crashed) or a flow is held back."""
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

    try:
        status = call_policy_service(args, "GetStatus", pb.StatusRequest())
    except CallFailed as exc:
        return exc.exit_code
    write_out(format_status(status, metrics=args.metrics) + "\n")
    return 1 if failed(status) else 0
