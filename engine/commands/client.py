"""``verdict client``: send one input to a running server and print its answer as JSON."""

from __future__ import annotations

import argparse
from typing import Any

from engine.commands._channel import add_connection_flags, call_metadata, open_channel
from engine.commands._io import UsageError, as_doubles, print_json, read_input, report

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``client FLOW --input FILE|- [--target HOST:PORT] [--version V] [--request-id ID]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "client",
        help="call a running server's Decide and print the answer as JSON",
        description="Send one input to DecisionService.Decide of a running server and print the answer.",
    )
    p.add_argument("flow", help="flow name, e.g. credit_application")
    p.add_argument("--input", "-i", required=True, help="JSON file with the input fields, or - for stdin")
    p.add_argument("--target", default="127.0.0.1:50051", help="server address (default 127.0.0.1:50051)")
    p.add_argument("--version", default="", help="flow version (default: the live one)")
    p.add_argument("--request-id", default="", help="request id to send")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
    add_connection_flags(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Call Decide; exit 2 when the server rejects the request (or the caller), 1 when the call fails otherwise."""
    import grpc

    from engine.grpc.convert import response_to_dict
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
    from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
    from engine.grpc.status import field_errors_from, omitted_field_errors

    try:
        data = read_input(args.input)
        request = pb.DecideRequest(flow=args.flow, version=args.version, request_id=args.request_id)
        try:
            request.input.update(as_doubles(data))
        except (TypeError, ValueError, OverflowError) as exc:
            raise UsageError(f"input cannot be sent as a google.protobuf.Struct: {exc}") from None
        metadata = call_metadata(args)
        channel = open_channel(args)
    except UsageError as exc:
        report(str(exc))
        return 2
    with channel:
        try:
            response = pb_grpc.DecisionServiceStub(channel).Decide(request, timeout=args.timeout, metadata=metadata)
        except grpc.RpcError as exc:
            code = exc.code()
            report(f"{code.name}: {exc.details()}")
            for error in field_errors_from(exc.trailing_metadata()):
                report(f"  {error['field']}: {error['message']} [{error['code']}]")
            omitted = omitted_field_errors(exc.trailing_metadata())
            if omitted:
                report(f"  and {omitted} more")
            client_fault = {
                grpc.StatusCode.INVALID_ARGUMENT,
                grpc.StatusCode.NOT_FOUND,
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                grpc.StatusCode.ALREADY_EXISTS,
                grpc.StatusCode.UNAUTHENTICATED,
                grpc.StatusCode.PERMISSION_DENIED,
            }
            return 2 if code in client_fault else 1
    print_json(response_to_dict(response))
    return 0
