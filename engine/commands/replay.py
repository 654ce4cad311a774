"""``verdict replay``: re-decide a flow's logged requests with another version and report the change.

``verdict replay LOG --flow F --version V [--outcomes CSV] [--protected CSV [--age COL]] [--json FILE|-] [--root DIR]
[--allow-gaps]`` reads the
decision log (a directory or a PostgreSQL DSN) — or, with ``--input EXPORT [--engine local|spark]
[--master URL]`` instead of LOG, the log exported to Parquet (``verdict audit export``), replayed in
this process or on Apache Spark with the same report (engine.batch.replay_spark) — re-decides every logged decision of flow F with
version V of the policies under --root, and prints a table: how many actions change, the action
rates before and after, the transition matrix, the rules behind the changes and, with an outcomes
file (decision or request id -> good/bad), precision/recall and the bad rate of approved business
for both versions. ``--json FILE`` also writes the report as JSON (``-``: JSON on stdout instead of
the table). ``--protected CSV`` (request_id plus protected attribute columns, never in the log) is
joined in memory: the report gains approval rate, adverse impact ratio and bad rate of approved per
group, logged and replayed (docs/compliance.md). Progress goes to stderr on long replays.

The log is followed as it is read (engine.audit.follow): a gap — a missing segment, one that
disappears while the replay reads (rotated or archived), records missing from a chain — stops the
replay with exit 1 and one line naming it; with ``--allow-gaps`` the replay goes on over what is
there and the report lists every gap and how many decisions it covers.

An export states the gaps it was made with (``verdict audit export --allow-gaps``); its replay
lists them the same way.

Exit codes: 0 done, 1 the log, the export or the policies cannot be read (a gap without
--allow-gaps), 2 bad usage (unknown flow/version, unreadable outcomes or protected-attributes file,
LOG and --input both or neither, --engine spark without --input or without the [spark] extra).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engine.commands._io import ROOT_HELP, policy_root, report, write_out
from engine.runtime.privacy import scrub_value

if TYPE_CHECKING:
    from engine.audit.replay import Protected
    from engine.audit.replay_report import ReplayReport
    from engine.runtime.flow import CompiledFlow

__all__ = ["Progress", "register", "run"]


def register(subparsers: Any) -> None:
    """Add ``replay LOG --flow F --version V [--outcomes CSV] [--json FILE] [--root DIR]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "replay",
        help="re-decide logged requests with another flow version and report what changes",
        description="Backtest: re-decide every logged decision of a flow with another version.",
    )
    p.add_argument("log", nargs="?", help="decision log directory or PostgreSQL DSN (or give --input)")
    p.add_argument("--input", metavar="EXPORT", help="the log exported to Parquet (verdict audit export): a file or directory")
    p.add_argument("--engine", choices=("local", "spark"), default="local",
                   help="replay --input in this process (local, default) or on Apache Spark (spark)")
    p.add_argument("--master", default="local[2]", help="Spark master URL for --engine spark (default local[2])")
    p.add_argument("--flow", required=True, help="flow whose decisions to replay")
    p.add_argument("--version", required=True, help="flow version to replay them through")
    p.add_argument("--outcomes", type=Path, metavar="CSV", help="known outcomes: decision_id|request_id,outcome (good/bad)")
    p.add_argument("--outcomes-store", metavar="PATH|DSN",
                   help="also use the outcome labels of this case store (verdict outcomes import, case dispositions); --outcomes rows win")
    p.add_argument("--protected", type=Path, metavar="CSV",
                   help="protected attributes (request_id plus one column per attribute), joined in memory, never logged: "
                        "approval rate, adverse impact ratio and bad rate of approved per group")
    p.add_argument("--age", default=None, metavar="COL", help="the --protected column holding ages, grouped into age bands")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE (- for stdout, no table)")
    p.add_argument("--root", type=Path, help=ROOT_HELP)
    p.add_argument("--no-progress", action="store_true", help="do not report progress on stderr")
    p.add_argument(
        "--allow-gaps",
        action="store_true",
        help="replay what is there when part of the log is missing, and list the gaps in the report (default: exit 1)",
    )
    p.set_defaults(run=run)


class Progress:
    """Reports how far a replay got on a stream, at most once per ``interval`` seconds."""

    def __init__(self, total: int | None, stream: TextIO, interval: float = 2.0) -> None:
        self.total = total
        self.stream = stream
        self.interval = interval
        self.tty = stream.isatty()
        self._start = time.monotonic()
        self._next = self._start + interval
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done = n
        if n & 255 == 0 and time.monotonic() >= self._next:
            self._next = time.monotonic() + self.interval
            self._show()

    def _show(self, end: str = "") -> None:
        elapsed = max(time.monotonic() - self._start, 1e-9)
        of = f"/{self.total:,}" if self.total else ""
        pct = f" ({100 * self.done / self.total:.0f}%)" if self.total else ""
        text = f"replay: {self.done:,}{of} records{pct}, {self.done / elapsed:,.0f}/s"
        self.stream.write(("\r" + text + end) if self.tty else (text + "\n"))
        self.stream.flush()

    def finish(self) -> None:
        if time.monotonic() - self._start >= self.interval:
            self._show("\n" if self.tty else "")


