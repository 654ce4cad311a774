"""``verdict decide``: decide one input in-process and print the service's answer as JSON.

The input goes through the same steps as a gRPC request (a serialized DecideRequest decoded by
the server's codec) and the answer is the same serialized DecideResponse the service would send,
printed with the proto's field names and the action by name. So for the same input and versions
``verdict decide`` and the service give identical decisions (ids and timings aside).
"""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.commands._io import (
    ROOT_HELP,
    UsageError,
    as_doubles,
    load_decider_or_report,
    policy_root,
    print_json,
    read_input,
    report,
)
from engine.errors import FlowNotFound, FlowUnavailable, InvalidInput, RequestTooLarge, VerdictError

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``decide FLOW --input FILE|- [--version V] [--root DIR] [--request-id ID]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "decide",
        help="decide one input in-process and print the decision as JSON",
        description="Decide one input with the policies under --root and print the DecideResponse as JSON.",
    )
    p.add_argument("flow", help="flow name, e.g. credit_application")
    p.add_argument("--input", "-i", required=True, help="JSON file with the input fields, or - for stdin")
    p.add_argument("--version", default="", help="flow version (default: the live one)")
    p.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    p.add_argument("--request-id", default="", help="request id to echo in the decision")
    p.set_defaults(run=run)


def _as_sent(written: Any, carried: Any) -> Any:
    """The value the service gets (`carried`, from the Struct), or the number as `written` when
    the Struct's double is another number (so validation refuses it rather than decide on it)."""
    if isinstance(written, (int, Decimal)) and not isinstance(written, bool) and isinstance(carried, float) and written != Decimal(repr(carried)):
        return written
    return carried


def run(args: argparse.Namespace) -> int:
    """Load the policies, decide, print; exit 2 for bad input, 1 for broken policies."""
    from engine.grpc.convert import response_to_dict
    from engine.grpc.encoder import ResponseEncoder
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
    from engine.grpc.wire import Malformed, decode_decide_request
    from engine.settings import SettingsError

    try:
        data = read_input(args.input)
        request = pb.DecideRequest(flow=args.flow, version=args.version, request_id=args.request_id)
        try:
            request.input.update(as_doubles(data))
        except (TypeError, ValueError, OverflowError) as exc:
            raise UsageError(f"input cannot be sent as a google.protobuf.Struct: {exc}") from None
        call = decode_decide_request(request.SerializeToString())
        if isinstance(call, Malformed):
            raise UsageError(call.message)
        root = policy_root(args.root)
    except (UsageError, SettingsError) as exc:
        report(str(exc))
        return 2
    decider = load_decider_or_report(root)
    if decider is None:
        return 1
    try:
        # The numbers as written, not as the Struct rounded them: validation refuses one that a
        # request cannot carry exactly (e.g. 9007199254740993) instead of deciding on another.
        exact = {key: _as_sent(data.get(key), value) for key, value in call.input.items()}
        decision = decider.decide(call.flow, exact, version=call.version, request_id=call.request_id)
    except InvalidInput as exc:
        more = [f"  and {exc.omitted} more"] if exc.omitted else []
        report("invalid input:\n" + "\n".join([*(f"  {e.field}: {e.message} [{e.code}]" for e in exc.errors), *more]))
        return 2
    except FlowUnavailable as exc:  # the flow's files have errors (the other flows would decide)
        report(f"{exc.flow} is not loaded; its problems:\n" + "\n".join(f"  {p}" for p in exc.problems))
        return 1
    except (FlowNotFound, RequestTooLarge) as exc:
        report(str(exc))
        return 2
    except VerdictError as exc:
        report(f"decision failed: [{exc.code}] {exc}")
        return 1
    response = pb.DecideResponse.FromString(ResponseEncoder().encode(decision))
    print_json(response_to_dict(response))
    return 0
