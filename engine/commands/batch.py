"""``verdict batch``: decide every row of a CSV or Parquet file into a CSV or Parquet file of decisions.

One output row per input row, in order (engine.batch.records); a row that fails validation gets
its error in the ``error`` column and the run goes on. The summary (rows, decided, failed, actions,
error codes, throughput) is printed as JSON on stdout; progress goes to stderr. Batch decisions are
not written to the decision log. ``--engine spark`` runs the same core on Apache Spark
(engine.batch.spark; needs the ``[spark]`` extra and Java). See docs/batch.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.commands._io import ROOT_HELP, note, policy_root, print_json, report

__all__ = ["register", "run"]

PROGRESS_EVERY = 5.0  # seconds between progress lines on stderr


def register(subparsers: Any) -> None:
    """Add ``batch FLOW --input FILE --output FILE [--version V] [--engine local|spark] ...``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "batch",
        help="decide every row of a CSV/Parquet file into a CSV/Parquet file of decisions",
        description="Decide every row of --input with the policies under --root and write one decision per row "
        "to --output (.csv or .parquet). Not written to the decision log. See docs/batch.md.",
    )
    p.add_argument("flow", help="flow name, e.g. credit_application")
    p.add_argument("--input", "-i", required=True, type=Path, help="input table: .csv or .parquet")
    p.add_argument("--output", "-o", required=True, type=Path, help="output table: .csv or .parquet")
    p.add_argument("--version", default="", help="decide every row with this version (default: the online routing)")
    p.add_argument("--engine", choices=("local", "spark"), default="local", help="local (default) or spark")
    p.add_argument("--id-column", default=None, help="input column copied to the output's id column (not sent to the flow)")
    p.add_argument("--chunk-rows", type=int, default=10_000, help="rows decided at a time (default 10000)")
    p.add_argument("--jobs", type=int, default=1,
                   help="worker processes for --engine local (default 1; e.g. the number of cores); "
                        "a flow with stateful features is decided in one")
    p.add_argument("--master", default="local[2]", help="Spark master for --engine spark (default local[2])")
    p.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Decide the file; exit 0 when every row was decided, 1 when some rows failed or policies are
    broken, 2 for bad usage (unknown flow or version, unreadable input, unknown format)."""
    from engine.batch.run import Summary, decide_file
    from engine.batch.table import TableFormatError
    from engine.errors import FlowNotFound, FlowUnavailable, PolicyError, VersionNotFound
    from engine.runtime.service import load_decider
    from engine.settings import SettingsError
    from engine.tabular import TableError

    if args.chunk_rows < 1 or args.jobs < 1:
        report(f"--chunk-rows and --jobs must be at least 1, not {args.chunk_rows} and {args.jobs}")
        return 2
    try:
        root = policy_root(args.root)
    except SettingsError as exc:
        report(str(exc))
        return 2
    last = [0.0]

    def progress(s: Summary) -> None:
        if s.seconds - last[0] >= PROGRESS_EVERY:
            last[0] = s.seconds
            sys.stderr.write(f"verdict: batch: {s.rows:,} rows, {s.failed:,} failed, {s.rows / s.seconds:,.0f} rows/s\n")
            sys.stderr.flush()

    try:
        if args.engine == "spark":
            from engine.batch.spark import decide_file_spark

            summary = decide_file_spark(
                root, args.flow, args.input, args.output, version=args.version, id_column=args.id_column,
                master=args.master, progress=progress,
            )
        else:
            try:
                decider = load_decider(root)
            except PolicyError as exc:
                report(f"cannot load policies from {root}:\n{exc}")
                return 1
            summary = decide_file(
                decider, args.flow, args.input, args.output, version=args.version, id_column=args.id_column,
                chunk_rows=args.chunk_rows, progress=progress, jobs=args.jobs,
            )
    except FlowUnavailable as exc:
        report(f"{exc.flow} is not loaded; its problems:\n" + "\n".join(f"  {p}" for p in exc.problems))
        return 1
    except (FlowNotFound, VersionNotFound, TableError, TableFormatError) as exc:
        report(str(exc))
        return 2
    except ImportError as exc:
        report(f"--engine spark needs the [spark] extra (pip install -e '.[spark]'): {exc}")
        return 2
    if summary.ignored_columns:
        note(f"columns not in the flow's input, not sent: {', '.join(summary.ignored_columns)}")
    print_json(summary.to_dict())
    return 1 if summary.failed else 0
