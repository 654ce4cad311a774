"""``verdict outcomes import CSV``: attach outcome labels to logged decisions.

Rows name a decision by ``decision_id`` or ``request_id`` (looked up in the decision log,
``--log``), an ``outcome`` and its ``date`` (engine/cases/outcomes.py has the format). Every bad
row is reported with its line and nothing is imported (exit 2); a good file is imported into the
case store (``--store``) and importing it again adds nothing (one label per decision and kind).
Exit codes: 0 imported, 1 the log or store cannot be read, 2 a bad file.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.commands._io import report, write_out

__all__ = ["register", "requests_in_log", "run", "store_outcome_flags", "with_store_outcomes"]


def register(subparsers: Any) -> None:
    """Add ``outcomes import CSV [--log DIR|DSN] [--store PATH|DSN]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "outcomes", help="attach outcomes (chargeback, confirmed_fraud, default, repaid) to decisions",
        description="Outcome labels used by replay, backtest and train --from-log (docs/review-queue.md).",
    )
    sub = p.add_subparsers(dest="outcomes_command", required=True)
    imp = sub.add_parser("import", help="import a CSV of decision_id|request_id,outcome,date")
    imp.add_argument("csv", type=Path)
    imp.add_argument("--log", metavar="DIR|DSN", help="decision log, to find request ids (default: the audit setting)")
    imp.add_argument("--store", metavar="PATH|DSN", help="case store (default: the cases setting, audit/cases.db)")
    p.set_defaults(run=run)


def requests_in_log(location: str) -> dict[str, str]:
    """``request id -> decision id`` of the returned decisions (not shadows) in the log at ``location``."""
    from engine.audit.source import open_source

    source = open_source(location)
    try:
        return {
            str(d["request_id"]): str(d["decision_id"])
            for d in source.decisions(gaps=[])
            if d.get("request_id") and d.get("route") != "shadow"
        }
    finally:
        source.close()


def store_outcome_flags(location: str, *, by_request: bool = False) -> dict[str, bool]:
    """``id -> is_bad`` (by decision id; ``by_request``: by request id too) of every label in the case
    store at ``location``, for ``verdict replay`` and ``verdict backtest --outcomes-store``; raises VerdictError."""
    from engine.cases import open_store
    from engine.cases.outcomes import outcome_flags

    store = open_store(location)
    try:
        return outcome_flags(store.outcomes(), by_request=by_request)
    finally:
        store.close()


def with_store_outcomes(flags: dict[str, bool] | None, store: str | None, *, by_request: bool = False) -> dict[str, bool] | None:
    """``flags`` (from an outcomes CSV) completed by the labels of the case store ``store`` (the CSV's
    rows win); unchanged without a store. Raises ``OutcomesError`` when the store cannot be read."""
    if not store:
        return flags
    from engine.audit.replay import OutcomesError
    from engine.errors import VerdictError

    try:
        return {**store_outcome_flags(store, by_request=by_request), **(flags or {})}
    except VerdictError as exc:
        raise OutcomesError(f"cannot read outcomes from the case store: {exc}") from None


def run(args: argparse.Namespace) -> int:
    """Parse every row, then import them all, or report every bad row."""
    from engine.cases import open_store
    from engine.cases.outcomes import parse_outcomes
    from engine.commands.cases import store_location
    from engine.errors import VerdictError
    from engine.settings import Settings
    from engine.tabular.reader import TableError, read_rows

    try:
        table = read_rows(args.csv)
    except TableError as exc:
        report(str(exc))
        return 2
    requests: dict[str, str] = {}
    names = {c.lower(): c for c in table.header}
    ids = table.column(names["decision_id"]) if "decision_id" in names else [None] * len(table.rows)
    by_request = table.column(names["request_id"]) if "request_id" in names else [None] * len(table.rows)
    needs_log = any(req and not did for did, req in zip(ids, by_request, strict=True))  # a row found by request id
    if needs_log:
        settings = Settings.load()
        log = args.log or settings.audit_dsn or (str(settings.audit_dir) if settings.audit_dir else None)
        if log is None:
            report("request ids are looked up in the decision log: give --log DIR|DSN")
            return 2
        try:
            requests = requests_in_log(log)
        except VerdictError as exc:
            report(str(exc))
            return 1
    labels, problems = parse_outcomes(table, requests, f"import:{args.csv.name}")
    if problems:
        for problem in problems:
            report(problem)
        report(f"{len(problems)} bad row(s): nothing imported")
        return 2
    try:
        store = open_store(store_location(args.store))
        try:
            added, known = store.add_outcomes(labels)
        finally:
            store.close()
    except (ValueError, VerdictError) as exc:
        report(str(exc))
        return 1
    write_out(f"{added} outcome(s) imported, {known} already there\n")
    return 0
