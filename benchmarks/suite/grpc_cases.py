"""The gRPC cases: grpc_echo (Ping, Verdict's transport floor), grpc_decide on the same server, and
grpc_echo_plain (Ping on a stock grpcio server, benchmarks/suite/plain_echo.py: grpcio's own floor).

For each worker count one ``verdict serve`` process is started; for each concurrency one load
generator process sends Ping and Decide alternately, round by round. With one worker, the plain
echo server runs beside it and its Ping takes its turn in the same rounds, with the same client. Decide requests are the real
inputs of every bundled flow, interleaved; each Ping carries a payload of the same mean size.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.suite.inputs import FlowInputs
from benchmarks.suite.loadgen import write_payloads
from benchmarks.suite.manifest import Profile
from benchmarks.suite.server import PlainEchoProcess, ServeProcess
from benchmarks.suite.stats import median_of_rounds
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

__all__ = ["PING", "DECIDE", "run_grpc"]

SERVICE = "/verdict.v1.DecisionService/"
PING = SERVICE + "Ping"
DECIDE = SERVICE + "Decide"


def _interleave(flows: Sequence[FlowInputs]) -> list[bytes]:
    out: list[bytes] = []
    longest = max(len(f.requests) for f in flows)
    for i in range(longest):
        out += [f.requests[i] for f in flows if i < len(f.requests)]
    return out


def _ping_payloads(decide: Sequence[bytes]) -> list[bytes]:
    mean = sum(len(d) for d in decide) // len(decide)
    body = max(0, mean - 3)  # tag + 2-byte length
    return [pb.PingRequest(payload=bytes([i % 251]) * body).SerializeToString() for i in range(16)]


def _channels(workers: int, concurrency: int) -> int:
    return 1 if workers == 1 else min(concurrency, 4 * workers)


def _loadgen(spec: dict[str, Any], project: Path) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(project))
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.suite.loadgen"], input=json.dumps(spec).encode(),
        capture_output=True, cwd=project, env=env, timeout=60 + 4 * spec["rounds"] * spec["round_seconds"] * len(spec["methods"]),
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}): {done.stderr.decode(errors='replace')[-2000:]}")
    return json.loads(done.stdout)


def run_grpc(
    root: Path, flows: Sequence[FlowInputs], profile: Profile, workdir: Path, project: Path,
    cases: Sequence[str] = ("grpc_echo", "grpc_decide", "grpc_echo_plain"),
) -> list[dict[str, Any]]:
    """Every (workers, concurrency) configuration of the profile; one result row per case and configuration."""
    decide = _interleave(flows)
    files = {
        "grpc_echo": write_payloads(workdir / "ping.bin", _ping_payloads(decide)),
        "grpc_decide": write_payloads(workdir / "decide.bin", decide),
    }
    files["grpc_echo_plain"] = files["grpc_echo"]
    methods = [
        {"name": name, "path": PING if name == "grpc_echo" else DECIDE, "payloads": str(files[name]),
         "check": "echo" if name == "grpc_echo" else "decide"}
        for name in ("grpc_echo", "grpc_decide") if name in cases
    ]
    label = "+".join(f.flow for f in flows)
    rows: list[dict[str, Any]] = []
    for workers in profile.workers:
        plain = "grpc_echo_plain" in cases and workers == 1
        with ServeProcess(root, workers=workers, workdir=workdir / f"serve-{workers}", project=project) as server, \
                (PlainEchoProcess(workdir=workdir / "plain", project=project) if plain else contextlib.nullcontext()) as echo:
            plain_method = [{"name": "grpc_echo_plain", "path": PING, "payloads": str(files["grpc_echo_plain"]), "check": "echo",
                      "target": echo.target, "server_pids": echo.pids}] if plain else []
            for concurrency in profile.concurrency:
                spec = {
                    "target": server.target, "server_pids": server.pids, "concurrency": concurrency,
                    "channels": _channels(workers, concurrency), "warmup": profile.grpc_warmup,
                    "requests": profile.grpc_requests, "rounds": profile.grpc_rounds,
                    "round_seconds": profile.grpc_round_seconds, "methods": methods + plain_method,
                }
                result = _loadgen(spec, project)
                for name, per_round in result["rounds"].items():
                    stats = median_of_rounds(per_round)
                    extra = {
                        key: sorted(float(r[key]) for r in per_round)[len(per_round) // 2]
                        for key in ("client_cpu_us_per_request", "server_cpu_us_per_request", "server_switches_per_request") if key in per_round[0]
                    }
                    rows.append({
                        "name": name, "flow": label if name == "grpc_decide" else None, **stats,
                        "concurrency": concurrency, "workers": workers, "client": result["client"],
                        "channels": spec["channels"], "errors": sum(int(r["errors"]) for r in per_round), **extra,
                    })
    return rows
