"""What a shadow version adds to the caller's latency.

Two copies of the bundled policy root differ only in ``policies/credit_application/routing.yaml``:
``live: "1"`` alone, and ``live: "1"`` with ``shadow: ["2"]`` (version 2 evaluated on every
request, off the caller's path, by the Decider's shadow worker). For each, real credit
applications (data/credit_data.csv) are decided by N caller threads, after a warm-up; the
latency of each call as the caller sees it is recorded (p50/p99/p999, microseconds), and the
shadow evaluations still queued are drained before the next case. The shadow worker competes
with the callers for the interpreter (one GIL) and the CPU, so this is the honest cost of
shadowing, not zero. With ``--grpc`` the same two roots are served by ``verdict serve`` (no
decision log) and called over loopback from N client threads.

    python benchmarks/shadow_latency.py [--requests 4000] [--rounds 3] [--grpc] [--out results.json]

Prints a table, the ratios with / without shadow, how many shadow outcomes were recorded and
dropped (in-process: the Decider's counters; --grpc: the server's, read through GetStatus) and the
load average (the machine may be shared), and writes JSON with the machine, the commit and every
number. Results: docs/versions-and-routing.md, "Cost of shadow versions".
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.clients import timed_clients  # noqa: E402
from engine.policy.documents import ROOT_DIRS  # noqa: E402
from engine.policy.loader import load_policies  # noqa: E402
from engine.runtime.service import Decider  # noqa: E402

ROUTINGS = {"no shadow": 'live: "1"\n', "shadow v2": 'live: "1"\nshadow: ["2"]\n'}
CONCURRENCY = (1, 8)
WARMUP = 200


def applications(n: int) -> list[dict[str, Any]]:
    """Real credit applications as flow inputs (missing cells left out)."""
    rows: list[dict[str, Any]] = []
    with (ROOT / "data/credit_data.csv").open(newline="") as f:
        for raw in csv.DictReader(f):
            row: dict[str, Any] = {}
            for column, cell in raw.items():
                name = column.lower()
                if name == "status" or cell == "":
                    continue
                if name == "records":
                    row[name] = cell == "yes"
                elif name in ("home", "marital", "job"):
                    row[name] = cell
                else:
                    row[name] = float(cell)
            rows.append(row)
            if len(rows) >= n:
                break
    return rows


def make_root(base: Path, routing: str) -> Path:
    """A copy of the bundled policies, rules and models with `routing` for credit_application."""
    for name in ROOT_DIRS:
        shutil.copytree(ROOT / name, base / name, ignore=shutil.ignore_patterns("*.png", "report.md", "tests"))
    (base / "policies/credit_application/routing.yaml").write_text(routing)
    return base


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"p50": at(0.50), "p99": at(0.99), "p999": at(0.999), "mean": statistics.fmean(ordered)}


def run_threads(threads: int, requests: int, call: Any, inputs: list[dict[str, Any]]) -> tuple[list[float], float]:
    """`requests` calls split over `threads` threads; per-call latencies (us) and wall seconds."""
    per_thread = requests // threads

    def calls_of(n: int) -> list[Callable[[], object]]:
        return [functools.partial(call, inputs[(n * per_thread + i) % len(inputs)]) for i in range(per_thread)]

    samples, elapsed = timed_clients(threads, calls_of)
    return [s for chunk in samples for s in chunk], elapsed


def in_process(roots: dict[str, Path], inputs: list[dict[str, Any]], requests: int, rounds: int) -> list[dict[str, Any]]:
    results = []
    for name, root in roots.items():
        decider = Decider(load_policies(root), shadow_queue=100_000)
        for data in inputs[:WARMUP]:
            decider.decide("credit_application", data)
        decider.drain_shadows(120)
        decided = WARMUP
        for threads in CONCURRENCY:
            per_round = []
            for _ in range(rounds):
                samples, wall = run_threads(threads, requests, lambda d: decider.decide("credit_application", d), inputs)  # noqa: B023 (called within this iteration only)
                drained_at = time.perf_counter()
                decider.drain_shadows(300)
                decided += len(samples)
                per_round.append({**percentiles(samples), "rps": len(samples) / wall, "drain_s": time.perf_counter() - drained_at})
            results.append({**_median_case("in-process", name, threads, per_round, decider), "decided_so_far": decided})
        decider.close()
    return results


def _median_case(mode: str, name: str, threads: int, per_round: list[dict[str, float]], decider: Decider | None) -> dict[str, Any]:
    """The median of each number over the rounds (and the decider's shadow counters so far)."""
    case: dict[str, Any] = {key: statistics.median(r[key] for r in per_round) for key in per_round[0]}
    case.update(mode=mode, routing=name, threads=threads, rounds=len(per_round))
    if decider is not None:
        case["shadow_decisions"] = sum(v for k, v in decider.metrics.snapshot().items() if k.startswith("shadow_decisions"))
        case["shadow_dropped"] = sum(v for k, v in decider.metrics.snapshot().items() if k.startswith("shadow_dropped"))
    return case


def over_grpc(roots: dict[str, Path], inputs: list[dict[str, Any]], requests: int, rounds: int) -> list[dict[str, Any]]:
    import grpc

    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
    from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

    messages = []
    for data in inputs:
        message = pb.DecideRequest(flow="credit_application")
        message.input.update(data)
        messages.append(message)
    results = []
    for name, root in roots.items():
        env = dict(os.environ, VERDICT_LOG_FORMAT="json", PYTHONUNBUFFERED="1")
        cmd = [sys.executable, "-m", "engine.cli", "serve", "--root", str(root), "--port", "0", "--audit", "off", "--threads", "8", "--reload-interval", "0"]
        proc = subprocess.Popen(cmd, cwd=root, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
        try:
            port = _wait_serving(proc)
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = pb_grpc.DecisionServiceStub(channel)
                by_input = {id(d): m for d, m in zip(inputs, messages)}
                call = lambda d: stub.Decide(by_input[id(d)], timeout=30)  # noqa: E731, B023 (called within this iteration only)
                for data in inputs[:WARMUP]:
                    call(data)
                for threads in CONCURRENCY:
                    per_round = []
                    for _ in range(rounds):
                        samples, wall = run_threads(threads, requests, call, inputs)
                        per_round.append({**percentiles(samples), "rps": len(samples) / wall})
                        time.sleep(1.0)  # let the server's shadow queue drain between rounds
                    results.append(_median_case("grpc", name, threads, per_round, None))
                time.sleep(1.0)
                counters = pb_grpc.PolicyServiceStub(channel).GetStatus(pb.StatusRequest(), timeout=30).metrics
                for case in results[-len(CONCURRENCY):]:  # the server's totals for this routing
                    case["server_shadow_decisions"] = sum(v for k, v in counters.items() if k.startswith("shadow_decisions"))
                    case["server_shadow_dropped"] = sum(v for k, v in counters.items() if k.startswith("shadow_dropped"))
                    case["server_requests"] = WARMUP + len(CONCURRENCY) * rounds * requests
        finally:
            proc.terminate()
            proc.wait(30)
    return results


def _wait_serving(proc: subprocess.Popen[str]) -> int:
    """The port of a starting `verdict serve`, once it serves; its log is read to the end meanwhile.

    The log must be drained for as long as the server runs: a full pipe would block the server
    in the middle of a measurement.
    """
    assert proc.stderr is not None
    stderr = proc.stderr
    port: list[int] = []
    serving = threading.Event()
    tail: list[str] = []

    def read() -> None:
        for line in stderr:
            tail[:] = [*tail[-20:], line]
            if line.startswith("{"):
                event = json.loads(line)
                if event.get("event") == "listening":
                    port.append(int(event["port"]))
                elif event.get("event") == "serving":
                    serving.set()
        serving.set()  # the server exited

    threading.Thread(target=read, name="server-log", daemon=True).start()
    if not serving.wait(120) or not port or proc.poll() is not None:
        raise RuntimeError("verdict serve did not start:\n" + "".join(tail))
    return port[0]


def ratios(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Shadow over no shadow, per mode and concurrency: p50, p99 and throughput."""
    base = {(r["mode"], r["threads"]): r for r in results if r["routing"] == "no shadow"}
    out = []
    for r in results:
        b = base.get((r["mode"], r["threads"]))
        if r["routing"] == "no shadow" or b is None:
            continue
        out.append({"mode": r["mode"], "threads": r["threads"], "p50": r["p50"] / b["p50"], "p99": r["p99"] / b["p99"], "rps": r["rps"] / b["rps"]})
    return out


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {
        "python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(), "system": platform.platform(),
        "commit": commit, "loadavg_1m_at_end": os.getloadavg()[0],  # other work on a shared machine shows here
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="calls per case and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case (the median is reported)")
    parser.add_argument("--grpc", action="store_true", help="also measure through verdict serve over loopback")
    parser.add_argument("--out", type=Path, help="write the JSON results here")
    args = parser.parse_args()
    load_at_start = os.getloadavg()[0]
    inputs = applications(2000)
    with tempfile.TemporaryDirectory() as tmp:
        roots = {name: make_root(Path(tmp) / str(i), routing) for i, (name, routing) in enumerate(ROUTINGS.items())}
        results = in_process(roots, inputs, args.requests, args.rounds)
        if args.grpc:
            results += over_grpc(roots, inputs, args.requests, args.rounds)
    print(f"load average (1 min): {load_at_start:.2f} at the start, {os.getloadavg()[0]:.2f} at the end; {os.cpu_count()} CPUs")
    print(f"{'mode':<11} {'routing':<10} {'threads':>7} {'p50 us':>9} {'p99 us':>9} {'p999 us':>9} {'rps':>8}")
    for r in results:
        print(f"{r['mode']:<11} {r['routing']:<10} {r['threads']:>7} {r['p50']:>9.1f} {r['p99']:>9.1f} {r['p999']:>9.1f} {r['rps']:>8.0f}")
    print(f"\nshadow / no shadow: {'mode':<11} {'threads':>7} {'p50':>6} {'p99':>6} {'rps':>6}")
    for q in ratios(results):
        print(f"{'':<20}{q['mode']:<11} {q['threads']:>7} {q['p50']:>6.2f} {q['p99']:>6.2f} {q['rps']:>6.2f}")
    shadowed = [r for r in results if "shadow_decisions" in r]
    if shadowed:
        last = [r for r in shadowed if r["threads"] == CONCURRENCY[-1]]
        print("in-process: " + "; ".join(
            f"{r['routing']}: {int(r['decided_so_far'])} requests, {int(r['shadow_decisions'])} shadow outcomes, {int(r['shadow_dropped'])} dropped"
            for r in last
        ))
    for r in results:
        if r["mode"] == "grpc" and r["threads"] == CONCURRENCY[-1]:
            print(f"grpc: {r['routing']}: {r['server_requests']} requests, {int(r['server_shadow_decisions'])} shadow outcomes, "
                  f"{int(r['server_shadow_dropped'])} dropped")
    document = {
        "benchmark": "shadow_latency", "machine": {**machine(), "loadavg_1m_at_start": load_at_start},
        "requests": args.requests, "rounds": args.rounds,
        "results": results, "ratios": ratios(results),
    }
    if args.out:
        args.out.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
