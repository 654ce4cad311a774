"""Outcome labels from a CSV (``verdict outcomes import``), and as the good/bad flags reports use.

The file (read by ``engine.tabular``, like every CSV: encoding, delimiter and quoting sniffed)::

    decision_id,request_id,outcome,date
    0b7c…,,chargeback,2026-03-14
    ,loan-8812,repaid,2026-09-30

Each row names its decision by ``decision_id`` or ``request_id`` (one is enough; a request id is
looked up in the decision log), an ``outcome`` (chargeback, confirmed_fraud, default, repaid) and
the ISO ``date`` it happened. ``parse_outcomes`` checks every row and returns every problem with
its line; nothing is imported from a file with a bad row. Pure: the caller reads the file and the
log.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from engine.cases.model import OutcomeKind, OutcomeLabel
from engine.tabular.reader import RawTable

__all__ = ["outcome_flags", "parse_outcomes"]

_KINDS = {k.value: k for k in OutcomeKind}


def _cell(table: RawTable, names: Mapping[str, str], name: str, row: int) -> str:
    column = names.get(name)
    return (table.column(column)[row] or "").strip() if column is not None else ""


def parse_outcomes(table: RawTable, decision_of_request: Mapping[str, str], source: str) -> tuple[list[OutcomeLabel], list[str]]:
    """``(labels, problems)``: a label per good row; each problem is ``file:line: what is wrong``."""
    names = {c.lower(): c for c in table.header}
    problems: list[str] = []
    missing = [c for c in ("outcome", "date") if c not in names]
    if "decision_id" not in names and "request_id" not in names:
        missing.insert(0, "decision_id or request_id")
    if missing:
        return [], [f"{table.path}: missing column(s) {', '.join(missing)}; found {', '.join(table.header)}"]
    labels: list[OutcomeLabel] = []
    for row in range(len(table.rows)):
        where = table.where(row)
        decision_id = _cell(table, names, "decision_id", row)
        request_id = _cell(table, names, "request_id", row)
        kind = _cell(table, names, "outcome", row).lower()
        date = _cell(table, names, "date", row)
        bad: list[str] = []
        if not decision_id and request_id:
            decision_id = decision_of_request.get(request_id, "")
            if not decision_id:
                bad.append(f"request_id {request_id!r} is not in the decision log")
        elif not decision_id:
            bad.append("needs a decision_id or a request_id")
        if kind not in _KINDS:
            bad.append(f"outcome {kind!r} is not one of {', '.join(_KINDS)}")
        try:
            dt.date.fromisoformat(date)
        except ValueError:
            bad.append(f"date {date!r} is not an ISO date (YYYY-MM-DD)")
        if bad:
            problems.append(f"{where}: " + "; ".join(bad))
            continue
        labels.append(OutcomeLabel(decision_id, _KINDS[kind], date, source, request_id))
    return labels, problems


def outcome_flags(labels: Mapping[str, list[OutcomeLabel]], *, by_request: bool = False) -> dict[str, bool]:
    """``id -> is_bad`` for replay and backtest: a decision with any bad label (chargeback,
    confirmed_fraud, default) is bad. Keyed by decision id (replay reads decisions from the log);
    ``by_request`` adds the request ids the labels carry (a backtest history joined on them)."""
    flags: dict[str, bool] = {}
    for decision_id, found in labels.items():
        bad = any(label.kind.bad for label in found)
        flags[decision_id] = bad
        for label in found:
            if by_request and label.request_id:
                flags[label.request_id] = flags.get(label.request_id, False) or bad
    return flags
