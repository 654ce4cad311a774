"""Replaying a large decision log: the export to Parquet, and the replay locally and on Spark.

Makes a real log of ``--decisions`` credit applications (resampled from data/credit_data.csv with a
fixed seed) by deciding them through the in-process Decider with the segment-file log (no fsync:
only the log's own CPU cost), then measures, in one run:

- ``verdict audit export`` of the whole log to one Parquet file (a separate process, policies not
  involved): decisions/s and peak RSS, and the same for a tenth of the log (memory flat in its size);
- ``verdict replay`` through version 2 (the log was decided by the live version) of the log
  itself (the baseline), of the export with ``--engine local``, and of the export with
  ``--engine spark`` on ``local[2]`` in this process, on a session already started (start-up and
  a first, warm-up run reported apart); each replay's report must equal the baseline's.

    python benchmarks/replay_export.py [--decisions 200000] [--out results.json] [--keep DIR] [--stages export,replay]

With ``--keep DIR`` holding the logs of an earlier run, they are reused (not made again).

Prints a table and writes JSON with the machine, the commit and every number. The machine is
shared and noisy: compare the ratios of one run, not absolute figures across runs.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.suite.machine import git_commit, machine_info  # noqa: E402
from engine.audit.segments import FileStore  # noqa: E402
from engine.audit.sink import AuditSink  # noqa: E402
from engine.audit.writer import GroupCommitWriter  # noqa: E402
from engine.datasets import read_credit_applications  # noqa: E402
from engine.policy.loader import load_policies  # noqa: E402
from engine.runtime.idempotency import Fingerprinter  # noqa: E402
from engine.runtime.privacy import HashKey  # noqa: E402
from engine.runtime.service import Decider  # noqa: E402

FLOW = "credit_application"
VERSION = "2"  # replayed through; the log is decided by the live version
EXPORT_PROBE = """
import resource, sys, time
from engine.cli import main
began = time.monotonic()
code = main(sys.argv[1:])
print(f"SECONDS={time.monotonic() - began:.3f} RSS_KB={resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", file=sys.stderr)
sys.exit(code)
"""


def _note(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def make_log(directory: Path, n: int) -> float:
    """``n`` decisions of resampled credit applications into a log at ``directory``; decisions/s."""
    rows = read_credit_applications(ROOT / "data" / "credit_data.csv", integers=False)
    rng = random.Random(18)
    key = HashKey(b"bench-key")
    writer = GroupCommitWriter(FileStore(directory, fsync=False))
    decider = Decider(load_policies(ROOT), sink=AuditSink(writer, key, Fingerprinter(key)))
    began = time.monotonic()
    for i in range(n):
        decider.decide(FLOW, rows[rng.randrange(len(rows))], request_id=f"app-{i}")
    decider.close()
    writer.close()
    return n / (time.monotonic() - began)


def export(log: Path, dest: Path, *extra: str) -> dict[str, Any]:
    """``verdict audit export`` in its own process: seconds and peak RSS."""
    done = subprocess.run([sys.executable, "-c", EXPORT_PROBE, "audit", "export", str(log), "--output", str(dest), *extra],
                          cwd=ROOT, capture_output=True, text=True, check=True)
    probe = dict(part.split("=") for part in done.stderr.strip().splitlines()[-1].split())
    return {"seconds": float(probe["SECONDS"]), "peak_rss_mb": int(probe["RSS_KB"]) / 1024, "bytes": dest.stat().st_size}


def _report(result: Any) -> dict[str, Any]:
    return {k: v for k, v in result.as_dict().items() if k != "log"}


def replays(log: Path, parquet: Path) -> dict[str, Any]:
    """The log's replay (baseline), the export's locally and on Spark; seconds and decisions/s each."""
    from engine.audit.exported import ExportedLog
    from engine.audit.replay import replay
    from engine.audit.source import open_source
    from engine.batch import spark as verdict_spark
    from engine.batch.replay_spark import replay_export

    compiled = load_policies(ROOT).flows[FLOW].versions[VERSION]
    out: dict[str, Any] = {}
    began = time.monotonic()
    source = open_source(log)
    baseline = replay(source.decisions(flow=FLOW), compiled)
    source.close()
    out["log_local"] = {"seconds": time.monotonic() - began}
    _note(f"replay of the log: {out['log_local']}")
    exported = ExportedLog(parquet)
    began = time.monotonic()
    local = replay(exported.decisions(FLOW), compiled, order=lambda r: int(r["log_order"]))
    out["export_local"] = {"seconds": time.monotonic() - began, "same_report": _report(local) == _report(baseline)}
    _note(f"replay of the export: {out['export_local']}")
    began = time.monotonic()
    session = verdict_spark.session("local[2]", "verdict-replay-bench")
    out["spark_startup_seconds"] = time.monotonic() - began
    try:
        for name in ("export_spark_first", "export_spark"):
            began = time.monotonic()
            on_spark = replay_export(exported, FLOW, VERSION, root=ROOT, spark=session)
            out[name] = {"seconds": time.monotonic() - began, "same_report": _report(on_spark) == _report(baseline)}
            _note(f"{name}: {out[name]}")
    finally:
        session.stop()
    for name in ("log_local", "export_local", "export_spark_first", "export_spark"):
        out[name]["decisions_per_s"] = baseline.considered / out[name]["seconds"]
    out["replayed"] = baseline.replayed
    out["changed"] = baseline.changed
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=200_000)
    parser.add_argument("--out", type=Path, help="write the JSON results here")
    parser.add_argument("--keep", type=Path, help="make the log and the exports under DIR and keep them (reused when there)")
    parser.add_argument("--stages", default="export,replay", help="what to measure: export, replay or both")
    args = parser.parse_args()
    stages = set(args.stages.split(","))
    work = args.keep or Path(tempfile.mkdtemp(prefix="verdict-replay-bench-"))
    doc: dict[str, Any] = {"benchmark": "replay_export", "machine": machine_info(), "commit": git_commit(ROOT),
                           "decisions": args.decisions}
    log, tenth = work / "audit", work / "tenth"
    if not log.exists():
        doc["log_decisions_per_s"] = make_log(log, args.decisions)
        _note(f"log made: {doc['log_decisions_per_s']:,.0f} decisions/s")
        make_log(tenth, args.decisions // 10)
    if "export" in stages:
        _exports(doc, log, tenth, work, args.decisions)
    if "replay" in stages:
        _replays(doc, log, work / "log.parquet")
    if args.out:
        args.out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    replayed = doc.get("replay", {})
    return 0 if all(replayed[n]["same_report"] for n in ("export_local", "export_spark_first", "export_spark") if n in replayed) else 1


def _exports(doc: dict[str, Any], log: Path, tenth: Path, work: Path, decisions: int) -> None:
    """The export of the log and of a tenth of it (peak RSS flat?), and a partitioned one."""
    for path in (work / "log.parquet", work / "tenth.parquet"):
        path.unlink(missing_ok=True)
    shutil.rmtree(work / "parts", ignore_errors=True)
    doc["export"] = export(log, work / "log.parquet")
    _note(f"export: {doc['export']}")
    doc["export_tenth"] = export(tenth, work / "tenth.parquet")
    doc["export"]["decisions_per_s"] = decisions / doc["export"]["seconds"]
    doc["export_tenth"]["decisions_per_s"] = decisions / 10 / doc["export_tenth"]["seconds"]
    doc["export_partitioned"] = export(log, work / "parts", "--partition-by", "flow,date") | {"bytes": None}
    doc["export_rss_full_vs_tenth"] = doc["export"]["peak_rss_mb"] / doc["export_tenth"]["peak_rss_mb"]
    print(f"export: {doc['export']['decisions_per_s']:,.0f} decisions/s, {doc['export']['bytes'] / 1e6:.1f} MB, "
          f"peak RSS {doc['export']['peak_rss_mb']:.0f} MB (a tenth of the log: {doc['export_tenth']['peak_rss_mb']:.0f} MB)")
    print(f"export partitioned by flow,date: {decisions / doc['export_partitioned']['seconds']:,.0f} decisions/s")


def _replays(doc: dict[str, Any], log: Path, parquet: Path) -> None:
    """The replays, each against the log's own, and their ratios."""
    doc["replay"] = r = replays(log, parquet)
    doc["ratios"] = {
        "export_local_vs_log_local": r["export_local"]["decisions_per_s"] / r["log_local"]["decisions_per_s"],
        "spark_vs_log_local": r["export_spark"]["decisions_per_s"] / r["log_local"]["decisions_per_s"],
    }
    for name in ("log_local", "export_local", "export_spark_first", "export_spark"):
        same = r[name].get("same_report")
        print(f"replay {name:<19} {r[name]['decisions_per_s']:>9,.0f} decisions/s  {r[name]['seconds']:7.1f} s"
              + ("" if same is None else f"  same report as the log's: {same}"))
    print(f"Spark session start-up {r['spark_startup_seconds']:.1f} s; ratios {json.dumps(doc['ratios'])}")


if __name__ == "__main__":
    sys.exit(main())
