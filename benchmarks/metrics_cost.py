"""What the Prometheus metrics and the drift monitor cost a decision.

Each case against a baseline measured in the same run, rounds alternating (trust the ratios;
the machine is shared):

- ``decide``: ``Decider.decide`` of real credit applications as the server runs it (counts queued,
  drift values queued) against the same Decider with both switched off (``_count`` replaced by a
  no-op), alternating rounds.
- ``flush``: applying the queued counts of one decision to the Prometheus families
  (``Metrics.flush``, off the request path: the server's flusher thread, every second).
- ``drift``: encoding one queued decision into a model window (``DriftMonitor.drain``) and
  computing the PSI gauges of a full 10,000-row window (``refresh``).

    python benchmarks/metrics_cost.py [--iterations 2000] [--rounds 5] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.datasets import read_credit_applications  # noqa: E402
from engine.policy.loader import load_policies  # noqa: E402
from engine.runtime.service import Decider  # noqa: E402


def _round(decider: Decider, apps: list[dict[str, Any]]) -> float:
    """Mean µs of one decide over ``apps``."""
    t = time.perf_counter_ns()
    for a in apps:
        decider.decide("credit_application", a, version="1")
    return (time.perf_counter_ns() - t) / 1000.0 / len(apps)


def cases(iterations: int, rounds: int) -> dict[str, Any]:
    apps = read_credit_applications(ROOT / "data" / "credit_data.csv", iterations)
    policies = load_policies(ROOT)
    counted, bare = Decider(policies), Decider(policies)
    bare._count = lambda *args, **kwargs: None  # type: ignore[method-assign]
    for d in (counted, bare):
        _round(d, apps[:300])
    with_metrics, without = [], []
    flush_us, drain_us = [], []
    for _ in range(rounds):
        with_metrics.append(_round(counted, apps))
        without.append(_round(bare, apps))
        t = time.perf_counter_ns()
        counted.metrics.flush()
        flush_us.append((time.perf_counter_ns() - t) / 1000.0 / len(apps))
        t = time.perf_counter_ns()
        counted.drift.drain()
        drain_us.append((time.perf_counter_ns() - t) / 1000.0 / len(apps))
    t = time.perf_counter()
    stability = counted.drift.refresh()
    refresh_ms = (time.perf_counter() - t) * 1000.0
    counted.close()
    bare.close()
    decide_with, decide_without = statistics.median(with_metrics), statistics.median(without)
    return {
        "decide": {"with_us": decide_with, "without_us": decide_without, "ratio": decide_with / decide_without},
        "flush": {"us_per_decision": statistics.median(flush_us), "vs_decide": statistics.median(flush_us) / decide_without},
        "drift": {
            "drain_us_per_decision": statistics.median(drain_us),
            "vs_decide": statistics.median(drain_us) / decide_without,
            "refresh_ms": refresh_ms,
            "window_rows": max((s["n"] for s in stability.values()), default=0),
        },
    }


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg(), "commit": commit}


def report(result: dict[str, Any], out: Path | None) -> int:
    """Stamp the end load, print ``result`` as JSON and write it to ``out`` (if given); exit code 0."""
    result["machine"]["load_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=2000, help="decisions per round (at most the file's 4,454)")
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    return report({"machine": machine(), **cases(args.iterations, args.rounds)}, args.out)


if __name__ == "__main__":
    raise SystemExit(main())
