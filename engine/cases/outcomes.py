"""Outcome labels from a CSV (``verdict outcomes import``), and as the good/bad flags reports use.

The file (read by ``engine.tabular``, like every CSV: encoding, delimiter and quoting sniffed)::

    decision_id,request_id,outcome,date
    0b7c…,,chargeback,2026-03-14
    ,loan-8812,repaid,2026-09-30

Each row names its decision by ``decision_id`` or ``request_id`` (one is enough; a request id is
looked up in the decision log), an ``outcome`` (chargeback, confirmed_fraud, default, repaid) and
the ISO ``date`` it happened. ``parse_outcomes`` checks every row and returns every problem with
its line; nothing is imported from a file with a bad row. ``labels_from_entries`` does the same for
the entries of ``CaseService.RecordOutcomes`` (by decision id only), naming each bad field as
``outcomes[3].date``. Both use ``check_outcome``, the one check of a label. Pure: the caller reads
the file and the log.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence

from engine.cases.model import OutcomeKind, OutcomeLabel
from engine.errors import FieldError, InvalidInput
from engine.limits import MAX_FIELD_ERRORS, MAX_QUOTED_CHARS
from engine.tabular.reader import RawTable

__all__ = ["MAX_DECISION_ID_CHARS", "MAX_OUTCOMES_PER_CALL", "check_outcome", "labels_from_entries", "outcome_flags", "parse_outcomes"]

_KINDS = {k.value: k for k in OutcomeKind}
MAX_OUTCOMES_PER_CALL = 1000
"""Labels per ``RecordOutcomes`` call: bounds one call's work and its single write transaction."""
_CALENDAR_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
MAX_DECISION_ID_CHARS = 128
"""A decision id's length limit (ours are 32-hex UUIDs; the same limit as a case id)."""


def _quoted(text: str) -> str:
    return repr(text if len(text) <= MAX_QUOTED_CHARS else text[:MAX_QUOTED_CHARS] + "...")


def check_outcome(outcome: str, date: str, decision_id: str | None = None) -> tuple[OutcomeKind | None, list[FieldError]]:
    """The one check of a label: ``(kind, problems)``; ``kind`` is None when ``outcome`` is bad.

    ``outcome`` must be one of chargeback, confirmed_fraud, default, repaid (exact, lower case);
    ``date`` an ISO 8601 calendar date ``YYYY-MM-DD``; ``decision_id`` (not checked when None)
    1 to ``MAX_DECISION_ID_CHARS`` characters. Each problem names its field (``outcome``, ``date``,
    ``decision_id``) and its message reads after the field name.
    """
    problems: list[FieldError] = []
    if decision_id is not None and not 0 < len(decision_id) <= MAX_DECISION_ID_CHARS:
        problems.append(FieldError("decision_id", f"required, at most {MAX_DECISION_ID_CHARS} characters", "required"))
    kind = _KINDS.get(outcome)
    if kind is None:
        problems.append(FieldError("outcome", f"{_quoted(outcome)} is not one of {', '.join(_KINDS)}", "invalid_choice"))
    if not _is_calendar_date(date):
        problems.append(FieldError("date", f"{_quoted(date)} is not an ISO date (YYYY-MM-DD)", "invalid_date"))
    return kind, problems


def _is_calendar_date(text: str) -> bool:
    """``YYYY-MM-DD`` naming a real day (``fromisoformat`` alone also takes 20260314 and 2026-W11-6)."""
    if not _CALENDAR_DATE.fullmatch(text):
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def labels_from_entries(entries: Sequence[tuple[str, str, str]], source: str) -> list[OutcomeLabel]:
    """The labels of ``(decision_id, outcome, date)`` entries (``RecordOutcomes``), all or none.

    Raises ``InvalidInput`` naming each bad field as ``outcomes[i].date`` (the first
    ``MAX_FIELD_ERRORS``, then a count of the others), or ``outcomes`` when there are none or more
    than ``MAX_OUTCOMES_PER_CALL`` (checked first, so a call's cost is bounded).
    """
    if not 0 < len(entries) <= MAX_OUTCOMES_PER_CALL:
        raise InvalidInput([FieldError("outcomes", f"1 to {MAX_OUTCOMES_PER_CALL} labels per call (got {len(entries)})", "out_of_range")])
    labels: list[OutcomeLabel] = []
    errors: list[FieldError] = []
    for i, (decision_id, outcome, date) in enumerate(entries):
        kind, problems = check_outcome(outcome, date, decision_id)
        errors += [FieldError(f"outcomes[{i}].{p.field}", p.message, p.code) for p in problems]
        if kind is not None and not problems:
            labels.append(OutcomeLabel(decision_id, kind, date, source))
    if errors:
        raise InvalidInput(errors[:MAX_FIELD_ERRORS], omitted=len(errors) - MAX_FIELD_ERRORS)
    return labels


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
        parsed, found = check_outcome(kind, date, decision_id or None)
        bad += [f"{p.field} {p.message}" for p in found]
        if bad or parsed is None:
            problems.append(f"{where}: " + "; ".join(bad))
            continue
        labels.append(OutcomeLabel(decision_id, parsed, date, source, request_id))
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
