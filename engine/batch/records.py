"""One output record per input row: the decision's columns, with the same values as the online answer.

Columns (``OutputColumns.names``), in order:

``row``
    the row's 1-based position among the input's data rows;
``id``
    the value of the ``--id-column`` the caller named (absent when none was named);
``action``
    APPROVE, REVIEW or DECLINE (empty for a failed row);
``reason_codes``
    the ranked reason codes, separated by ``;`` (what most analyses need);
``reasons``
    the ranked reasons as a JSON array of objects ``{code, source, rule_id, feature,
    contribution}``: the fields of the online ``Reason`` but the message (contributions are
    written with Python's shortest round-trip repr, so they read back bit for bit);
``fired_rules``
    the ids of every rule that fired, most severe first, separated by ``;``;
``score_<output>``
    one float64 column per model output of the flow (e.g. ``score_pd``), empty when the row failed;
``flow``, ``version``, ``revision``, ``route``
    the flow version that decided and how it was chosen (live, challenger or pinned);
``error_code``, ``error``
    for a row that could not be decided: the error's stable code and its message naming every
    bad field (empty for a decided row).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.batch.core import Failed, RowResult
from engine.runtime.flow import CompiledFlow
from engine.types import Reason

__all__ = ["OutputColumns", "reasons_json", "to_columns", "to_record"]


@dataclass(frozen=True)
class OutputColumns:
    """The fixed column set of one batch run (known before the first row, for a streamed schema)."""

    scores: tuple[str, ...]  # model outputs, sorted
    id_column: str | None = None

    @classmethod
    def of(cls, versions: Iterable[CompiledFlow], id_column: str | None = None) -> OutputColumns:
        """The columns for a run that may be decided by any of ``versions`` (the flow's loaded versions)."""
        return cls(tuple(sorted({m.output for v in versions for m in v.models})), id_column)

    @property
    def names(self) -> tuple[str, ...]:
        head = ("row", "id") if self.id_column else ("row",)
        return (
            *head, "action", "reason_codes", "reasons", "fired_rules", *(f"score_{s}" for s in self.scores),
            "flow", "version", "revision", "route", "error_code", "error",
        )

    @property
    def float_columns(self) -> frozenset[str]:
        return frozenset(f"score_{s}" for s in self.scores)


def reasons_json(reasons: Sequence[Reason]) -> str:
    """The ``reasons`` column of one row: ``json.dumps`` of ``[{code, source, rule_id, feature,
    contribution}]`` with compact separators, built from a cached text per reason and the
    contribution's ``repr`` (what ``json.dumps`` writes for a finite float; a test compares them)."""
    if not reasons:
        return "[]"
    parts = []
    for r in reasons:
        head = _HEADS.get((r.code, r.source, r.rule_id, r.feature))
        if head is None:
            head = _HEADS[(r.code, r.source, r.rule_id, r.feature)] = json.dumps(
                {"code": r.code, "source": r.source, "rule_id": r.rule_id, "feature": r.feature, "contribution": 0},
                separators=(",", ":"),
            )[:-2]
        contribution = r.contribution
        parts.append(head + (repr(float(contribution)) if math.isfinite(contribution) else json.dumps(contribution)) + "}")
    return "[" + ",".join(parts) + "]"


# (code, source, rule id, feature) -> the reason's JSON up to its contribution; bounded by the rules and features of the flows
_HEADS: dict[tuple[str, str, str, str], str] = {}


def to_columns(
    columns: OutputColumns, start: int, results: Sequence[RowResult], ids: Sequence[Any] | None = None,
) -> dict[str, list[Any]]:
    """The output columns (``columns.names``) of consecutive rows, the first being input row ``start``
    (1-based); ``ids`` are the id column's values (one per row, when ``columns.id_column``)."""
    out: dict[str, list[Any]] = {name: [] for name in columns.names}
    out["row"] = list(range(start, start + len(results)))
    if columns.id_column:
        out["id"] = [None if v is None else str(v) for v in (ids if ids else [None] * len(results))]
    action, codes, reasons, fired = out["action"], out["reason_codes"], out["reasons"], out["fired_rules"]
    scores = [(s, out[f"score_{s}"]) for s in columns.scores]
    flow, version, revision, route = out["flow"], out["version"], out["revision"], out["route"]
    error_code, error = out["error_code"], out["error"]
    for result in results:
        if isinstance(result, Failed):
            for column in (action, codes, reasons, fired, flow, version, revision, route):
                column.append(None)
            for _, column in scores:
                column.append(None)
            error_code.append(result.code)
            error.append(result.message)
            continue
        outcome = result.outcome
        action.append(outcome.action.name)
        codes.append(";".join(r.code for r in outcome.reasons))
        reasons.append(reasons_json(outcome.reasons))
        fired.append(";".join(f.id for f in outcome.fired))
        given = outcome.scores
        for s, column in scores:
            v = given.get(s)
            column.append(None if v is None else float(v))
        compiled = result.flow
        flow.append(compiled.flow)
        version.append(compiled.version)
        revision.append(compiled.revision)
        route.append(result.route)
        error_code.append(None)
        error.append(None)
    return out


def to_record(columns: OutputColumns, row: int, result: RowResult, row_id: Any = None) -> dict[str, Any]:
    """The output record of input row ``row`` (1-based); ``row_id`` is the id column's value."""
    return {name: values[0] for name, values in to_columns(columns, row, [result], [row_id]).items()}
