"""What opening review cases costs Decide: the file decision log with and without the case opener.

Both cases decide the same real credit applications (about one in four is a REVIEW, so it opens a
case) in-process from N threads, with the segment-file log (fsync per batch). "cases" also hooks
the ``CaseOpener`` (a SQLite store in WAL mode, ``synchronous=FULL``) to the log's writer, as
``verdict serve`` does. The rounds alternate the two cases and the report gives each one's median
p50/p99 and the ratio cases / log-only, measured in the same run: the opener runs on its own
thread, so the ratio says what it takes from the shared CPU, not a disk write Decide waits for.

    python benchmarks/review_queue.py [--requests 2000] [--rounds 3] [--threads 1 8] [--no-fsync] [--out results.json]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.audit_log import machine, pct  # noqa: E402
from benchmarks.clients import timed_clients  # noqa: E402
from engine.audit.segments import FileStore  # noqa: E402
from engine.audit.sink import AuditSink  # noqa: E402
from engine.audit.writer import GroupCommitWriter  # noqa: E402
from engine.cases import CaseOpener, ReviewConfig, open_store  # noqa: E402
from engine.datasets import read_credit_applications  # noqa: E402
from engine.policy.loader import load_policies  # noqa: E402
from engine.runtime.privacy import HashKey  # noqa: E402
from engine.runtime.service import Decider  # noqa: E402

WARMUP = 200


def run_case(policies: Any, cases: bool, threads: int, rows: list[dict[str, Any]], tag: str, *, fsync: bool = True) -> dict[str, Any]:
    """Decide ``rows`` from ``threads`` threads with the file log (and the case opener when ``cases``)."""
    with tempfile.TemporaryDirectory() as tmp:
        writer = GroupCommitWriter(FileStore(Path(tmp) / "log", fsync=fsync))
        decider = Decider(policies, sink=AuditSink(writer, HashKey(b"benchmark")))
        opener = None
        if cases:
            opener = CaseOpener(open_store(Path(tmp) / "cases.db"), "bench", ReviewConfig({}))
            writer.on_durable = opener.offer
            opener.start()
        for i, row in enumerate(rows[:WARMUP]):
            decider.decide("credit_application", row, request_id=f"warm-{tag}-{i}")
        work = rows[WARMUP:]

        def calls_of(k: int) -> list[Callable[[], object]]:
            return [functools.partial(decider.decide, "credit_application", row, request_id=f"{tag}-{k}-{i}")
                    for i, row in enumerate(work[k::threads])]

        latencies, elapsed = timed_clients(threads, calls_of)
        writer.close()
        opened = 0
        if opener is not None:
            opener.stop()
            opened = opener.opened
            opener.store.close()
    lat = sorted(x for part in latencies for x in part)
    return {"cases": cases, "threads": threads, "requests": len(lat), "throughput_per_s": len(lat) / elapsed,
            "p50_us": pct(lat, 0.5), "p99_us": pct(lat, 0.99), "cases_opened": opened}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed decisions per case and round (default 2000)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 8], help="client threads (default 1 8)")
    parser.add_argument("--no-fsync", action="store_true",
                        help="the log without fsync: the CPU cost alone (a busy disk's fsync times hide a small difference)")
    parser.add_argument("--out", type=Path, help="write the JSON results here")
    args = parser.parse_args()
    policies = load_policies(ROOT)
    base = read_credit_applications(ROOT / "data" / "credit_data.csv")
    rows = (base * (1 + (WARMUP + args.requests) // len(base)))[: WARMUP + args.requests]
    results: list[dict[str, Any]] = []
    summary = []
    for threads in args.threads:
        runs: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
        for r in range(args.rounds):
            for cases in (False, True):
                runs[cases].append(run_case(policies, cases, threads, rows, f"{threads}-{r}-{cases}", fsync=not args.no_fsync))
        results += runs[False] + runs[True]
        med = {c: {k: statistics.median(x[k] for x in runs[c]) for k in ("p50_us", "p99_us", "throughput_per_s")} for c in runs}
        line = {"threads": threads, **{f"log_{k}": v for k, v in med[False].items()}, **{f"cases_{k}": v for k, v in med[True].items()},
                "p50_ratio": med[True]["p50_us"] / med[False]["p50_us"], "p99_ratio": med[True]["p99_us"] / med[False]["p99_us"],
                "cases_opened_per_round": runs[True][0]["cases_opened"]}
        summary.append(line)
        print(f"threads={threads:3d}  log only p50 {med[False]['p50_us']:7.0f} us p99 {med[False]['p99_us']:7.0f} us | "
              f"with cases p50 {med[True]['p50_us']:7.0f} us p99 {med[True]['p99_us']:7.0f} us | "
              f"ratio p50 {line['p50_ratio']:.2f} p99 {line['p99_ratio']:.2f}  ({line['cases_opened_per_round']} cases a round)", flush=True)
    if args.out:
        args.out.write_text(json.dumps({"benchmark": "review_queue", "machine": machine(), "summary": summary, "runs": results}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
