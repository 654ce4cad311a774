"""What the decision log costs: decisions with and without it, at several concurrencies.

Cases (the manifest below): the in-process Decider deciding real card payments from N threads,
with no log, with the segment-file log (fsync per batch, the default), with the file log without
fsync (the CPU cost of masking, encoding and chaining alone) and, when a DSN is given, with the
PostgreSQL log. Each case warms up, then decides a fixed number of requests; it reports the
latency of ``decide`` per call (p50/p99/p999, microseconds), the throughput, and how many records
shared each fsync/commit. A raw ``write + fdatasync`` of one record measures the disk.
With ``--grpc`` it also runs ``verdict serve`` with ``--audit off`` and with the file log and
calls it over loopback from N client threads (client and server share the machine).

    python benchmarks/audit_log.py [--requests 4000] [--dsn postgresql://...] [--grpc] [--out results.json]

Prints a table and writes JSON with the machine, the commit and every number.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
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
from engine.audit.segments import FileStore  # noqa: E402
from engine.audit.sink import AuditSink  # noqa: E402
from engine.audit.writer import GroupCommitWriter  # noqa: E402
from engine.datasets import read_card_payments  # noqa: E402
from engine.policy.loader import load_policies  # noqa: E402
from engine.runtime.idempotency import Fingerprinter  # noqa: E402
from engine.runtime.privacy import HashKey  # noqa: E402
from engine.runtime.service import Decider  # noqa: E402

CONCURRENCY = (1, 8, 32)
SINKS = ("none", "file-nofsync", "file", "postgres")
WARMUP = 200


def payments(n: int) -> list[dict[str, Any]]:
    return [{"card_number": "4111111111111111", **row} for row in read_card_payments(ROOT / "data" / "card_payments.csv", n)]


def pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def fsync_cost(samples: int = 200) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as d:
        fd = os.open(Path(d) / "f", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        times = []
        for _ in range(samples):
            t = time.perf_counter()
            os.write(fd, b"x" * 1000 + b"\n")
            os.fdatasync(fd)
            times.append((time.perf_counter() - t) * 1e6)
        os.close(fd)
    times.sort()
    return {"p50_us": pct(times, 0.5), "p99_us": pct(times, 0.99)}


def run_case(policies: Any, sink_kind: str, threads: int, rows: list[dict[str, Any]], dsn: str | None) -> dict[str, Any]:
    key = HashKey(b"benchmark")
    writer = None
    tmp = tempfile.TemporaryDirectory()
    if sink_kind == "none":
        decider = Decider(policies)
    else:
        if sink_kind == "postgres":
            from engine.audit.postgres import PgStore

            store: Any = PgStore(dsn or "")
        else:
            store = FileStore(Path(tmp.name), fsync=sink_kind == "file")
        writer = GroupCommitWriter(store)
        decider = Decider(policies, sink=AuditSink(writer, key, Fingerprinter(key)))
    for i, row in enumerate(rows[:WARMUP]):
        decider.decide("card_payment", row, request_id=f"warm-{i}")
    if writer is not None:
        base_records, base_batches = writer.stats.records, writer.stats.batches
    work = rows[WARMUP:]

    def calls_of(k: int) -> list[Callable[[], object]]:
        return [
            functools.partial(decider.decide, "card_payment", row, request_id=f"{sink_kind}-{threads}-{k}-{i}")
            for i, row in enumerate(work[k::threads])
        ]

    latencies, elapsed = timed_clients(threads, calls_of)
    all_lat = sorted(x for part in latencies for x in part)
    result: dict[str, Any] = {
        "sink": sink_kind,
        "threads": threads,
        "requests": len(all_lat),
        "throughput_per_s": len(all_lat) / elapsed,
        "p50_us": pct(all_lat, 0.5),
        "p99_us": pct(all_lat, 0.99),
        "p999_us": pct(all_lat, 0.999),
        "mean_us": statistics.fmean(all_lat),
    }
    if writer is not None:
        writer.close()
        batches = writer.stats.batches - base_batches
        result["records_per_commit"] = (writer.stats.records - base_records) / batches if batches else None
        result["max_batch"] = writer.stats.max_batch
    tmp.cleanup()
    return result


# Long (67 lines): one benchmark scenario (start, warm up, measure, stop) read top to bottom.
def run_grpc_case(audit: bool, threads: int, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """``verdict serve`` (audit off or to a temporary directory) called from ``threads`` clients."""
    import grpc

    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
    from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

    tmp = tempfile.TemporaryDirectory()
    env = dict(os.environ, VERDICT_LOG_FORMAT="json", PYTHONPATH=str(ROOT))
    audit_arg = str(Path(tmp.name) / "audit") if audit else "off"
    cmd = [sys.executable, "-m", "engine.cli", "serve", "--port", "0", "--threads", "32", "--root", str(ROOT), "--audit", audit_arg]
    proc = subprocess.Popen(cmd, cwd=tmp.name, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    stderr = proc.stderr
    assert stderr is not None
    port = None
    for line in stderr:
        if line.startswith("{") and json.loads(line).get("event") == "serving":
            port = json.loads(line)["port"]
            break
    if port is None:
        proc.kill()
        raise RuntimeError("verdict serve did not start")
    threading.Thread(target=lambda: [None for _ in stderr], daemon=True).start()  # keep draining its log
    messages = []
    for i, row in enumerate(rows):
        m = pb.DecideRequest(flow="card_payment", request_id=f"g-{audit}-{threads}-{i}")
        m.input.update(row)
        messages.append(m)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    stub = pb_grpc.DecisionServiceStub(channel)
    for m in messages[:WARMUP]:
        stub.Decide(m, timeout=30)
    work = messages[WARMUP:]

    def calls_of(k: int) -> list[Callable[[], object]]:
        return [functools.partial(stub.Decide, m, timeout=30) for m in work[k::threads]]

    latencies, elapsed = timed_clients(threads, calls_of)
    channel.close()
    proc.terminate()
    proc.wait(30)
    tmp.cleanup()
    all_lat = sorted(x for part in latencies for x in part)
    return {
        "sink": "grpc+file" if audit else "grpc+off",
        "threads": threads,
        "requests": len(all_lat),
        "throughput_per_s": len(all_lat) / elapsed,
        "p50_us": pct(all_lat, 0.5),
        "p99_us": pct(all_lat, 0.99),
        "p999_us": pct(all_lat, 0.999),
        "mean_us": statistics.fmean(all_lat),
    }


def machine() -> dict[str, Any]:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = ""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_avg": os.getloadavg(),
        "commit": commit,
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=4000, help="timed decisions per case (default 4000)")
    parser.add_argument("--dsn", default=os.environ.get("VERDICT_TEST_PG_DSN"), help="PostgreSQL DSN for the postgres case")
    parser.add_argument("--grpc", action="store_true", help="also measure verdict serve over loopback gRPC")
    parser.add_argument("--out", type=Path, help="write the JSON results here")
    args = parser.parse_args()

    policies = load_policies(ROOT)
    rows = payments(WARMUP + args.requests)
    results = []
    for sink in SINKS:
        if sink == "postgres" and not args.dsn:
            continue
        for threads in CONCURRENCY:
            r = run_case(policies, sink, threads, rows, args.dsn)
            results.append(r)
            per = r.get("records_per_commit")
            print(
                f"{sink:13s} threads={threads:3d}  {r['throughput_per_s']:8.0f}/s  p50 {r['p50_us']:8.0f} us  "
                f"p99 {r['p99_us']:8.0f} us  p999 {r['p999_us']:8.0f} us"
                + (f"  {per:6.1f} records/commit" if per else ""),
                flush=True,
            )
    if args.grpc:
        for audit in (False, True):
            for threads in CONCURRENCY:
                r = run_grpc_case(audit, threads, rows)
                results.append(r)
                print(
                    f"{r['sink']:13s} threads={threads:3d}  {r['throughput_per_s']:8.0f}/s  p50 {r['p50_us']:8.0f} us  "
                    f"p99 {r['p99_us']:8.0f} us  p999 {r['p999_us']:8.0f} us",
                    flush=True,
                )
    disk = fsync_cost()
    print(f"raw write+fdatasync of one 1 KB record: p50 {disk['p50_us']:.0f} us, p99 {disk['p99_us']:.0f} us")
    doc = {"benchmark": "audit_log", "machine": machine(), "fsync": disk, "cases": results}
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
