"""Smoke run of the benchmark suite: every kind of case end to end with tiny counts (the shape, not the numbers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from benchmarks.suite.manifest import CASE_NAMES

ROOT = Path(__file__).resolve().parents[2]
STATS = ("p50_us", "p99_us", "p999_us", "mean_us")


def test_quick_subset_writes_json_table_and_plots(tmp_path: Path) -> None:
    """benchmarks/run.py runs every case but batch_spark (Spark has its own tests) and writes the documented JSON shape."""
    out, plots = tmp_path / "result.json", tmp_path / "plots"
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--iterations", "30", "--rounds", "1",
         "--concurrency", "1,4", "--workers", "1", "--scaling-rules", "15,30", "--scaling-trees", "5",
         "--cases", ",".join(n for n in CASE_NAMES if n != "batch_spark"),
         "--json", str(out), "--plot", str(plots)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result) >= {"cases", "machine", "commit", "targets", "scaling", "breakdown"}
    assert result["machine"]["cores"] >= 1 and result["machine"]["python"]
    assert "grpcio" in result["machine"]["libraries"]
    names = {c["name"] for c in result["cases"]}
    assert names == {"inprocess_decide", "rules_verdict", "rules_zen", "model_onnx", "model_lightgbm", "model_explain",
                     "model_explain_lightgbm", "grpc_echo", "grpc_echo_plain", "grpc_decide", "bad_request_cost", "batch_local",
                     "list_lookup", "state_decide"}
    state = {c["kind"] for c in result["cases"] if c["name"] == "state_decide"}
    assert state == {"v1_counters_sent", "v2_memory", "v2_sqlite", "linked_read"}  # Redis only with --redis URL
    lookups = {c["kind"]: c for c in result["cases"] if c["name"] == "list_lookup"}
    assert set(lookups) == {"with_lists", "without_list_rules"} and 0 < lookups["with_lists"]["listed_share"] < 0.1
    batch = {c["kind"]: c for c in result["cases"] if c["name"] == "batch_local"}
    jobs = {f"large_jobs{os.cpu_count()}"} if (os.cpu_count() or 1) > 1 else set()  # one worker per core, reported apart
    assert set(batch) == {"small", "large"} | jobs and all(c["rps"] > 0 and c["peak_rss_mb"] > 0 and c["failed"] == 0 for c in batch.values())
    bad = {c["kind"]: c for c in result["cases"] if c["name"] == "bad_request_cost"}
    assert set(bad) == {"good", "worst", "unknown_fields", "unknown_long_names", "too_many_fields", "long_values",
                        "long_request_id", "malformed"}
    assert bad["good"]["statuses"] == {"OK": bad["good"]["n"]}
    assert all(set(c["statuses"]) == {"INVALID_ARGUMENT"} for k, c in bad.items() if k != "good")  # never RESOURCE_EXHAUSTED
    for case in (c for c in result["cases"] if c["name"] != "batch_local"):  # batch cases give rows/s, not latency
        assert all(case[s] > 0 for s in STATS), case
        assert case["p50_us"] <= case["p99_us"] <= case["p999_us"]
    grpc = [c for c in result["cases"] if c["name"].startswith("grpc_")]
    assert {(c["name"], c["concurrency"], c["workers"]) for c in grpc} == {
        (n, c, 1) for n in ("grpc_echo", "grpc_decide", "grpc_echo_plain") for c in (1, 4)
    }
    plain = {c["concurrency"]: c for c in grpc if c["name"] == "grpc_echo_plain"}
    assert all(c["server_cpu_us_per_request"] >= 0 for c in plain.values())  # its own server's /proc (NaN: pids not found)
    assert all(c["rps"] > 0 and c["errors"] == 0 for c in grpc)
    zen = [c for c in result["cases"] if c["name"] == "rules_zen"]
    assert zen and all(c["agreement"]["agree"] and c["agreement"]["inputs"] >= 100 for c in zen)
    ran = {t["name"]: t for t in result["targets"] if "c=32" not in t["name"] and "Spark" not in t["name"]}  # not run here
    assert len(ran) >= 6 and all(t["ratio"] is not None and t["met"] in (True, False) for t in ran.values())
    assert [p["rules"] for p in result["scaling"]["rules"]["points"]] == [15, 30]
    assert result["scaling"]["models"]["points"][0]["trees"] == 5
    assert {s["step"].split(" ")[0] for s in result["breakdown"]} >= {"validate", "rules", "explain", "decide"}
    assert "| grpc_decide |" in done.stdout  # the Markdown table
    assert sorted(p.name for p in plots.iterdir()) == ["latency_percentiles.png", "scaling.png", "throughput_vs_concurrency.png"]
