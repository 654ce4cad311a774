"""``verdict reload``: ask a running server to reload its policy root now and print the outcome."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from engine.commands._channel import CallFailed, add_connection_flags, call_policy_service

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``reload [--target HOST:PORT]`` with the connection flags."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "reload",
        help="make a running server reload its policies now",
        description="Call PolicyService.Reload: the server loads, compiles and tests its policy root now (as on "
        "SIGHUP) and serves the new state only if all pass. With --workers N only the worker that answers "
        "reloads; send SIGHUP to the parent process to reload them all.",
    )
    p.add_argument("--target", default="127.0.0.1:50051", help="server address (default 127.0.0.1:50051)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the outcome (default 60)")
    add_connection_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print the outcome; 0 when the new state serves, 1 when it was refused or the call failed, 2 on bad usage."""
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

    try:
        result = call_policy_service(args, "Reload", pb.ReloadRequest())
    except CallFailed as exc:
        return exc.exit_code
    lines = [f"reload: {'OK' if result.ok else 'REFUSED'}: {result.message} (revision {result.revision[:12] or '-'})"]
    for p in result.problems:
        where = p.path + (f":{p.line}" if p.line else "")
        lines.append(f"  {where}: [{p.code}] {p.message}")
    lines += [f"  FAIL {t}" for t in result.failed_tests]
    sys.stdout.write("\n".join(lines) + "\n")
    return 0 if result.ok else 1
