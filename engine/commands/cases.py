"""``verdict cases list|show|claim|assign|decide|note``: the review queue from a terminal.

Works on the case store directly (``--store``: a SQLite file or a PostgreSQL DSN; default the
``cases`` setting, i.e. ``audit/cases.db`` beside the decision log). The server relays each
disposition to the decision log and to ``CaseService`` streams. Exit codes: 0 done, 1 the store
failed, 2 bad usage (a bad field, an unknown case, a step the case's state refuses).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import time
from pathlib import Path
from typing import Any

from engine.commands._io import print_json, report, write_out

__all__ = ["register", "run"]


def _when(seconds: float | None) -> str:
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%d %H:%M UTC") if seconds else "-"


def register(subparsers: Any) -> None:
    """Add ``cases {list,show,claim,assign,decide}``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "cases", help="the review queue: list, show, claim, assign and decide cases",
        description="Cases are opened by `verdict serve` for each REVIEW decision (docs/review-queue.md).",
    )
    sub = p.add_subparsers(dest="cases_command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--store", metavar="PATH|DSN", help="case store (default: the cases setting, audit/cases.db)")
    ls = sub.add_parser("list", parents=[common], help="cases in queue order (priority, then due time)")
    ls.add_argument("--state", choices=["open", "assigned", "decided"], help="only cases in this state")
    ls.add_argument("--flow", help="only this flow's cases")
    ls.add_argument("--queue", help="only this queue's cases")
    ls.add_argument("--priority", choices=["high", "normal", "low"], help="only this priority")
    ls.add_argument("--assignee", help="only cases held by this analyst")
    ls.add_argument("--limit", type=int, default=50, help="at most this many (default 50, at most 1000)")
    ls.add_argument("--json", action="store_true", help="print JSON")
    show = sub.add_parser("show", parents=[common], help="one case: decision, reasons, masked input, links, history")
    show.add_argument("case_id")
    show.add_argument("--json", action="store_true", help="print JSON")
    show.add_argument("--root", type=Path, default=None, help="policy root, to recompute the derived features (default as serve)")
    claim = sub.add_parser("claim", parents=[common], help="take an open case")
    claim.add_argument("case_id")
    claim.add_argument("--actor", required=True, help="who claims it (required)")
    assign = sub.add_parser("assign", parents=[common], help="give a case to an analyst")
    assign.add_argument("case_id")
    assign.add_argument("--to", required=True, dest="assignee", help="the analyst")
    assign.add_argument("--actor", required=True, help="who assigns it (required)")
    decide = sub.add_parser("decide", parents=[common], help="give a case its final disposition")
    decide.add_argument("case_id")
    decide.add_argument("--disposition", required=True, help="approve, decline or escalate")
    decide.add_argument("--note", default="", help="why (kept with the case and in the decision log)")
    decide.add_argument("--actor", required=True, help="who decides (required)")
    decide.add_argument("--outcome", default="", help="outcome the review established: confirmed_fraud, chargeback, default, repaid")
    note = sub.add_parser("note", parents=[common], help="add a note to a case's history (any state)")
    note.add_argument("case_id")
    note.add_argument("--text", required=True, help="the note (card numbers are masked when stored)")
    note.add_argument("--actor", required=True, help="who writes it (required)")
    p.set_defaults(run=run)


def store_location(given: str | None) -> str:
    """``--store``, else the ``cases`` setting (VERDICT_CASES, default beside the log)."""
    if given:
        return given
    from engine.settings import Settings

    location = Settings.load().cases_location
    if location is None:
        raise ValueError("no case store: the cases setting is off; give --store PATH|DSN")
    return location


def _line(case: Any, now: float) -> str:
    late = " OVERDUE" if case.overdue(now) else ""
    who = case.assignee or "-"
    done = f" {case.disposition.value}" if case.disposition else ""
    return f"{case.case_id}  {case.flow}/{case.version}  {case.queue}  {case.priority.value:<6}  {case.state.value:<8}{done}  {who}  due {_when(case.due_at)}{late}"


def _features(case: Any, root: Path | None) -> Any:
    """The case's features as of decision time (engine.training.from_log.recompute_features)."""
    from engine.commands._io import policy_root
    from engine.policy.loader import load
    from engine.training.from_log import Recomputed, flow_versions, recompute_features

    try:
        compiled = load(policy_root(root)).compiled
    except Exception as exc:  # noqa: BLE001 - an unreadable root leaves the features unavailable, the case still shows
        return Recomputed({}, [], dict(case.record.get("state") or {}), f"the policy root cannot be loaded: {exc}")
    return recompute_features(case.record, flow_versions(compiled, case.flow))


