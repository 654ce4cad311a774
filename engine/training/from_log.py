"""The point-in-time training set of a flow, from its decision log and outcome labels.

``verdict train --from-log LOG --flow F --outcomes-store STORE`` builds one row per logged decision
of the flow (returned routes only: a shadow's answer went to no one) that has an outcome label:

- ``decision_id``, ``ts``: which decision and when (identifiers, never features: the trainer is
  told to drop them);
- the **input as logged**, except the fields the log masked, hashed or redacted (the record's
  ``masked`` list): what the flow saw, never a value from after the decision;
- the flow's **derived features as of decision time**: recomputed from that logged input by the
  version that decided (the record's ``version`` and ``revision``), the same compiled code that ran
  in Decide; empty cells when that version is no longer loaded under the same revision or a
  derived feature needs a masked field (missing, never guessed);
- ``label``: ``bad`` when any outcome of the decision is bad (chargeback, confirmed_fraud,
  default), else ``good`` (repaid).

Point in time: features come only from the record written when the decision was made; the label is
the one thing from later, as a label must be (Feast / Tecton's point-in-time join, with the event
being the decision). Pure: the caller reads the log and the store.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine.cases.model import OutcomeLabel

__all__ = ["ID_COLUMNS", "LABEL_COLUMN", "TrainingSet", "training_set"]

LABEL_COLUMN = "label"
ID_COLUMNS = ("decision_id", "ts")


class _Flows:
    """The loaded versions of one flow: ``derive(values)`` of the version that decided, when loaded."""

    def __init__(self, versions: Mapping[str, Any]) -> None:
        self._versions = versions

    def derived(self, version: str, revision: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        compiled = self._versions.get(version)
        if compiled is None or compiled.revision != revision:
            return None
        work = dict(values)
        try:
            compiled.derive(work)
        except Exception:  # noqa: BLE001 - a feature that cannot be computed from the logged input is missing
            return None
        return {k: float(v) if isinstance(v, Decimal) else v for k, v in work.items() if k not in values}


@dataclass
class TrainingSet:
    """Header and rows (cells as Python values; None = missing), and what was left out and why."""

    header: list[str]
    rows: list[list[Any]]
    unlabelled: int = 0  # decisions without an outcome (not in the set)
    no_derived: int = 0  # rows whose derived features could not be recomputed (cells left empty)
    masked_fields: list[str] = field(default_factory=list)  # input fields left out: masked in the log


def training_set(records: Iterable[Mapping[str, Any]], labels: Mapping[str, Sequence[OutcomeLabel]], versions: Mapping[str, Any]) -> TrainingSet:
    """The training set of ``records`` (one flow's decision records, oldest first) labelled by
    ``labels`` (decision id -> its outcome labels); ``versions`` maps version -> compiled flow
    version (``PolicySet.flows[flow].versions``) for the derived features."""
    flows = _Flows(versions)
    inputs: list[str] = []
    derived_names: list[str] = []
    masked: set[str] = set()
    kept: list[tuple[Mapping[str, Any], dict[str, Any], dict[str, Any] | None, bool]] = []
    unlabelled = 0
    for record in records:
        if record.get("kind", "decision") != "decision" or record.get("route") == "shadow":
            continue
        found = labels.get(str(record.get("decision_id", "")))
        if not found:
            unlabelled += 1
            continue
        hidden = set(record.get("masked", ()))
        masked |= hidden
        values = {k: v for k, v in dict(record.get("input", {})).items() if k not in hidden}
        for name in values:
            if name not in inputs:
                inputs.append(name)
        derived = flows.derived(str(record.get("version", "")), str(record.get("revision", "")), values)
        for name in derived or {}:
            if name not in derived_names:
                derived_names.append(name)
        kept.append((record, values, derived, any(label.kind.bad for label in found)))
    inputs = [n for n in inputs if n not in masked]
    header = [*ID_COLUMNS, *inputs, *derived_names, LABEL_COLUMN]
    rows = []
    no_derived = 0
    for record, values, derived, bad in kept:
        if derived is None:
            no_derived += 1
        row = [record.get("decision_id"), record.get("ts")]
        row += [values.get(n) for n in inputs]
        row += [(derived or {}).get(n) for n in derived_names]
        row.append("bad" if bad else "good")
        rows.append(row)
    return TrainingSet(header, rows, unlabelled, no_derived, sorted(masked))
