"""The batch cases: ``verdict batch`` throughput and memory, locally and on Spark local[2].

Input: ``rows`` credit applications resampled with replacement (seeded) from data/credit_data.csv,
with a ``customer_id`` column so that routing applies as online, written as CSV. ``batch_local``
runs ``verdict batch --engine local`` in its own process, twice: on a tenth of the rows (``small``)
and on all of them (``large``), then on all of them with ``--jobs`` one worker per core
(``large_jobsN``, reported apart: the target is one process). Rows/s is the command's own figure
(the clock starts after the policies are loaded); ``cpu_us_per_row`` (large) is the CPU the large
run took beyond the small one over its extra rows (start-up cancelled out: the machine time of a
row, whatever the load); peak RSS comes from ``os.wait4`` (the child's ``ru_maxrss``): flat memory
means the two peaks are close. ``batch_spark`` starts a local[2] session (start-up reported apart),
runs a warm-up batch of a tenth of the rows (workers started, policy root shipped and loaded), then
times the whole file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["make_history", "run_batch_cases"]


def make_history(path: Path, source: Path, rows: int, seed: int = 18) -> Path:
    """``rows`` rows of ``source`` (a CSV) drawn with replacement, plus a customer_id column."""
    import numpy as np

    lines = source.read_text(encoding="utf-8").splitlines()
    header, body = lines[0], lines[1:]
    picks = np.random.default_rng(seed).integers(0, len(body), size=rows)
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"customer_id,{header}\n")
        for i, k in enumerate(picks.tolist()):
            f.write(f"c{i},{body[k]}\n")
    return path


def _row(kind: str, rows: int, rps: float | None, **extra: Any) -> dict[str, Any]:
    return {"name": extra.pop("name"), "flow": "credit_application", "kind": kind, "rows": rows, "rps": rps,
            "p50_us": None, "p99_us": None, "p999_us": None, "mean_us": None, **extra}


def _local(root: Path, src: Path, out: Path, project: Path, jobs: int = 1) -> tuple[dict[str, Any], float, float]:
    """Run verdict batch (``--jobs``) in a child process; its summary, peak RSS in MB (of the parent
    process; with workers, each worker's is about the same, pages of the loaded flows shared) and CPU
    seconds (user + system, the child's own: start-up included)."""
    cmd = [sys.executable, "-c", "import sys; from engine.cli import main; sys.exit(main(sys.argv[1:]))",
           "batch", "credit_application", "--input", str(src), "--output", str(out), "--root", str(root),
           "--jobs", str(jobs)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=project, text=True)
    assert proc.stdout is not None
    text = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode not in (0, 1):
        raise RuntimeError(f"verdict batch exited {proc.returncode}")
    return json.loads(text), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def run_batch_cases(root: Path, rows: int, work: Path, project: Path, cases: list[str]) -> list[dict[str, Any]]:
    """The batch_local (small, large) and batch_spark rows of the result."""
    work.mkdir(parents=True, exist_ok=True)
    large = make_history(work / "history_large.csv", project / "data" / "credit_data.csv", rows)
    small = make_history(work / "history_small.csv", project / "data" / "credit_data.csv", max(10, rows // 10))
    out: list[dict[str, Any]] = []
    if "batch_local" in cases:
        cpu: dict[str, tuple[int, float]] = {}
        for kind, src in (("small", small), ("large", large)):
            summary, rss, seconds = _local(root, src, work / f"out_{kind}.parquet", project)
            cpu[kind] = (summary["rows"], seconds)
            out.append(_row(kind, summary["rows"], summary["rows_per_second"], name="batch_local",
                            peak_rss_mb=round(rss, 1), failed=summary["failed"], seconds=summary["seconds"]))
        # Machine time a row, start-up cancelled out: the CPU the large run took beyond the small one,
        # over the rows it had beyond it. On a loaded machine wall-clock rows/s measure the share of a
        # core the process got; this measures what a row costs (compare: grpc_decide's server CPU a request).
        (n_small, s_small), (n_large, s_large) = cpu["small"], cpu["large"]
        if n_large > n_small:
            out[-1]["cpu_us_per_row"] = round((s_large - s_small) / (n_large - n_small) * 1e6, 1)
        jobs = os.cpu_count() or 1
        if jobs > 1:  # the same large file in one worker process per core: reported apart (the target is one process)
            summary, rss, _ = _local(root, large, work / "out_jobs.parquet", project, jobs)
            out.append(_row(f"large_jobs{jobs}", summary["rows"], summary["rows_per_second"], name="batch_local",
                            peak_rss_mb=round(rss, 1), failed=summary["failed"], seconds=summary["seconds"], jobs=jobs))
    if "batch_spark" in cases:
        from engine.batch import spark as verdict_spark

        began = time.perf_counter()
        session = verdict_spark.session("local[2]", "verdict-bench")
        startup = time.perf_counter() - began
        try:
            warm = verdict_spark.decide_file_spark(root, "credit_application", small, work / "spark_warm.parquet", spark=session)
            timed = verdict_spark.decide_file_spark(root, "credit_application", large, work / "spark.parquet", spark=session)
        finally:
            session.stop()
        out.append(_row("large", timed.rows, round(timed.rows / timed.seconds, 1), name="batch_spark",
                        startup_seconds=round(startup, 1), warmup_seconds=round(warm.seconds, 1),
                        seconds=round(timed.seconds, 2), failed=timed.failed))
    return out
