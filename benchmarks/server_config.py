"""Which server configuration, and is the load generator the limit? Measured in one run.

Servers, all on loopback, one process each, serving the bundled policies copied to a temporary
root (decision log off, idempotency off, as the suite's gRPC cases):

* ``serve-tN``: ``verdict serve --threads N`` for each N of ``--threads`` (grpcio's sync server,
  a pool of N request threads; the shipped configuration is ``--threads 16``);
* ``sync-t16`` and ``aio``: Verdict's DecisionServicer and Decider alone in grpcio's sync server
  (16 threads) and in ``grpc.aio`` with the decision run inline on the event loop
  (benchmarks/suite/config_server.py): the same work under the two server models;
* ``plain``: the stock grpcio echo server of ``grpc_echo_plain`` (benchmarks/suite/plain_echo.py).

One load generator process (benchmarks/suite/loadgen.py, the suite's own) sends Ping (echo) and
Decide (the real inputs of both bundled flows, interleaved) to every server, the servers taking
turns round by round, at each concurrency; per server and method it reports the median over
rounds of p50/p99, calls per second, and the server's CPU time and context switches per call.

Then the load generator itself is checked: Ping to the plain server at concurrency C from one
load generator process, against two processes at C/2 each, at the same time (their calls per
second summed), rounds alternating. If two processes get clearly more, one client process is
the limit; on a 2-core machine shared by client and server, they should not.

    python benchmarks/server_config.py [--threads 16,4] [--concurrency 1,32] [--rounds 3] [--seconds 5] [--json FILE]

Results: benchmarks/README.md, "The gRPC path".
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from benchmarks.suite.benchroot import copy_root  # noqa: E402
from benchmarks.suite.grpc_cases import DECIDE, PING, _interleave, _ping_payloads  # noqa: E402
from benchmarks.suite.inputs import flow_inputs  # noqa: E402
from benchmarks.suite.loadgen import write_payloads  # noqa: E402
from benchmarks.suite.machine import machine_info  # noqa: E402
from benchmarks.suite.server import ConfigServerProcess, PlainEchoProcess, ServeProcess  # noqa: E402

FLOWS = ("credit_application", "card_payment")
KEYS = ("p50_us", "p99_us", "rps", "server_cpu_us_per_request", "server_switches_per_request", "client_cpu_us_per_request")


def _loadgen(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load generator process on ``spec``; its JSON result."""
    return _result(_start(spec))


def _start(spec: dict[str, Any]) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.suite.loadgen"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            cwd=PROJECT, env=dict(os.environ, PYTHONPATH=str(PROJECT)))
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(spec).encode())
    proc.stdin.close()
    return proc


def _result(proc: subprocess.Popen[bytes]) -> dict[str, Any]:
    """The JSON result of a started load generator process; raises when it failed."""
    assert proc.stdout is not None
    out = proc.stdout.read()
    if proc.wait() != 0:
        raise RuntimeError(f"load generator failed ({proc.returncode})")
    result: dict[str, Any] = json.loads(out)
    return result


