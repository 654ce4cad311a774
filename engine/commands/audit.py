"""``verdict audit``: verify, show and recover a decision log (a directory or a PostgreSQL DSN).

- ``verify LOG [--export EXPORT]``: checks every record of every chain; prints the record count and
  last hash; exits 1 naming the first bad record when anything was edited, removed, reordered or
  truncated; with ``--export``, also that the export holds exactly the log's records it covers
  (engine.audit.export_check), exit 1 naming the rows that differ.
- ``show LOG [--last N] [--decision ID] [--flow F] [--dispositions] [--allow-gaps]``: decision
  records (with ``--dispositions``: the review cases' disposition records) as JSON lines. The log is followed as it is read: a gap (a missing or vanished segment, missing
  records) exits 1 naming it, unless ``--allow-gaps``, which prints what is there and names every
  gap on stderr.
- ``recover DIR``: what a restarting server does first: trims a torn last record left by a crash.
- ``export LOG --output PATH.parquet [--flow F] [--from T] [--to T] [--partition-by flow,date]
  [--allow-gaps]``: the decision records to Parquet, streamed (engine.audit.export), for
  ``verdict replay --input`` (locally or on Spark) and for analysts; a gap exits 1 naming it, unless
  ``--allow-gaps``, which exports what is there and states every gap in the export.

Exit codes: 0 fine, 1 the log is bad, 2 no log there or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from engine.commands._io import report, write_out

if TYPE_CHECKING:
    from engine.audit.source import LogSource

T = TypeVar("T")

__all__ = ["register", "run_export", "run_recover", "run_show", "run_verify"]


def register(subparsers: Any) -> None:
    """Add ``audit verify|show|recover``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "audit",
        help="verify, show or recover a decision log",
        description="Read the decision log of `verdict serve` (a directory or a postgresql:// DSN).",
    )
    sub = p.add_subparsers(dest="audit_command", metavar="ACTION", required=True)

    verify = sub.add_parser("verify", help="check the hash chains; name the first bad record")
    verify.add_argument("log", help="log directory or PostgreSQL DSN")
    verify.add_argument("--export", metavar="EXPORT",
                        help="also check that this Parquet export (verdict audit export) holds exactly the log's records it covers")
    verify.set_defaults(run=run_verify)

    show = sub.add_parser("show", help="print decision records as JSON lines")
    show.add_argument("log", help="log directory or PostgreSQL DSN")
    show.add_argument("--last", type=int, metavar="N", help="only the last N records")
    show.add_argument("--decision", metavar="ID", help="only the record of this decision id")
    show.add_argument("--flow", metavar="F", help="only records of this flow")
    show.add_argument("--dispositions", action="store_true",
                      help="the review cases' disposition records instead of decisions (docs/review-queue.md)")
    show.add_argument("--allow-gaps", action="store_true", help="print what is there when part of the log is missing (named on stderr)")
    show.set_defaults(run=run_show)

    export = sub.add_parser("export", help="write the decision records to Parquet (for replays on Spark and analysts)",
                            description="Export the decision log to Parquet, streamed; see docs/decision-log.md.")
    export.add_argument("log", help="log directory or PostgreSQL DSN")
    export.add_argument("--output", "-o", required=True, help="a .parquet file (with --partition-by: a new directory)")
    export.add_argument("--flow", metavar="F", help="only decisions of this flow")
    export.add_argument("--from", dest="since", metavar="T", help="only decisions at or after T (ISO-8601, UTC if no zone)")
    export.add_argument("--to", dest="until", metavar="T", help="only decisions before T (ISO-8601, UTC if no zone)")
    export.add_argument("--partition-by", default="", metavar="KEYS",
                        help="flow, date or flow,date: Hive-style directories flow=F/date=YYYY-MM-DD (for large logs)")
    export.add_argument("--allow-gaps", action="store_true",
                        help="export what is there when part of the log is missing, and state the gaps in the export")
    export.set_defaults(run=run_export)

    recover = sub.add_parser("recover", help="trim a torn last record left by a crash (as a restart does)")
    recover.add_argument("log", help="log directory")
    recover.set_defaults(run=run_recover)


