"""``verdict notice DECISION_ID [--log DIR] [--root ROOT]``: the adverse-action notice of a DECLINE.

Reads the decision's record from the decision log, takes its reasons and fired rules, and the
applicant-facing texts from the ``notices:`` catalogue of the flow version that decided (under the
policy root), and prints the notice as Markdown: date, decision id, flow version and revision,
then the 1-4 principal reasons, most important first (engine.runtime.notice; docs/compliance.md).

Exit codes: 0 printed; 1 the decision is not in the log, was not a DECLINE, or its flow version
(or its notices: catalogue) is not under the root; 2 no log there or bad usage. When the version's
content revision under the root differs from the one recorded, the notice is still printed (the
reason codes are the recorded ones) and a warning names both revisions on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from engine.commands._io import ROOT_HELP, policy_root, report, write_out

__all__ = ["register", "run_notice"]


def register(subparsers: Any) -> None:
    """Add ``notice``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "notice",
        help="print the adverse-action notice (principal reasons) of a DECLINE from the decision log",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("decision_id", help="the decision's id (decision_id in the response and the log)")
    p.add_argument("--log", default=None,
                   help="decision log directory or PostgreSQL DSN (default: VERDICT_AUDIT, else ./audit)")
    p.add_argument("--root", type=Path, help=ROOT_HELP)
    p.set_defaults(run=run_notice)


def run_notice(args: argparse.Namespace) -> int:
    """Find the record, build the notice, print it; see the module docstring for exit codes."""
    from engine.audit.errors import AuditError
    from engine.audit.record import decision_from_record
    from engine.audit.source import open_source
    from engine.policy.loader import load
    from engine.runtime.notice import principal_reasons, render_markdown
    from engine.settings import SettingsError
    from engine.types import Action

    log = args.log or os.environ.get("VERDICT_AUDIT") or "audit"
    try:
        source = open_source(log)
    except AuditError as exc:
        report(str(exc))
        return 2
    try:
        record = next(iter(source.decisions(decision_id=args.decision_id, gaps=[])), None)
    except AuditError as exc:
        report(str(exc))
        return 1
    finally:
        source.close()
    if record is None:
        report(f"decision {args.decision_id} is not in {log}")
        return 1
    decision = decision_from_record(record)
    if decision.action != Action.DECLINE:
        report(f"decision {args.decision_id} was {decision.action.name}, not DECLINE: there is no adverse action to notify")
        return 1
    try:
        root = policy_root(args.root)
    except SettingsError as exc:
        report(str(exc))
        return 2
    result = load(root)
    src = result.flow_sources.get(decision.flow, {}).get(decision.version)
    if src is None:
        report(f"{decision.flow} version {decision.version} is not under {root}: its notices: catalogue is needed")
        return 1
    notices = src.file.notices
    if not notices:
        report(f"{decision.flow} version {decision.version} has no notices: catalogue (docs/compliance.md)")
        return 1
    current = result.compiled.get((decision.flow, decision.version))
    if current is not None and current.revision != decision.revision:
        report(f"warning: {decision.flow} {decision.version} under {root} is revision {current.revision[:12]}, the "
               f"decision was made by {decision.revision[:12]}; the texts are today's, the reasons the recorded ones")
    outcome = decision.outcome
    reasons = principal_reasons(outcome.action, outcome.reasons, outcome.fired, notices)
    if not reasons:
        report(f"decision {args.decision_id}: none of its reasons has a text in the notices: catalogue")
        return 1
    write_out(render_markdown(
        decision_id=decision.decision_id, date=str(record.get("ts", ""))[:10], flow=decision.flow,
        version=decision.version, revision=decision.revision, reasons=reasons,
    ), sys.stdout)
    sys.stdout.flush()
    return 0
