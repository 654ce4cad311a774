"""Replay and backtest: re-decide logged requests with another flow version and compare.

``replay(records, compiled)`` evaluates every logged decision's recorded input with ``compiled``
(a loaded flow version) and compares the new outcome with the logged one: how many actions change,
action rates before and after, the transition matrix, which rules drive the changes, rule hit
counts, mean scores and — with known outcomes (good/bad per decision or request id) — precision,
recall and the bad rate of approved business for both.

Custom lists (block and allow lists, engine.custom_lists) change without a new version: a decision
replayed by the version and revision that made it reads the lists' answers its record logged
(``lists``: per list, member or not in the order asked), so a decision that hit a block list replays
the same after the entry was removed; another version reads the replaying process's lists (its
questions may differ), and a record written before lists were logged falls back to them too.

Inputs are replayed as they were logged. Sensitive fields were masked before logging, so they are
replayed as their mask (a masked PAN, a keyed hash, ``[redacted]``): a rule that reads a sensitive
field cannot be backtested faithfully, and a masked value that no longer fits the field's schema
makes the request "rejected" by the new version. Shadow records are not replayed (they are not
answers anyone received).

A report over part of a log says so: the gaps the reader met (``engine.audit.follow.Gap``: missing
or vanished segments, missing records) are listed in it, and ``considered`` is then the number of
decisions it covers, not the number the log held.

Fairness: protected attributes are never in the log; ``load_protected`` reads them from a CSV keyed
by request id and ``replay(protected=...)`` joins them in memory, reporting per group of each
attribute, for the logged and the new decisions, the approval rate, adverse impact ratio and
(with outcomes) bad rate of approved (``engine.training.fairness.GroupTally``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.audit.follow import Gap
from engine.audit.record import parse_time
from engine.audit.replay_report import Compared, ReplayReport
from engine.errors import InvalidInput
from engine.runtime.flow import CompiledFlow
from engine.state.store import MemoryStore, decide_with_state
from engine.tabular import TableError, parse_number, read_rows
from engine.training.fairness import group_of
from engine.types import Action, Outcome

__all__ = ["OutcomesError", "Protected", "ProtectedFileError", "comparable", "load_outcomes", "load_protected", "outcome_label", "replay"]

_BAD = {"bad", "1", "true", "yes", "y", "default", "fraud", "chargeback"}
_GOOD = {"good", "0", "false", "no", "n", "paid", "legit", "ok"}
_ID_COLUMNS = ("decision_id", "request_id", "id")
_OUTCOME_COLUMNS = ("outcome", "label", "status", "bad")


class OutcomesError(ValueError):
    """The outcomes file cannot be used; the message says why."""


def _outcome(value: str) -> bool | None:
    """True for a bad outcome, False for a good one, None when the label is neither."""
    value = value.lower()
    if value in _BAD or value in _GOOD:
        return value in _BAD
    number = parse_number(value, "plain")
    return {1.0: True, 0.0: False}.get(number) if number is not None else None


def outcome_label(value: str) -> bool | None:
    """An outcome label as is_bad: True for bad (bad, 1, default, fraud, ...), False for good, None otherwise."""
    return _outcome(value)


def load_outcomes(path: Path) -> dict[str, bool]:
    """``id -> is_bad`` from a CSV with an id column (decision_id, request_id or id) and an outcome.

    Read by the one CSV reader (``engine.tabular``: encoding, delimiter, quoting, trimmed header).
    Raises OutcomesError naming the file (and line) when the file or a label cannot be used.
    """
    try:
        table = read_rows(Path(path))
    except TableError as exc:
        if exc.code in {"data_missing", "data_unreadable"}:
            raise OutcomesError(f"cannot read {exc}") from None
        raise OutcomesError(str(exc)) from None
    names = {c.lower(): c for c in table.header}
    id_col = next((c for c in _ID_COLUMNS if c in names), None)
    out_col = next((c for c in _OUTCOME_COLUMNS if c in names), None)
    if id_col is None or out_col is None:
        raise OutcomesError(
            f"{path}: needs an id column ({', '.join(_ID_COLUMNS)}) and an outcome column "
            f"({', '.join(_OUTCOME_COLUMNS)}); found {', '.join(names) or 'none'}"
        )
    result: dict[str, bool] = {}
    for row, (key, value) in enumerate(zip(table.column(names[id_col]), table.column(names[out_col]), strict=True)):
        if not key:
            continue
        is_bad = _outcome(value or "")
        if is_bad is None:
            raise OutcomesError(f"{table.where(row)}: outcome {(value or '').lower()!r} is neither good nor bad")
        result[key] = is_bad
    return result


class ProtectedFileError(ValueError):
    """The protected-attributes file cannot be used (unreadable, no key column, a duplicate key); says where."""


@dataclass(frozen=True)
class Protected:
    """Protected attributes joined to logged decisions by request id: attribute names, then each id's groups."""

    attributes: tuple[str, ...]
    groups: Mapping[str, Mapping[str, str]]  # request_id -> attribute -> group
    age: str | None = None  # the attribute grouped into age bands