def _show(case: Any, steps: list[dict[str, Any]], features: Any) -> str:
    from engine.training.from_log import features_text

    r = case.record
    lines = [
        f"case {case.case_id} ({case.state.value}{', ' + case.disposition.value if case.disposition else ''})",
        f"  decision {case.decision_id}  request {case.request_id or '-'}  {case.flow} v{case.version} ({case.route})",
        f"  queue {case.queue}, priority {case.priority.value}, opened {_when(case.opened_at)}, due {_when(case.due_at)}",
        f"  assignee {case.assignee or '-'}" + (f"; decided by {case.decided_by} at {_when(case.decided_at)}: {case.note}" if case.decided_by else ""),
        "  reasons:",
        *(f"    {x.get('code')}: {x.get('message')}" + (f" ({x['feature']} {x.get('contribution', 0):+.3f})" if x.get("feature") else "") for x in r.get("reasons", [])),
        "  scores: " + (", ".join(f"{k}={v:.4f}" for k, v in r.get("scores", {}).items()) or "-"),
        "  input (as logged, masked): " + ", ".join(f"{k}={v}" for k, v in r.get("input", {}).items()),
        "  features (recomputed as of decision time): " + (", ".join(features_text(features)) or "none"),
        "  linked earlier cases: " + (", ".join(case.linked) or "none"),
        "  history:",
        *(f"    {_when(s['at'])}  {s['step']}  by {s['actor']}" + (f"  {s['detail']}" if s["detail"] else "") for s in steps),
    ]
    return "\n".join(lines) + "\n"


def _print_case(store: Any, args: argparse.Namespace) -> None:
    """``cases show``: the case, its features as of decision time and its history (text or JSON)."""
    from engine.cases import as_mapping

    case = store.get(args.case_id)
    features = _features(case, args.root)
    if args.json:
        print_json({**as_mapping(case), "steps": store.steps(args.case_id), "features": dataclasses.asdict(features)})
    else:
        write_out(_show(case, store.steps(args.case_id), features))


def run(args: argparse.Namespace) -> int:
    """Run the sub-command against the store."""
    from engine.cases import CaseNotFound, CaseQuery, CaseState, IllegalTransition, Priority, as_mapping, open_store
    from engine.cases.desk import MAX_ACTOR_CHARS, decide_case, note_case
    from engine.errors import InvalidInput, VerdictError

    try:
        store = open_store(store_location(args.store))
    except (ValueError, VerdictError) as exc:
        report(str(exc))
        return 1 if isinstance(exc, VerdictError) else 2
    now = time.time()
    try:
        command = args.cases_command
        if command in ("claim", "assign") and (not args.actor.strip() or len(args.actor) > MAX_ACTOR_CHARS):
            raise InvalidInput([])  # the message below names the field
        if command == "list":
            cases = store.list_cases(CaseQuery(
                state=CaseState(args.state) if args.state else None, flow=args.flow, queue=args.queue,
                priority=Priority(args.priority) if args.priority else None, assignee=args.assignee, limit=args.limit,
            ))
            if args.json:
                print_json([as_mapping(c) for c in cases])
            else:
                write_out("".join(_line(c, now) + "\n" for c in cases) or "no cases\n")
            return 0
        if command == "show":
            _print_case(store, args)
            return 0
        if command == "claim":
            case = store.claim(args.case_id, args.actor.strip(), now=now)
        elif command == "assign":
            case = store.assign(args.case_id, args.assignee, args.actor.strip(), now=now)
        elif command == "note":
            case = note_case(store, args.case_id, args.text, args.actor, now=now)
        else:
            case = decide_case(store, args.case_id, args.disposition, args.note, args.actor, outcome=args.outcome, now=now)
        write_out(_line(case, now) + "\n")
        return 0
    except InvalidInput as exc:
        report(f"invalid: {exc}" if exc.errors else f"invalid: actor: required, at most {MAX_ACTOR_CHARS} characters")
        return 2
    except (CaseNotFound, IllegalTransition) as exc:
        report(str(exc))
        return 2
    except VerdictError as exc:
        report(str(exc))
        return 1
    finally:
        store.close()
