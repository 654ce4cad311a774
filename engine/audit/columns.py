"""The columns of a decision log exported to Parquet, and the way back from a row to a record.

One row per decision record; columns, in order (docs/decision-log.md, "Export to Parquet"):

``log_order`` (int64)
    the record's place in the export, from 0, in the order the log's readers give: chain by
    chain in chain order for a directory, by time for PostgreSQL (what ``verdict replay`` reads);
``chain`` (string), ``seq`` (int64), ``prev``, ``hash`` (string)
    the hash chain the record belongs to (its directory, or ``writer <id>`` in PostgreSQL), its
    sequence number in it, the previous record's hash and its own (``engine.audit.record``);
``ts`` (timestamp, µs, UTC)
    when it was decided;
``decision_id``, ``request_id``, ``flow``, ``version``, ``revision``, ``route``, ``action`` (string)
    as logged (``route``: live, challenger, pinned or shadow);
``reason_codes``, ``fired_rules`` (string)
    the ranked reason codes and the fired rules' ids, separated by ``;``;
``reasons``, ``fired`` (string)
    the logged reasons and fired rules as JSON arrays of the record's objects (exact, for replay);
``models`` (string)
    the JSON object model -> ``version@hash`` that scored it;
``eval_us`` (double), ``masked`` (string: ``;``-separated masked field names), ``caller``,
``fingerprint``, ``key_id``, ``delivery`` (string)
    as logged (empty values are null);
``event_time`` (double, Unix seconds)
    the event time a flow with stateful features decided as of (null for other flows);
``state``, ``lists``, ``fallback`` (string: JSON text, null when the record has none)
    the stateful feature values the decision read (feature -> value), the custom-list answers it
    read (list -> member or not, in the order asked; never the value looked up) and the declared
    fallbacks it took: JSON text because their keys differ per flow and version (a typed column per
    key would make every flow's export carry every other flow's columns); a replay with the same
    version and revision reads them back (engine.audit.replay), as from the log;
``score_<name>`` (double)
    one column per model output logged by any exported record (null where a record has none);
``input_<field>``
    one column per field of the logged (masked) input: ``bool``, ``int64``, ``double`` or
    ``string`` when every value of the field has that JSON type; else (numbers both whole and
    fractional, an explicit ``null``, NaN, lists, objects, integers beyond int64) ``string`` holding
    each value's JSON text, so that a replay gets back exactly the input that was logged. A field a
    record did not have is null. Which is which is in the export's metadata (``input_columns``).

The log does not hold the derived features (a replay recomputes them), so neither does the export.
Exports of format ``/1`` (before ``event_time``, ``state``, ``lists`` and ``fallback`` were
exported) are still read: their records lack those fields, so a replay of them reads the replaying
process's lists and recomputes state (``engine.audit.exported.ExportedLog.notes`` says so).
Masked fields stay as the log holds them (a masked PAN, a keyed hash, ``[redacted]``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = ["CARRIED_SINCE_2", "FORMAT", "FORMATS", "META_KEY", "ExportColumns", "FieldKinds", "input_kinds", "record_of"]

FORMAT = "verdict-decision-log-export/2"  # /2 added event_time, state, lists and fallback
FORMATS = ("verdict-decision-log-export/1", FORMAT)  # the formats ExportedLog reads
CARRIED_SINCE_2 = ("event_time", "state", "lists", "fallback")  # the record fields format /2 added
META_KEY = b"verdict.export"  # the Parquet key-value metadata holding the export's JSON description
_INT64 = (-(1 << 63), (1 << 63) - 1)
_TEXT = ("decision_id", "request_id", "flow", "version", "revision", "route", "action")
_OPTIONAL = (("caller", "caller"), ("fingerprint", "fp"), ("key_id", "key_id"), ("delivery", "delivery"))
_JSON = CARRIED_SINCE_2[1:]  # exported as JSON text
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _json_kind(value: Any) -> str:
    """The JSON type of a logged input value: bool, int, float, string, null or json (list/object/huge int)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int" if _INT64[0] <= value <= _INT64[1] else "json"
    if isinstance(value, float):
        return "float" if math.isfinite(value) else "json"  # NaN is null to Arrow and pandas
    if isinstance(value, str):
        return "string"
    return "json"


@dataclass
class FieldKinds:
    """What the exported records hold: each input field's kind and every score name (a first pass)."""

    inputs: dict[str, str] = field(default_factory=dict)  # field -> bool|int|float|string|json
    scores: set[str] = field(default_factory=set)

    def observe(self, record: Mapping[str, Any]) -> None:
        """Widen the kinds to cover ``record``: a field seen with two JSON types becomes ``json``."""
        kinds = self.inputs
        for name, value in (record.get("input") or {}).items():
            kind = _json_kind(value)
            seen = kinds.get(name)
            if seen is None:
                kinds[name] = "json" if kind == "null" else kind
            elif seen != kind:
                kinds[name] = "json"
        self.scores.update(record.get("scores") or {})

    def columns(self) -> ExportColumns:
        return ExportColumns(tuple(sorted(self.scores)), tuple(sorted(self.inputs.items())))


_ARROW = {"bool": "bool_", "int": "int64", "float": "float64", "string": "string", "json": "string"}