def _open(location: str) -> LogSource | None:
    """The log at ``location``; None (the reason said on stderr) when there is none."""
    from engine.audit.errors import AuditError
    from engine.audit.source import open_source

    try:
        return open_source(location)
    except AuditError as exc:
        report(str(exc))
        return None


def _reading(source: LogSource, work: Callable[[LogSource], T], on_gap: str) -> T | None:
    """``work(source)``, then the source closed; None (the reason said, ``on_gap`` after a gap) when it fails."""
    from engine.audit.errors import AuditError, LogGap

    try:
        return work(source)
    except LogGap as exc:
        report(f"{exc}; {on_gap}")
    except AuditError as exc:
        report(str(exc))
    finally:
        source.close()
    return None


def run_verify(args: argparse.Namespace) -> int:
    from engine.audit.errors import AuditError

    source = _open(args.log)
    if source is None:
        return 2
    try:
        result = source.verify()
    except AuditError as exc:  # e.g. a segment that cannot be opened (permissions)
        report(str(exc))
        return 1
    finally:
        source.close()
    out = sys.stdout
    bad = result.first_bad()
    if bad is not None:
        report(f"BAD: {bad}")
        for chain in result.chains:
            if chain.bad is not None and chain.bad is not bad:
                report(f"BAD: {chain.bad}")
        return 1
    segments = sum(c.segments for c in result.chains)
    detail = f"{result.records:,} records" + (f", {segments:,} segment{'s' if segments != 1 else ''}" if segments else "")
    if len(result.chains) > 1:
        detail += f", {len(result.chains)} chains"
    write_out(f"ok: {result.decisions:,} decision records ({detail}) in {result.location}\n", out)
    if len(result.chains) == 1:
        write_out(f"last hash: {result.chains[0].last_hash}\n", out)
    else:
        for chain in result.chains:
            write_out(f"{chain.name}: {chain.decisions:,} decisions, last seq {chain.last_seq}, last hash {chain.last_hash}\n", out)
    out.flush()
    return 0 if args.export is None else _check_export(args.log, args.export)


def _check_export(log: str, location: str) -> int:
    """``verify --export``: every row of the export against its record in the log; exit 1 naming differences."""
    from engine.audit.export_check import check_export
    from engine.audit.exported import ExportedLog

    source = _open(log)
    if source is None:
        return 2
    found = _reading(source, lambda s: check_export(ExportedLog(location), s),
                     "the export does not state this gap: it was made from another log, or before the gap")
    if found is None:
        return 1
    checked, problems = found
    for problem in problems:
        report(f"EXPORT DIFFERS: {problem}")
    if problems:
        return 1
    write_out(f"ok: the export {location} holds exactly the log's {checked:,} decision records it covers\n")
    return 0


def _records(source: Any, args: argparse.Namespace, gaps: Any) -> Any:
    """The records ``show`` prints: decisions, or with ``--dispositions`` the disposition records."""
    if args.dispositions:
        records = source.decisions(flow=args.flow, decision_id=args.decision, gaps=gaps, kind="disposition")
        return records if args.last is None else (list(records)[-args.last :] if args.last else [])
    if args.last is not None:
        found = source.last_decisions(args.last, flow=args.flow, gaps=gaps)
        return [r for r in found if r.get("decision_id") == args.decision] if args.decision is not None else found
    return source.decisions(flow=args.flow, decision_id=args.decision, gaps=gaps)


