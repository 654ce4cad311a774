"""The point-in-time training set of a flow, from its decision log and outcome labels.

``verdict train --from-log LOG --flow F --outcomes-store STORE`` builds one row per logged decision
of the flow (returned routes only: a shadow's answer went to no one) that has an outcome label:

- ``decision_id``, ``ts``: which decision and when (identifiers, never features: the trainer is
  told to drop them);
- the **input as logged**, except the fields the log masked, hashed or redacted (the record's
  ``masked`` list): what the flow saw, never a value from after the decision;
- the flow's **derived features as of decision time**: recomputed from that logged input by the
  version that decided (the record's ``version`` and ``revision``), the same compiled code that ran
  in Decide, with the stateful features the record carries (``recompute_features``, also used by
  the case page); empty cells when that version is no longer loaded under the same revision or a
  derived feature reads a masked field (missing, never guessed);
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

__all__ = ["ID_COLUMNS", "LABEL_COLUMN", "Recomputed", "TrainingSet", "features_text", "flow_versions", "recompute_features", "training_set"]

LABEL_COLUMN = "label"
ID_COLUMNS = ("decision_id", "ts")


@dataclass(frozen=True)
class Recomputed:
    """The features of one logged decision, recomputed as of decision time.

    ``derived``: derived (and screening) feature -> value, for those that could be recomputed;
    ``unavailable``: those that could not, because they read a field the log masked (directly or
    through another feature) or the derivation failed on the logged input: shown as unavailable,
    never guessed; ``state``: the stateful features the record carries (its ``state`` key; empty
    for a flow without them); ``problem``: why nothing was recomputed ("" when it was), e.g. the
    version that decided is no longer loaded under the same revision.
    """

    derived: dict[str, Any]
    unavailable: list[str]
    state: dict[str, Any]
    problem: str = ""


def recompute_features(record: Mapping[str, Any], versions: Mapping[str, Any]) -> Recomputed:
    """The derived features of the decision ``record`` (as the log keeps it), recomputed from its
    logged input and stateful features by the version that decided: ``versions`` maps version ->
    compiled flow version (``PolicySet.flows[flow].versions``), used only when its revision is the
    record's ``revision`` (the same compiled code that ran in Decide). Fields in the record's
    ``masked`` list are withheld, and every derived feature that reads one (``derived_reads``) is
    ``unavailable``. Pure; never raises for a malformed record (it is reported in ``problem``)."""
    state = dict(record.get("state") or {})
    version, revision = str(record.get("version", "")), str(record.get("revision", ""))
    compiled = versions.get(version)
    if compiled is None or compiled.revision != revision:
        return Recomputed({}, [], state, f"version {version!r} is not loaded with revision {revision[:12]}: its derived features cannot be recomputed")
    hidden = set(record.get("masked", ()))
    values = {k: v for k, v in dict(record.get("input") or {}).items() if k not in hidden}
    given = {**values, **{k: v for k, v in state.items() if k not in values}}
    reads: Mapping[str, frozenset[str]] = compiled.derived_reads
    unknown = sorted(name for name, names in reads.items() if names & hidden)
    work = dict(given)
    try:
        compiled.derive(work)
    except Exception as exc:  # noqa: BLE001 - a feature that cannot be computed from the logged input is unavailable
        return Recomputed({}, sorted(reads), state, f"the logged input does not derive: {type(exc).__name__}")
    derived = {k: float(v) if isinstance(v, Decimal) else v for k, v in work.items() if k not in given and k not in unknown}
    return Recomputed(derived, unknown, state)


def flow_versions(compiled: Mapping[tuple[str, str], Any], flow: str) -> dict[str, Any]:
    """Version -> compiled version of ``flow`` from a load's ``compiled`` map ((flow, version) -> it)."""
    return {version: c for (name, version), c in compiled.items() if name == flow}


def features_text(found: Recomputed) -> list[str]:
    """``name=value`` lines (derived, then unavailable, then stateful) for a terminal."""
    if found.problem:
        lines = [f"derived: unavailable ({found.problem})"]
    else:
        lines = [f"{k}={v}" for k, v in found.derived.items()] + [f"{k}=unavailable (reads a masked field)" for k in found.unavailable]
    return lines + [f"{k}={v} (stateful, as logged)" for k, v in found.state.items()]


class _Flows:
    """The loaded versions of one flow: the derived features of a training row (``recompute_features``)."""

    def __init__(self, versions: Mapping[str, Any]) -> None:
        self._versions = versions

    def derived(self, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """Derived feature -> value (None where unavailable); None when nothing could be recomputed."""
        found = recompute_features(record, self._versions)
        if found.problem:
            return None
        return {**found.derived, **dict.fromkeys(found.unavailable)}


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
        derived = flows.derived(record)
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
