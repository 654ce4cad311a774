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
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.batch.core import Decided, Failed, RowResult
from engine.runtime.flow import CompiledFlow

__all__ = ["OutputColumns", "to_record"]


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


def to_record(columns: OutputColumns, row: int, result: RowResult, row_id: Any = None) -> dict[str, Any]:
    """The output record of input row ``row`` (1-based); ``row_id`` is the id column's value."""
    rec: dict[str, Any] = {"row": row}
    if columns.id_column:
        rec["id"] = None if row_id is None else str(row_id)
    if isinstance(result, Failed):
        rec.update({"action": None, "reason_codes": None, "reasons": None, "fired_rules": None})
        rec.update({f"score_{s}": None for s in columns.scores})
        rec.update({"flow": None, "version": None, "revision": None, "route": None,
                    "error_code": result.code, "error": result.message})
        return rec
    assert isinstance(result, Decided)
    outcome = result.outcome
    rec["action"] = outcome.action.name
    rec["reason_codes"] = ";".join(r.code for r in outcome.reasons)
    rec["reasons"] = json.dumps(
        [{"code": r.code, "source": r.source, "rule_id": r.rule_id, "feature": r.feature, "contribution": r.contribution}
         for r in outcome.reasons],
        separators=(",", ":"),
    )
    rec["fired_rules"] = ";".join(f.id for f in outcome.fired)
    for s in columns.scores:
        v = outcome.scores.get(s)
        rec[f"score_{s}"] = None if v is None else float(v)
    rec.update({"flow": result.flow.flow, "version": result.flow.version, "revision": result.flow.revision,
                "route": result.route, "error_code": None, "error": None})
    return rec