def run_show(args: argparse.Namespace) -> int:
    from engine.audit.errors import AuditError, LogGap
    from engine.audit.follow import Gap

    if args.last is not None and args.last < 0:
        report("--last must be 0 or more")
        return 2
    source = _open(args.log)
    if source is None:
        return 2
    from engine.runtime.privacy import scrub_value

    encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
    out = sys.stdout
    gaps: list[Gap] | None = [] if args.allow_gaps else None
    try:
        records = _records(source, args, gaps)
        found = 0
        for record in records:
            write_out(encode(scrub_value(record)) + "\n", out)  # also masks what an older log holds
            found += 1
    except BrokenPipeError:  # `verdict audit show … | head`
        return 0
    except LogGap as exc:
        out.flush()
        report(f"{exc}; --allow-gaps prints what is there")
        return 1
    except AuditError as exc:
        out.flush()
        report(str(exc))
        return 1
    finally:
        source.close()
    out.flush()
    for gap in gaps or ():
        report(f"warning: part of the log is missing, the records above are only those there: {gap}")
    if args.decision is not None and not found:
        report(f"decision {args.decision} is not in {args.log}" + (" (it may have been in a missing part)" if gaps else ""))
        return 1
    return 0


def run_recover(args: argparse.Namespace) -> int:
    from pathlib import Path

    from engine.audit.errors import AuditError
    from engine.audit.segments import FileStore
    from engine.audit.source import FileSource, is_dsn

    if is_dsn(args.log):
        report("recover applies to a log directory; PostgreSQL commits whole batches or nothing")
        return 2
    try:
        chain_dirs = FileSource(Path(args.log)).chain_dirs
    except AuditError as exc:
        report(str(exc))
        return 2
    code = 0
    for directory in chain_dirs:
        store = FileStore(directory)
        try:
            chain = store.open()
        except AuditError as exc:
            report(str(exc))
            code = 1
            continue
        finally:
            store.close()
        rec = store.recovery
        trimmed = rec.trimmed_bytes if rec else 0
        removed = f"; removed empty {rec.removed_segment}" if rec and rec.removed_segment else ""
        write_out(f"ok: {directory} ends at seq {chain.seq - 1}; trimmed {trimmed} bytes of a torn record{removed}\n")
    return code


def run_export(args: argparse.Namespace) -> int:
    """Export the log to Parquet; one line saying what was written and which chain ranges it covers."""
    from pathlib import Path

    from engine.audit.export import PARTITION_KEYS, export_log, parse_when
    from engine.extras import require

    require("batch", "verdict audit export (Parquet)")
    try:
        since = parse_when(args.since) if args.since else None
        until = parse_when(args.until) if args.until else None
    except ValueError as exc:
        report(f"--from/--to: {exc}")
        return 2
    partition_by = [k.strip() for k in args.partition_by.split(",") if k.strip()]
    if any(k not in PARTITION_KEYS for k in partition_by) or len(set(partition_by)) != len(partition_by):
        report(f"--partition-by {args.partition_by!r}: each of {', '.join(PARTITION_KEYS)} at most once, comma-separated")
        return 2
    source = _open(args.log)
    if source is None:
        return 2
    summary = _reading(source, lambda s: export_log(s, Path(args.output), flow=args.flow, since=since, until=until,
                                                    allow_gaps=args.allow_gaps, partition_by=partition_by),
                       "--allow-gaps exports what is there and states the gaps in the export")
    if summary is None:
        return 1
    rate = summary.decisions / summary.seconds if summary.seconds else 0.0
    write_out(f"exported {summary.decisions:,} decision records of {summary.log} to {summary.output} "
              f"({summary.files} file{'s' if summary.files != 1 else ''}, {summary.seconds:.1f} s, {rate:,.0f}/s)\n")
    for chain in summary.chains.values():
        write_out(f"  {chain.chain}: seq {chain.first_seq} to {chain.last_seq}, last hash {chain.last_hash}, "
                  f"{chain.decisions:,} decisions exported\n")
    if summary.other_records:
        skipped = ", ".join(f"{kind} x{n:,}" for kind, n in sorted(summary.other_records.items()))
        write_out(f"  records of other kinds, not exported: {skipped}\n")
    for gap in summary.gaps:
        report(f"warning: part of the log is missing, the export covers only what was there: {gap}")
    return 0
