"""The gRPC edge of Verdict: wire conversion, error mapping, the servicer and the server.

Nothing outside this package imports ``grpc`` or the generated ``_pb2`` modules (``gen/``,
produced by ``scripts/gen_proto.py``). The core (``engine.runtime.service``) knows nothing of gRPC.
"""

__all__: list[str] = []