@dataclass(frozen=True)
class ExportColumns:
    """The column set of one export: fixed columns, then ``score_<name>``, then ``input_<field>``."""

    scores: tuple[str, ...]
    inputs: tuple[tuple[str, str], ...]  # (field, kind), sorted by field

    FIXED = ("log_order", "chain", "seq", "prev", "hash", "ts", *_TEXT, "reason_codes", "fired_rules", "reasons",
             "fired", "models", "eval_us", "masked", *(c for c, _ in _OPTIONAL), *CARRIED_SINCE_2)

    @property
    def names(self) -> tuple[str, ...]:
        return (*self.FIXED, *(f"score_{s}" for s in self.scores), *(f"input_{f}" for f, _ in self.inputs))

    def arrow_schema(self) -> Any:
        """The ``pyarrow.Schema`` of the export (pyarrow is imported here: the [batch] extra)."""
        import pyarrow as pa

        types: dict[str, Any] = {"log_order": pa.int64(), "seq": pa.int64(), "ts": pa.timestamp("us", tz="UTC"),
                                 "eval_us": pa.float64(), "event_time": pa.float64()}
        fields = [pa.field(n, types.get(n, pa.string())) for n in self.FIXED]
        fields += [pa.field(f"score_{s}", pa.float64()) for s in self.scores]
        fields += [pa.field(f"input_{f}", getattr(pa, _ARROW[k])()) for f, k in self.inputs]
        return pa.schema(fields)

    def row(self, order: int, chain: str, record: Mapping[str, Any]) -> list[Any]:
        """One exported row (values in ``names`` order) of a decision ``record``."""
        reasons = record.get("reasons") or []
        fired = record.get("fired") or []
        ts = record.get("ts")
        row: list[Any] = [
            order, chain, record.get("seq"), record.get("prev"), record.get("hash"),
            _micros(ts) if isinstance(ts, str) else None,
            *(_text(record.get(c)) for c in _TEXT),
            ";".join(str(r.get("code", "")) for r in reasons), ";".join(str(f.get("id", "")) for f in fired),
            _encode(reasons), _encode(fired), _encode(record.get("models") or {}),
            _number((record.get("timings") or {}).get("eval_us")),
            ";".join(map(str, record.get("masked") or [])) or None,
            *(_text(record.get(key)) for _, key in _OPTIONAL),
            _number(record.get("event_time")),
            *(_encode(record[k]) if k in record else None for k in _JSON),
        ]
        scores = record.get("scores") or {}
        row += [_number(scores.get(s)) for s in self.scores]
        values = record.get("input") or {}
        for name, kind in self.inputs:
            if name not in values:
                row.append(None)
            else:
                row.append(_encode(values[name]) if kind == "json" else values[name])
        return row


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def _micros(ts: str) -> int:
    """Microseconds since the epoch of a logged ``ts`` (exact; Arrow takes them as its timestamp, no pandas)."""
    return (datetime.fromisoformat(ts) - _EPOCH) // _MICRO


def _ts_text(value: Any) -> str:
    """The log's ``ts`` text (``engine.audit.record.iso_time``) of an exported ``ts`` cell: a UTC datetime
    (pyarrow) or microseconds since the epoch (Spark reads it as ``unix_micros``: exact, whatever its time zone)."""
    micros = int(value) if not isinstance(value, datetime) else (value - _EPOCH) // _MICRO
    return (_EPOCH + timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _text(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _number(value: Any) -> float | None:
    return None if value is None else float(value)


def record_of(row: Mapping[str, Any], kinds: Mapping[str, str]) -> dict[str, Any]:
    """The decision record (as ``engine.audit.source`` gives it to ``replay``) of an exported row.

    ``row`` maps column names to values (nulls as None or NaN); ``kinds`` maps each ``input_<field>``
    column to its kind (the export's ``input_columns``). The chain fields come back as ``seq``,
    ``prev``, ``hash``, the row's place as ``log_order`` and ``ts`` as the log's text (when the row
    has it); ``event_time``, ``state``, ``lists`` and ``fallback`` when the row has them (format /2).
    """
    values: dict[str, Any] = {}
    scores: dict[str, float] = {}
    for name, value in row.items():
        if _null(value):
            continue
        if name.startswith("input_"):
            kind = kinds.get(name, "string")
            values[name[6:]] = json.loads(value) if kind == "json" else _plain(value, kind)
        elif name.startswith("score_"):
            scores[name[6:]] = float(value)
    record: dict[str, Any] = {"kind": "decision"}
    for name in _TEXT:
        record[name] = "" if _null(row.get(name)) else str(row[name])
    record.update({
        "log_order": int(row["log_order"]), "chain": row.get("chain"), "seq": _int(row.get("seq")),
        "prev": row.get("prev"), "hash": row.get("hash"),
        "reasons": json.loads(row["reasons"]), "fired": json.loads(row["fired"]), "scores": scores,
        "models": json.loads(row["models"]) if not _null(row.get("models")) else {},
        "timings": {"eval_us": 0.0 if _null(row.get("eval_us")) else float(row["eval_us"])},
        "input": values, "masked": [m for m in str(row.get("masked") or "").split(";") if m],
    })
    if not _null(row.get("ts")):  # a replay of another version with stateful features places a decision without event_time at it
        record["ts"] = _ts_text(row["ts"])
    if not _null(row.get("event_time")):
        record["event_time"] = float(row["event_time"])
    record.update({k: json.loads(row[k]) for k in _JSON if not _null(row.get(k))})
    return record


def _null(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _int(value: Any) -> int | None:
    return None if _null(value) else int(value)


def _plain(value: Any, kind: str) -> Any:
    """A typed cell as the JSON value it was logged as (numpy scalars from pandas back to Python's)."""
    if kind == "bool":
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return str(value)


def input_kinds(columns: Sequence[tuple[str, str]]) -> dict[str, str]:
    """``input_<field>`` column -> kind, from the metadata's ``input_columns`` pairs."""
    return {f"input_{f}": k for f, k in columns}