def _median(rounds: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {k: statistics.median(float(r[k]) for r in rounds) for k in KEYS if k in rounds[0]}


def compare_servers(servers: dict[str, Any], files: dict[str, Path], concurrency: int, rounds: int, seconds: float) -> list[dict[str, Any]]:
    """Echo and Decide on every server, servers alternating round by round, at one concurrency."""
    methods = [
        {"name": f"{name}/{kind}", "path": PING if kind == "echo" else DECIDE, "payloads": str(files[kind]),
         "check": kind, "target": server.target, "server_pids": server.pids}
        for name, server in servers.items()
        for kind in (("echo",) if name == "plain" else ("echo", "decide"))
    ]
    spec = {"target": methods[0]["target"], "concurrency": concurrency, "channels": 1, "warmup": 300, "requests": 10**7,
            "rounds": rounds, "round_seconds": seconds, "methods": methods}
    result = _loadgen(spec)
    return [{"server": name.split("/")[0], "method": name.split("/")[1], "concurrency": concurrency, **_median(per_round)}
            for name, per_round in result["rounds"].items()]


def check_client(plain: Any, ping: Path, concurrency: int, rounds: int, seconds: float) -> dict[str, Any]:
    """Calls/s of one load generator process at ``concurrency`` against two at half of it each, at once."""
    def spec(c: int) -> dict[str, Any]:
        return {"target": plain.target, "server_pids": plain.pids, "concurrency": c, "channels": 1, "warmup": 300,
                "requests": 10**7, "rounds": 1, "round_seconds": seconds,
                "methods": [{"name": "echo", "path": PING, "payloads": str(ping), "check": "echo"}]}

    one: list[float] = []
    two: list[float] = []
    for _ in range(rounds):
        one.append(float(_loadgen(spec(concurrency))["rounds"]["echo"][0]["rps"]))
        procs = [_start(spec(concurrency // 2)) for _ in range(2)]
        two.append(sum(float(_result(p)["rounds"]["echo"][0]["rps"]) for p in procs))
    return {"concurrency": concurrency, "one_process_rps": statistics.median(one), "two_processes_rps": statistics.median(two),
            "ratio": statistics.median(two) / statistics.median(one), "rounds_one": one, "rounds_two": two}


def main() -> int:
    """Run the comparison; print a Markdown table; write JSON with ``--json``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", default="16,4", help="verdict serve --threads values to compare")
    parser.add_argument("--concurrency", default="1,32")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one round of one server and method")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    load_start = os.getloadavg()
    started = time.time()
    with tempfile.TemporaryDirectory(prefix="verdict-server-config-") as tmp, contextlib.ExitStack() as stack:
        work = Path(tmp)
        root = copy_root(PROJECT, work / "root")
        decide = _interleave([flow_inputs(root, flow, 2000, data_root=PROJECT) for flow in FLOWS])
        files = {"echo": write_payloads(work / "ping.bin", _ping_payloads(decide)), "decide": write_payloads(work / "decide.bin", decide)}
        servers: dict[str, Any] = {}
        for n in (int(t) for t in args.threads.split(",")):
            servers[f"serve-t{n}"] = stack.enter_context(ServeProcess(root, workdir=work / f"serve-{n}", project=PROJECT, threads=n))
        servers["sync-t16"] = stack.enter_context(ConfigServerProcess(root, mode="sync", threads=16, workdir=work / "sync", project=PROJECT))
        servers["aio"] = stack.enter_context(ConfigServerProcess(root, mode="aio", threads=0, workdir=work / "aio", project=PROJECT))
        servers["plain"] = stack.enter_context(PlainEchoProcess(workdir=work / "plain", project=PROJECT))
        rows: list[dict[str, Any]] = []
        for c in (int(x) for x in args.concurrency.split(",")):
            rows += compare_servers(servers, files, c, args.rounds, args.seconds)
        client = check_client(servers["plain"], files["echo"], max(int(x) for x in args.concurrency.split(",")), args.rounds, args.seconds)
    load_end = os.getloadavg()
    print(f"load average at start {load_start[0]:.1f}, at end {load_end[0]:.1f}; {time.time() - started:.0f} s\n")
    print("| server | method | c | p50 µs | p99 µs | calls/s | server CPU µs/call | server switches/call | client CPU µs/call |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in rows:
        print(f"| {r['server']} | {r['method']} | {r['concurrency']} | {r['p50_us']:.0f} | {r['p99_us']:.0f} | {r['rps']:.0f} | "
              f"{r.get('server_cpu_us_per_request', float('nan')):.0f} | {r.get('server_switches_per_request', float('nan')):.1f} | "
              f"{r.get('client_cpu_us_per_request', float('nan')):.0f} |")
    print(f"\nload generator check, Ping to the plain server at c={client['concurrency']}: one process {client['one_process_rps']:.0f}/s, "
          f"two processes at c={client['concurrency'] // 2} each {client['two_processes_rps']:.0f}/s ({client['ratio']:.2f}x)")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine_info(), "load_start": load_start, "load_end": load_end,
                                         "rows": rows, "client_check": client}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
