"""The gRPC load generator, run as its own process: ``python -m benchmarks.suite.loadgen < spec.json``.

It sends pre-serialized requests (bytes in, bytes out: the client spends nothing on protobuf) to
one or more methods, alternating the methods round by round so that drift on a noisy machine hits
them alike. Concurrency 1 uses the blocking client (the lowest client overhead); higher
concurrency uses ``grpc.aio`` with that many coroutines, each waiting for its answer before
sending again (closed loop). Every round is bounded by a request count and a time limit. Besides
latencies it reports the CPU time the client and the server processes spent per request, read
from ``os.times`` and ``/proc/<pid>/stat``, so a client-bound result can be told apart, and the
server's context switches per request (voluntary and involuntary, summed over the server's threads
from ``/proc/<pid>/task/*/status``): thread hand-offs and contention for the interpreter lock show
there, whatever the load of the machine.

The spec (JSON on stdin)::

    {"target": "127.0.0.1:PORT", "server_pids": [..], "concurrency": 8, "channels": 1,
     "warmup": 500, "requests": 5000, "rounds": 3, "round_seconds": 20,
     "methods": [{"name": "grpc_echo", "path": "/verdict.v1.DecisionService/Ping",
                  "payloads": "FILE", "check": "echo"}, ...]}

Payload files hold length-prefixed messages (4-byte little-endian length, then the bytes).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import struct
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from benchmarks.suite.stats import summarize

__all__ = ["main", "read_payloads", "write_payloads"]

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def write_payloads(path: Path, payloads: Sequence[bytes]) -> Path:
    """Write length-prefixed payloads to ``path``."""
    with path.open("wb") as f:
        for p in payloads:
            f.write(struct.pack("<I", len(p)))
            f.write(p)
    return path


def read_payloads(path: Path) -> list[bytes]:
    """The payloads written by ``write_payloads``."""
    data = Path(path).read_bytes()
    out, i = [], 0
    while i < len(data):
        (n,) = struct.unpack_from("<I", data, i)
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def _server_cpu_seconds(pids: Sequence[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime
        except (OSError, IndexError, ValueError):
            return float("nan")
    return total


def _server_switches(pids: Sequence[int]) -> float:
    """Context switches so far of every thread of the server processes (NaN when unreadable)."""
    total = 0
    for pid in pids:
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return float("nan")
        for tid in tasks:
            try:
                with open(f"/proc/{pid}/task/{tid}/status") as f:
                    total += sum(int(line.split()[1]) for line in f if "ctxt_switches:" in line)
            except (OSError, ValueError, IndexError):
                continue  # a thread that ended meanwhile
    return float(total)


def _client_cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _checker(kind: str) -> Callable[[bytes, bytes], bool]:
    if kind == "echo":
        return lambda sent, got: sent == got
    if kind == "decide":
        from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

        return lambda sent, got: pb.DecideResponse.FromString(got).action in (1, 2, 3)
    raise ValueError(f"unknown check {kind!r}")


def _options(channels: int) -> list[tuple[str, Any]]:
    # Channels with the same arguments share one connection; a local pool gives each its own,
    # so that several server processes behind SO_REUSEPORT all get connections.
    return [("grpc.use_local_subchannel_pool", 1)] if channels > 1 else []


def _target(spec: dict[str, Any], m: dict[str, Any]) -> str:
    """A method's server: its own ``target`` (grpc_echo_plain's server), else the spec's."""
    return str(m.get("target", spec["target"]))


def _pids(spec: dict[str, Any], m: dict[str, Any]) -> list[int]:
    return list(m.get("server_pids", spec.get("server_pids", [])))


class _Round:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def result(self, latencies: list[int], elapsed: float, errors: int, cpu: tuple[float, float], switches: float) -> dict[str, Any]:
        n = len(latencies)
        stats: dict[str, Any] = summarize(latencies) if n else {"n": 0}
        stats["rps"] = n / elapsed if elapsed > 0 else 0.0
        stats["errors"] = errors
        stats["elapsed_s"] = round(elapsed, 3)
        if n:
            stats["client_cpu_us_per_request"] = cpu[0] / n * 1e6
            stats["server_cpu_us_per_request"] = cpu[1] / n * 1e6
            stats["server_switches_per_request"] = switches / n
        return stats