def load_protected(path: Path, key: str = "request_id", age: str | None = None) -> Protected:
    """Protected attributes from a CSV: a ``key`` column matching the log's request ids, the rest attributes.

    Read by the one CSV reader (``engine.tabular``). Every column but ``key`` is an attribute,
    grouped by ``engine.training.fairness.group_of`` (the ``age`` column into age bands). Raises
    ProtectedFileError when the file cannot be read, lacks the key or ``age`` column or any
    attribute, or repeats a key (naming the line).
    """
    try:
        t = read_rows(Path(path))
    except TableError as exc:
        raise ProtectedFileError(f"cannot read {exc}" if exc.code in {"data_missing", "data_unreadable"} else str(exc)) from None
    attributes = tuple(c for c in t.header if c != key)
    problems = [f"no key column {key!r}"] if key not in t.header else []
    problems += [f"no age column {age!r}"] if age is not None and age not in attributes else []
    problems += ["no attribute column besides the key"] if not attributes else []
    if problems:
        raise ProtectedFileError(f"{path}: {'; '.join(problems)}; columns: {', '.join(t.header)}")
    columns = {a: t.column(a) for a in attributes}
    groups: dict[str, dict[str, str]] = {}
    for row, rid in enumerate(t.column(key)):
        if not rid:  # a row without a request id joins nothing
            continue
        if rid in groups:
            raise ProtectedFileError(f"{t.where(row)}: request id {rid!r} appears twice")
        groups[rid] = {a: group_of(columns[a][row], a == age) for a in attributes}
    return Protected(attributes, groups, age)




def _logged_outcome(record: Mapping[str, Any]) -> tuple[Action, tuple[Any, ...], tuple[Any, ...], dict[str, float]]:
    reasons = tuple(
        (r["code"], r["message"], r["source"], r.get("rule_id", ""), r.get("feature", ""), float(r.get("contribution", 0.0)))
        for r in record["reasons"]
    )
    fired = tuple((f["id"], f["ruleset"], f["action"], f["reason_code"], int(f["priority"])) for f in record["fired"])
    return Action[record["action"]], reasons, fired, {k: float(v) for k, v in record["scores"].items()}




def _new_outcome(outcome: Outcome) -> tuple[Action, tuple[Any, ...], tuple[Any, ...], dict[str, float]]:
    reasons = tuple((r.code, r.message, r.source, r.rule_id, r.feature, float(r.contribution)) for r in outcome.reasons)
    fired = tuple((f.id, f.ruleset, f.action.name, f.reason_code, f.priority) for f in outcome.fired)
    return outcome.action, reasons, fired, {k: float(v) for k, v in outcome.scores.items()}


def comparable(outcome: Outcome) -> Compared:
    """``outcome`` reduced to what ``ReplayReport.compare`` looks at."""
    return _new_outcome(outcome)




def _same_version(record: Mapping[str, Any], compiled: CompiledFlow) -> bool:
    return record.get("version") == compiled.version and record.get("revision") == compiled.revision


def _evaluate(record: Mapping[str, Any], compiled: CompiledFlow, history: MemoryStore | None) -> Outcome:
    """The outcome of ``compiled`` on a logged decision's input; the same version and revision read
    the custom-list answers the decision logged (see the module docstring)."""
    logged = record.get("lists")
    view = compiled.custom_lists
    if view is None or not isinstance(logged, Mapping) or not _same_version(record, compiled):
        return _decide_again(record, compiled, history)
    with view.recording({str(k): v for k, v in logged.items() if isinstance(v, list)}):
        return _decide_again(record, compiled, history)


