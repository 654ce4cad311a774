"""``verdict audit``: verify, show and recover a decision log (a directory or a PostgreSQL DSN).

- ``verify LOG``: checks every record of every chain; prints the record count and last hash;
  exits 1 naming the first bad record when anything was edited, removed, reordered or truncated.
- ``show LOG [--last N] [--decision ID] [--flow F] [--dispositions] [--allow-gaps]``: decision
  records (with ``--dispositions``: the review cases' disposition records) as JSON lines. The log is followed as it is read: a gap (a missing or vanished segment, missing
  records) exits 1 naming it, unless ``--allow-gaps``, which prints what is there and names every
  gap on stderr.
- ``recover DIR``: what a restarting server does first: trims a torn last record left by a crash.

Exit codes: 0 fine, 1 the log is bad, 2 no log there or bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine.commands._io import report, write_out

__all__ = ["register", "run_recover", "run_show", "run_verify"]


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

    recover = sub.add_parser("recover", help="trim a torn last record left by a crash (as a restart does)")
    recover.add_argument("log", help="log directory")
    recover.set_defaults(run=run_recover)


def run_verify(args: argparse.Namespace) -> int:
    from engine.audit.errors import AuditError
    from engine.audit.source import open_source

    try:
        source = open_source(args.log)
    except AuditError as exc:
        report(str(exc))
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
    from engine.audit.source import open_source

    if args.last is not None and args.last < 0:
        report("--last must be 0 or more")
        return 2
    try:
        source = open_source(args.log)
    except AuditError as exc:
        report(str(exc))
        return 2
    from engine.privacy import scrub_value

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
