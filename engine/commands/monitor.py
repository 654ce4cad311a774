"""``verdict monitor``: a stability report (PSI, score distribution, action and rule hit rates) from the decision log.

``verdict monitor --from-log LOG --out DIR [--since T] [--until T] [--every day|hour] [--flow F]
[--watch W] [--act A] [--root DIR]`` reads the served decisions of the log (a directory or a
PostgreSQL DSN) in ``[since, until)`` and writes ``DIR/report.md`` with PNG figures: PSI per model
input against the training bins in each model's ``baseline.json``, the score distribution live vs
training, approval/review/decline rates and rule hit rates per period (engine.monitor.report).
Each model is graded with the PSI thresholds of the flows running it (their ``psi:``, default 0.1
watch and 0.25 act); ``--watch`` and ``--act`` override them for every model.

Exit codes: 0 written, 1 the log or the policies cannot be read, or no decision in the period;
2 bad usage (a time that is not ISO 8601, thresholds out of order).
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.commands._io import ROOT_HELP, policy_root, report

__all__ = ["parse_when", "register", "run"]


def register(subparsers: Any) -> None:
    """Add ``monitor --from-log LOG --out DIR``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "monitor",
        help="write a stability report (PSI, score distribution, action and rule rates) from the decision log",
        description="Stability report of the served decisions in a period: PSI per model input and of the score "
        "against the training bins, action rates and rule hit rates over time (docs/operations.md).",
    )
    p.add_argument("--from-log", required=True, metavar="LOG", help="decision log directory or PostgreSQL DSN")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory for report.md and its PNG figures")
    p.add_argument("--since", metavar="TIME", help="first instant included, ISO 8601 (UTC unless it says otherwise)")
    p.add_argument("--until", metavar="TIME", help="first instant excluded, ISO 8601")
    p.add_argument("--every", choices=("day", "hour"), default="day", help="period of the rates over time (default day)")
    p.add_argument("--flow", help="only this flow's decisions")
    p.add_argument("--watch", type=float, help="PSI from which an input is graded 'watch', for every model "
                   "(default: each flow's psi: watch, 0.1 when it declares none)")
    p.add_argument("--act", type=float, help="PSI from which an input is graded 'act', for every model "
                   "(default: each flow's psi: act, 0.25 when it declares none)")
    p.add_argument("--root", type=Path, help=ROOT_HELP)
    p.set_defaults(run=run)


def parse_when(text: str) -> float:
    """Epoch seconds of an ISO 8601 date or time (UTC when no offset is given); ValueError otherwise."""
    t = datetime.fromisoformat(text)
    return (t if t.tzinfo else t.replace(tzinfo=UTC)).timestamp()


def run(args: argparse.Namespace) -> int:
    """Read the log, compute the stability, write the report."""
    from engine.extras import require

    require("plots", "verdict monitor (its report's figures)")
    from engine.audit.errors import AuditError
    from engine.audit.source import open_source
    from engine.errors import PolicyError
    from engine.monitor.baseline import BaselineError
    from engine.monitor.live import psi_thresholds
    from engine.monitor.psi import ACT, WATCH
    from engine.monitor.report import stability_from_records, write_report
    from engine.policy.loader import load_policies
    from engine.settings import SettingsError

    problems = []
    since = until = None
    for name in ("since", "until"):
        text = getattr(args, name)
        if text:
            try:
                value = parse_when(text)
            except ValueError:
                problems.append(f"--{name} {text!r} is not an ISO 8601 date or time (e.g. 2026-11-29 or 2026-11-29T14:00)")
                continue
            since, until = (value, until) if name == "since" else (since, value)
    overrides = args.watch is not None or args.act is not None
    watch = WATCH if args.watch is None else args.watch
    act = ACT if args.act is None else args.act
    if not 0 < watch < act:
        problems.append(f"--watch {watch:g} and --act {act:g}: need 0 < watch < act")
    if problems:
        for problem in problems:
            report(problem)
        return 2
    try:
        root = policy_root(args.root)
        policies = load_policies(root)
    except SettingsError as exc:
        report(str(exc))
        return 2
    except PolicyError as exc:
        report(f"cannot load policies from {root}:\n{exc}")
        return 1
    try:
        source = open_source(args.from_log)
        try:
            stability = stability_from_records(source.decisions(flow=args.flow), policies, since=since, until=until, every=args.every)
        finally:
            source.close()
    except (AuditError, BaselineError) as exc:
        report(str(exc))
        return 1
    if stability.decisions == 0:
        report(f"no served decision in {args.from_log} for the period{' of flow ' + args.flow if args.flow else ''}")
        return 1
    thresholds = None if overrides else psi_thresholds(policies)
    path = write_report(args.out, stability, source=source.describe(), watch=watch, act=act, thresholds=thresholds)
    print(f"wrote {path} ({stability.decisions} decisions, {len(stability.models)} model(s))")
    return 0
