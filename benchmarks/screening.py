"""Name-screening latency on a 1,000,000-name list, with candidate blocking, against a small-list baseline.

Builds (in memory) a list of ``--names`` seeded synthetic entities (engine.screening.synthetic)
and a baseline list of ``--baseline`` entities, then times ``engine.screening.screen`` on the same
``--queries`` queries against each: half variants of listed names (misspelled, reordered, other
script, romanisation, initials), half clean names. Reports p50/p99/p999 and mean per call for
both lists and their ratio (trust the ratios; the machine is shared), the build time and peak
memory of the index, the candidate counts, and the machine and commit.

    python benchmarks/screening.py [--names 1000000] [--baseline 10000] [--queries 2000] [--out r.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.screening import ListFile, build_list, screen
from engine.screening.match import _candidates
from engine.screening.normalise import blocking_keys, normalise_name
from engine.screening.synthetic import generate_entities, labelled_queries

SPEC = ListFile(list="bench", version="1", kind="sanctions", format="ftm_jsonl", file="-", threshold=0.88)


def _percentiles(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50_us": s[len(s) // 2], "p99_us": s[min(len(s) - 1, int(len(s) * 0.99))],
        "p999_us": s[min(len(s) - 1, int(len(s) * 0.999))], "mean_us": statistics.fmean(s),
    }


def _time(lst: Any, queries: list[tuple[str, str, str, str]], rounds: int) -> dict[str, float]:
    for q, dob, _, _ in queries[:200]:  # warm-up
        screen(lst, q, dob)
    per_round = []
    for _ in range(rounds):
        samples = []
        for q, dob, _, _ in queries:
            t0 = time.perf_counter_ns()
            screen(lst, q, dob)
            samples.append((time.perf_counter_ns() - t0) / 1000)
        per_round.append(_percentiles(samples))
    return {k: statistics.median(r[k] for r in per_round) for k in per_round[0]}


def run(names: int, baseline: int, n_queries: int, rounds: int) -> dict[str, Any]:
    """The benchmark as a dict."""
    t0 = time.perf_counter()
    big_entities = list(generate_entities(names, seed=1))
    big = build_list(SPEC, big_entities)
    build_s = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    small = build_list(SPEC, big_entities[:baseline])
    queries = labelled_queries(big_entities[:baseline], n_queries, seed=5)  # variants of names on both lists
    big_t = _time(big, queries, rounds)
    small_t = _time(small, queries, rounds)
    cands = [len(_candidates(big, blocking_keys(normalise_name(q)))) for q, _, _, _ in queries]
    found = sum(1 for q, dob, want, _ in queries if want and screen(big, q, dob).entity_id == want)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=Path(__file__).parent).stdout.strip()
    return {
        "case": "screening_1m",
        "names_indexed": len(big.name_text), "entities": names, "baseline_entities": baseline,
        "queries": n_queries, "rounds": rounds,
        "large": big_t, "baseline": small_t,
        "ratio_p50": big_t["p50_us"] / small_t["p50_us"], "ratio_p99": big_t["p99_us"] / small_t["p99_us"],
        "candidates": {"max": max(cands), "median": statistics.median(cands)},
        "variants_found_on_large_list": found, "variants": sum(1 for _, _, w, _ in queries if w),
        "index_build_s": build_s, "peak_rss_mb": rss_mb,
        "machine": {"python": platform.python_version(), "platform": platform.platform(), "cpus": __import__("os").cpu_count()},
        "commit": commit,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--names", type=int, default=1_000_000)
    ap.add_argument("--baseline", type=int, default=10_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    result = run(args.names, args.baseline, args.queries, args.rounds)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