def _usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the combination of LOG, --input and --engine (None: nothing)."""
    if (args.log is None) == (args.input is None):
        return "give the decision log (LOG) or its Parquet export (--input EXPORT), one of them"
    if args.engine == "spark" and args.input is None:
        return "--engine spark replays a Parquet export: export the log first (verdict audit export LOG --output F.parquet)"
    if args.input is not None and args.allow_gaps:
        return "--allow-gaps applies to reading a log: an export states the gaps it was made with (verdict audit export --allow-gaps)"
    return None


# Long (70 lines): the command's flags, then one message and exit code per kind of failure.
def run(args: argparse.Namespace) -> int:
    """Load the version, replay the log (or its export) through it, print the report."""
    from engine.audit.errors import AuditError, LogGap
    from engine.audit.replay import OutcomesError, ProtectedFileError, load_outcomes, load_protected
    from engine.audit.report import render_table
    from engine.commands.outcomes import with_store_outcomes
    from engine.errors import FlowNotFound, FlowUnavailable, PolicyError
    from engine.policy.loader import load_policies
    from engine.settings import SettingsError

    problem = _usage(args)
    if problem is not None:
        report(problem)
        return 2
    try:
        root = policy_root(args.root)
        outcomes = load_outcomes(args.outcomes) if args.outcomes is not None else None
        outcomes = with_store_outcomes(outcomes, args.outcomes_store)
        if args.age is not None and args.protected is None:
            raise ProtectedFileError("--age names a column of the --protected file: give --protected")
        protected = load_protected(args.protected, age=args.age) if args.protected is not None else None
    except (SettingsError, OutcomesError, ProtectedFileError) as exc:
        report(str(exc))
        return 2

    try:
        policies = load_policies(root)
    except PolicyError as exc:
        report(f"cannot load policies from {root}:\n{exc}")
        return 1
    entry = policies.flows.get(args.flow)
    compiled = entry.versions.get(args.version) if entry is not None else None
    if compiled is None:
        known = sorted(entry.versions) if entry is not None else []
        report(str(FlowNotFound(args.flow, sorted(policies.flows)) if entry is None else f"version {args.version!r} of flow {args.flow!r} not found; known versions: {', '.join(known)}"))
        return 2
    try:
        if args.input is not None:
            result = _replay_export(args, root, compiled, outcomes, protected)
        else:
            result = _replay_log(args, compiled, outcomes, protected)
    except LogGap as exc:
        report(f"{exc}; --allow-gaps replays what is there and lists the gaps")
        return 1
    except (AuditError, PolicyError) as exc:
        report(str(exc))
        return 1
    except FlowUnavailable as exc:  # on Spark the flow must load as a server loads it (lint and policy tests)
        report(f"{exc.flow} is not loaded; its problems:\n" + "\n".join(f"  {p}" for p in exc.problems))
        return 1
    document = json.dumps(scrub_value(result.as_dict()), indent=2, ensure_ascii=False) + "\n"  # no PAN in a report
    if args.json == "-":
        write_out(document)
    else:
        write_out(render_table(result))
        if args.json:
            Path(args.json).write_text(document, encoding="utf-8")
    sys.stdout.flush()
    return 0


def _replay_log(args: argparse.Namespace, compiled: CompiledFlow, outcomes: Mapping[str, bool] | None,
                protected: Protected | None) -> ReplayReport:
    """The replay of the log at ``args.log``, with progress on stderr."""
    from engine.audit.follow import Gap
    from engine.audit.replay import replay
    from engine.audit.source import open_source

    source = open_source(args.log)
    gaps: list[Gap] | None = [] if args.allow_gaps else None
    try:
        progress = None if args.no_progress else Progress(source.count_hint(args.flow), sys.stderr)
        result = replay(source.decisions(flow=args.flow, gaps=gaps), compiled, outcomes=outcomes,
                        location=source.describe(), progress=progress, gaps=gaps, protected=protected)
        if progress is not None:
            progress.finish()
        return result
    finally:
        source.close()


def _replay_export(args: argparse.Namespace, root: Path, compiled: CompiledFlow, outcomes: Mapping[str, bool] | None,
                   protected: Protected | None) -> ReplayReport:
    """The replay of the export at ``args.input``, here or on Spark (``--engine``)."""
    from engine.audit.exported import ExportedLog
    from engine.audit.replay import replay

    export = ExportedLog(args.input)
    if args.engine == "spark":
        from engine.extras import require

        require("spark", "verdict replay --engine spark")
        from engine.batch.replay_spark import replay_export

        return replay_export(export, args.flow, args.version, root=root, outcomes=outcomes, protected=protected,
                             master=args.master)  # states export.notes() itself
    progress = None if args.no_progress else Progress(export.count_hint(args.flow), sys.stderr)
    result = replay(export.decisions(args.flow, in_log_order=compiled.state is not None), compiled, outcomes=outcomes, location=export.describe(),
                    progress=progress, gaps=export.gaps(), protected=protected, order=lambda r: int(r["log_order"]))
    if progress is not None:
        progress.finish()
    result.notes = export.notes()
    return result