def _run_sync(spec: dict[str, Any], methods: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    rounds = _Round(spec)
    by_target = {t: grpc.insecure_channel(t) for t in {_target(spec, m) for m in methods}}
    calls = {m["name"]: by_target[_target(spec, m)].unary_unary(m["path"]) for m in methods}
    pc = time.perf_counter_ns
    for m in methods:  # warm-up, checking answers
        check, call, payloads = _checker(m["check"]), calls[m["name"]], m["data"]
        for i in range(spec["warmup"]):
            p = payloads[i % len(payloads)]
            if not check(p, call(p, timeout=30)):
                raise SystemExit(f"{m['name']}: a wrong answer during warm-up")
    out: dict[str, list[dict[str, Any]]] = {m["name"]: [] for m in methods}
    for _ in range(spec["rounds"]):
        for m in methods:
            call, payloads = calls[m["name"]], m["data"]
            k = len(payloads)
            lat: list[int] = []
            errors = 0
            pids = _pids(spec, m)
            c0, s0, w0 = _client_cpu_seconds(), _server_cpu_seconds(pids), _server_switches(pids)
            start = time.perf_counter()
            deadline = start + spec["round_seconds"]
            for i in range(spec["requests"]):
                p = payloads[i % k]
                t0 = pc()
                try:
                    call(p, timeout=30)
                except grpc.RpcError:
                    errors += 1
                    continue
                lat.append(pc() - t0)
                if (i & 63) == 0 and time.perf_counter() > deadline:
                    break
            elapsed = time.perf_counter() - start
            cpu = (_client_cpu_seconds() - c0, _server_cpu_seconds(pids) - s0)
            out[m["name"]].append(rounds.result(lat, elapsed, errors, cpu, _server_switches(pids) - w0))
    for channel in by_target.values():
        channel.close()
    return out


async def _run_aio(spec: dict[str, Any], methods: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    rounds = _Round(spec)
    nch = max(1, int(spec.get("channels", 1)))
    by_target = {t: [grpc.aio.insecure_channel(t, options=_options(nch)) for _ in range(nch)]
                 for t in {_target(spec, m) for m in methods}}
    channels = [ch for chs in by_target.values() for ch in chs]
    calls = {m["name"]: [ch.unary_unary(m["path"]) for ch in by_target[_target(spec, m)]] for m in methods}
    concurrency = spec["concurrency"]
    pc = time.perf_counter_ns

    async def one_round(m: dict[str, Any], requests: int, seconds: float, check: bool) -> tuple[list[int], int, float]:
        payloads, stubs = m["data"], calls[m["name"]]
        k = len(payloads)
        counter = itertools.count()
        lat: list[int] = []
        errors = [0]
        verify = _checker(m["check"]) if check else None
        deadline = time.perf_counter() + seconds

        async def worker(w: int) -> None:
            call = stubs[w % len(stubs)]
            while True:
                i = next(counter)
                if i >= requests or time.perf_counter() > deadline:
                    return
                p = payloads[i % k]
                t0 = pc()
                try:
                    got = await call(p, timeout=30)
                except grpc.RpcError:
                    errors[0] += 1
                    continue
                lat.append(pc() - t0)
                if verify is not None and not verify(p, got):
                    raise SystemExit(f"{m['name']}: a wrong answer during warm-up")

        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        return lat, errors[0], time.perf_counter() - start

    for m in methods:
        await one_round(m, spec["warmup"], spec["round_seconds"], check=True)
    out: dict[str, list[dict[str, Any]]] = {m["name"]: [] for m in methods}
    for _ in range(spec["rounds"]):
        for m in methods:
            pids = _pids(spec, m)
            c0, s0, w0 = _client_cpu_seconds(), _server_cpu_seconds(pids), _server_switches(pids)
            lat, errors, elapsed = await one_round(m, spec["requests"], spec["round_seconds"], check=False)
            cpu = (_client_cpu_seconds() - c0, _server_cpu_seconds(pids) - s0)
            out[m["name"]].append(rounds.result(lat, elapsed, errors, cpu, _server_switches(pids) - w0))
    for ch in channels:
        await ch.close()
    return out


def main() -> int:
    """Read the spec from stdin, run it, print the per-round results as JSON on stdout."""
    spec = json.loads(sys.stdin.read())
    methods = [dict(m, data=read_payloads(Path(m["payloads"]))) for m in spec["methods"]]
    if spec["concurrency"] == 1:
        result, client = _run_sync(spec, methods), "sync"
    else:
        result, client = asyncio.run(_run_aio(spec, methods)), "aio"
    json.dump({"client": client, "rounds": result}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