def _decide_again(record: Mapping[str, Any], compiled: CompiledFlow, history: MemoryStore | None) -> Outcome:
    """The outcome of ``compiled`` on a logged decision's input, its stateful features as below.

    A flow with stateful features (engine.state): the same version and revision take the feature
    values the decision logged (so the replay is bit for bit); another version recomputes its own
    as of the logged event time from the decisions replayed before it (log order is event-time
    order), never from later ones.
    """
    raw = dict(record.get("input") or {})
    plan = compiled.state
    logged = record.get("state")
    if plan is None or history is None:  # a version that takes such values as input fields gets the logged ones
        return compiled.evaluate(compiled.with_state(raw, logged) if isinstance(logged, Mapping) else raw)
    if isinstance(logged, Mapping) and _same_version(record, compiled):
        return compiled.evaluate(compiled.with_state(raw, logged))
    at = record.get("event_time")
    when = float(at) if isinstance(at, (int, float)) else parse_time(str(record.get("ts", "")))
    values = compiled.validator(raw)
    return decide_with_state(history, plan, values, when, compiled.evaluate_clean)[0]


def _count_outcome(
    report: ReplayReport, record: Mapping[str, Any], outcomes: Mapping[str, bool] | None, before: Action, after: Action,
) -> bool | None:
    """Count the logged and the new action against the record's known outcome (by decision id, else
    request id); the outcome (True: bad), or None when none is known."""
    if outcomes is None:
        return None
    did, rid = str(record.get("decision_id", "")), str(record.get("request_id", ""))
    key = did if did in outcomes else rid if rid and rid in outcomes else None
    if key is None:
        return None
    report.matched_outcomes.add(key)
    is_bad = outcomes[key]
    report.metrics_before.add(before, is_bad)
    report.metrics_after.add(after, is_bad)
    return is_bad


def _count_groups(
    report: ReplayReport, record: Mapping[str, Any], protected: Protected, before: Action, after: Action, is_bad: bool | None,
) -> None:
    """Count the logged and the new approval in the record's protected groups (joined on its request id)."""
    groups = protected.groups.get(str(record.get("request_id", "")))
    if groups is None:
        report.unmatched_protected += 1
        return
    report.groups_before.add(groups, before is Action.APPROVE, is_bad)
    report.groups_after.add(groups, after is Action.APPROVE, is_bad)


def replay(
    records: Iterable[Mapping[str, Any]],
    compiled: CompiledFlow,
    *,
    outcomes: Mapping[str, bool] | None = None,
    location: str = "",
    progress: Callable[[int], None] | None = None,
    gaps: Sequence[Gap] | None = None,
    protected: Protected | None = None,
    order: Callable[[Mapping[str, Any]], int] | None = None,
) -> ReplayReport:
    """Re-decide every logged (non-shadow) decision of ``compiled.flow`` with ``compiled``.

    ``protected`` (``load_protected``) is joined on each decision's request id, in memory only:
    the report counts the logged and the new decisions per group (a decision whose id it lacks is
    counted in ``unmatched_protected``).

    ``gaps`` is the list the log source fills while ``records`` are read (``decisions(gaps=…)``);
    its gaps are stated in the report. ``order`` gives a record's place in the whole log (default:
    its place among ``records``), for a replay of one part of a log whose reports are then
    ``ReplayReport.merge``d (engine.batch.replay_spark).
    """
    report = ReplayReport(compiled.flow, compiled.version, compiled.revision, location, outcomes_given=outcomes is not None,
                          protected=protected)
    history = MemoryStore(os.urandom(32)) if compiled.state is not None else None  # another version's features, rebuilt in log order
    for n, record in enumerate(records, start=1):
        if progress is not None:
            progress(n)
        if record.get("flow") != compiled.flow or record.get("route") == "shadow" or record.get("kind", "decision") != "decision":
            continue
        report.considered += 1
        report.produced_by[f"{record.get('version')}@{str(record.get('revision', ''))[:12]}"] += 1
        try:
            outcome = _evaluate(record, compiled, history)
        except InvalidInput as exc:
            report.rejected += 1
            report.rejected_fields.update({e.field for e in exc.errors})
            continue
        except Exception:  # noqa: BLE001 - a broken version is counted, not fatal
            report.failed += 1
            continue
        before = _logged_outcome(record)
        after = _new_outcome(outcome)
        b_action, a_action = before[0], after[0]
        report.compare(before, after, str(record.get("decision_id", "")), n if order is None else order(record))
        if _same_version(record, compiled):
            report.reproduce(before, after, fallback=bool(record.get("fallback")))
        is_bad = _count_outcome(report, record, outcomes, b_action, a_action)
        if protected is not None:
            _count_groups(report, record, protected, b_action, a_action, is_bad)
    report.count_unmatched(outcomes)
    report.gaps = list(gaps or ())
    return report
