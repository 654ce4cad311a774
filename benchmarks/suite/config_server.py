"""A candidate server configuration for benchmarks/server_config.py: Verdict's DecisionServicer in
grpcio's sync server (a thread pool) or in ``grpc.aio`` (the decision run inline on the event loop).

Both host the same ``engine.grpc.servicer.DecisionServicer`` (wire codec, encoder, error mapping)
over the same ``Decider`` as ``verdict serve --audit off --idempotency-window 0`` (metrics flushed
every second), with Ping and Decide registered like the real server's; nothing else (no health,
reflection or other services). The comparison asks one question: does ``grpc.aio`` with the
decision inline beat the sync server with a thread pool for the same work?

    python -m benchmarks.suite.config_server {sync|aio} THREADS ROOT

It prints ``{"event": "serving", "port": P, "pid": PID}`` on stderr when ready and stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

from engine.grpc.servicer import SERVICE_NAME, DecisionServicer, handlers
from engine.runtime.service import load_decider

__all__ = ["main"]


def _serving(port: int, mode: str, threads: int) -> None:
    print(json.dumps({"event": "serving", "port": port, "pid": os.getpid(), "mode": mode, "threads": threads}),
          file=sys.stderr, flush=True)


def _aio_handlers(servicer: DecisionServicer) -> grpc.GenericRpcHandler:
    """Ping and Decide as coroutines that run the sync servicer's code inline on the event loop."""
    sync = handlers(servicer)

    async def decide(call: Any, context: Any) -> bytes:
        return servicer.Decide(call, context)

    async def ping(payload: bytes, context: Any) -> bytes:
        return payload

    return grpc.method_handlers_generic_handler(SERVICE_NAME, {
        "Decide": grpc.unary_unary_rpc_method_handler(decide, request_deserializer=sync["Decide"].request_deserializer),
        "Ping": grpc.unary_unary_rpc_method_handler(ping),
    })


def _run_sync(servicer: DecisionServicer, threads: int) -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="verdict-rpc"))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, handlers(servicer)),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _serving(port, "sync", threads)
    stop.wait()
    server.stop(1).wait()


async def _run_aio(servicer: DecisionServicer) -> None:
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((_aio_handlers(servicer),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    _serving(port, "aio", 0)
    await stop.wait()
    await server.stop(1)


def main(argv: list[str] | None = None) -> int:
    """Serve until SIGTERM; exit 0."""
    mode, threads, root = (sys.argv[1:] if argv is None else argv)[:3]
    decider = load_decider(Path(root))
    decider.metrics.start()  # as verdict serve does (engine/app.py)
    servicer = DecisionServicer(decider)
    if mode == "aio":
        asyncio.run(_run_aio(servicer))
    else:
        _run_sync(servicer, int(threads))
    decider.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
