"""grpc_echo_plain's server: a stock grpcio server echoing ``/verdict.v1.DecisionService/Ping``.

Nothing of Verdict's server stack: no interceptors, no health or reflection services, no
logging, no (de)serialisation (the generic handler gets and returns the raw bytes; a
``PingRequest`` and its ``PingResponse`` have the same bytes, so the load generator's echo check
holds). The configuration is grpcio's stock sync server with a thread pool of the same size as
``verdict serve``'s default (16 threads), so the difference between ``grpc_echo`` and
``grpc_echo_plain`` is Verdict's own server stack. Run as ``python -m benchmarks.suite.plain_echo
[THREADS]``; it prints ``{"event": "serving", "port": P, "pid": PID}`` on stderr when ready and
stops on SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from concurrent import futures

import grpc

__all__ = ["main"]

THREADS = 16  # verdict serve's default --threads


def _echo(request: bytes, context: grpc.ServicerContext) -> bytes:
    return request


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM; exit 0."""
    args = sys.argv[1:] if argv is None else argv
    threads = int(args[0]) if args else THREADS
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "verdict.v1.DecisionService", {"Ping": grpc.unary_unary_rpc_method_handler(_echo)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(json.dumps({"event": "serving", "port": port, "pid": os.getpid(), "threads": threads}), file=sys.stderr, flush=True)
    stop.wait()
    server.stop(1).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
