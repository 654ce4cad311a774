"""What the card-number scanner and the start-up verification of the decision log cost.

Cases, each against a baseline measured in the same run (trust the ratios; the machine is shared):

- ``record``: building one decision-log record (the flow's Masker, then the record encoder) for
  real card payments, with the scanner (every input value, key and record string scanned) and
  without it (the scanner replaced by the identity), and a full in-process decision for scale.
- ``text``: ``mask_pans`` on typical strings: a short field value, a 1 KB log line without
  long digit runs, a line with decimals and ids, a line holding a card number.
- ``startup``: opening (verifying every record of) a log of ``--records`` decision records,
  against only reading its files.

    python benchmarks/privacy_cost.py [--records 200000] [--iterations 20000] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import engine.audit.record as record_module  # noqa: E402
import engine.runtime.privacy as privacy_module  # noqa: E402
from engine.audit.record import decision_payload  # noqa: E402
from engine.audit.segments import FileStore  # noqa: E402
from engine.datasets import read_card_payments  # noqa: E402
from engine.policy.loader import load_policies  # noqa: E402
from engine.runtime.pan import mask_pans  # noqa: E402
from engine.runtime.privacy import HashKey  # noqa: E402
from engine.runtime.service import Decider  # noqa: E402


def timed(fn: Callable[[int], object], n: int, rounds: int = 3) -> dict[str, float]:
    """p50/p99 (µs) of ``fn(i)`` over ``n`` calls, median of ``rounds`` rounds."""
    for i in range(min(n, 500)):
        fn(i)
    p50s, p99s, means = [], [], []
    for _ in range(rounds):
        times = []
        for i in range(n):
            t = time.perf_counter_ns()
            fn(i)
            times.append((time.perf_counter_ns() - t) / 1000.0)
        times.sort()
        p50s.append(times[len(times) // 2])
        p99s.append(times[int(len(times) * 0.99)])
        means.append(statistics.fmean(times))
    return {"p50_us": statistics.median(p50s), "p99_us": statistics.median(p99s), "mean_us": statistics.median(means)}


def record_cases(n: int) -> dict[str, Any]:
    policies = load_policies(ROOT)
    compiled = policies.flows["card_payment"].versions["1"]
    rows = [{"card_number": "4111111111111111", **r} for r in read_card_payments(ROOT / "data" / "card_payments.csv", 2000)]
    decider = Decider(policies)
    decisions = [decider.decide("card_payment", rows[i], request_id=f"req-{i}") for i in range(len(rows))]
    decider.close()
    masker, key = compiled.masker, HashKey(b"b" * 32)

    def build(i: int) -> bytes:
        k = i % len(rows)
        masked, fields = masker(rows[k], key)
        return decision_payload(decisions[k], masked, fields, ts=1.7e9)

    decide = Decider(policies)
    out = {"decide_inprocess": timed(lambda i: decide.decide("card_payment", rows[i % len(rows)]), n)}
    out["record_with_scanner"] = timed(build, n)
    saved = (privacy_module.mask_pans, privacy_module._scrub_number, privacy_module.scrub_value, record_module.scrub_text)
    identity: Callable[[Any], Any] = lambda v: v  # noqa: E731
    privacy_module.mask_pans = privacy_module._scrub_number = privacy_module.scrub_value = identity  # type: ignore[assignment]
    record_module.scrub_text = identity
    try:
        out["record_without_scanner"] = timed(build, n)
    finally:
        privacy_module.mask_pans, privacy_module._scrub_number, privacy_module.scrub_value, record_module.scrub_text = saved
    decide.close()
    with_, without = out["record_with_scanner"]["p50_us"], out["record_without_scanner"]["p50_us"]
    out["scanner_p50_us_per_record"] = with_ - without
    out["scanner_share_of_decision_p50"] = (with_ - without) / out["decide_inprocess"]["p50_us"]
    return out


def text_cases(n: int) -> dict[str, Any]:
    samples = {
        "short_value": "C011808",
        "log_line_1kb": ('{"event":"decision","flow":"card_payment","action":"APPROVE","route":"live",' * 14)[:1024],
        "decimals_and_ids": '{"pd":0.3598054051399231,"eval_us":258.394,"decision_id":"feda8022a1b2c3d4e5f60718293a4b5c","ts":"2026-11-24T17:46:06.289356Z"}',
        "with_pan": "payment by 4111 1111 1111 1111 declined for customer C011808 at 2026-11-24",
    }
    return {name: timed(lambda i, s=text: mask_pans(s), n) for name, text in samples.items()}


def startup_case(records: int) -> dict[str, Any]:
    rows = read_card_payments(ROOT / "data" / "card_payments.csv", 1000)
    policies = load_policies(ROOT)
    decider = Decider(policies)
    decisions = [decider.decide("card_payment", rows[i]) for i in range(len(rows))]
    decider.close()
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as d:
        directory = Path(d)
        store = FileStore(directory, fsync=False)
        chain = store.open()
        batch = []
        for i in range(records):
            batch.append(chain.seal(decision_payload(decisions[i % 1000], rows[i % 1000], [], ts=1.7e9 + i)))
            if len(batch) == 1000:
                store.append(batch)
                batch = []
                if store.should_rotate():
                    store.rotate(chain)
        if batch:
            store.append(batch)
        store.close()
        files = sorted(directory.glob("segment-*.log"))
        size = sum(p.stat().st_size for p in files)
        t = time.perf_counter()
        for p in files:
            p.read_bytes()
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        verified = FileStore(directory)
        verified.open()
        verified.close()
        open_s = time.perf_counter() - t
    return {
        "records": records,
        "segments": len(files),
        "bytes": size,
        "read_only_s": read_s,
        "open_verified_s": open_s,
        "records_per_s": records / open_s,
        "mb_per_s": size / 1e6 / open_s,
        "open_vs_read": open_s / read_s,
    }


def machine() -> dict[str, Any]:
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "load": os.getloadavg(), "commit": commit}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000, help="decision records in the start-up case")
    parser.add_argument("--iterations", type=int, default=20_000, help="timed calls per round")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args()
    result = {"machine": machine(), "record": record_cases(args.iterations), "text": text_cases(args.iterations)}
    result["startup"] = startup_case(args.records)
    result["machine"]["load_end"] = os.getloadavg()
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
