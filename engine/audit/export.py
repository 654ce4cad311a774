"""The decision log exported to Parquet (``verdict audit export``), for replays too large for one machine.

``export_log(source, dest)`` reads a log (``engine.audit.source``: a directory of segment files or
PostgreSQL) twice, streamed: a first pass finds the columns (each input field's JSON type, every
score name: ``engine.audit.columns``) and where each chain ends now; the second writes one row per
decision record up to those ends, ``row_group_rows`` rows per Parquet row group, so memory stays flat
in the size of the log (a row group's rows, and at most ``MAX_OPEN_PARTITIONS`` of them when the
output is partitioned). Records the log appends meanwhile are left for the next export.

What the export covers is stated in it (the Parquet footer's ``verdict.export`` key, or
``_verdict_export.json`` beside a partitioned export's files): the log, the filters, each chain's
first and last ``seq`` read and the hash of its last record (compare with ``verdict audit verify``),
how many decisions were exported, the records of other kinds met and skipped (segment and chain
headers, and any kind this version does not know) and the gaps. A gap (engine.audit.follow) raises
``LogGap`` unless ``allow_gaps``; then the export goes on over what is there and lists every gap.

Partitioned output (``partition_by=("flow", "date")``): a directory of Hive-style sub-directories
``flow=<flow>/date=<YYYY-MM-DD>/part-<n>.parquet`` (UTC dates; ``flow`` is then a partition column,
not a column of the files), which Spark and ``pyarrow.dataset`` read as one table. A single file is
written to a temporary name and renamed at the end; a directory gets its ``_verdict_export.json``
last: an export that did not finish is never taken for one that did.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from engine.audit.columns import FORMAT, META_KEY, ExportColumns, FieldKinds
from engine.audit.errors import AuditError
from engine.audit.follow import Gap
from engine.audit.record import iso_time
from engine.audit.source import LogSource

__all__ = ["MANIFEST", "MAX_OPEN_PARTITIONS", "PARTITION_KEYS", "ChainRange", "ExportSummary", "export_log", "parse_when"]

MANIFEST = "_verdict_export.json"  # a partitioned export's description (Spark and pyarrow skip names starting with _)
PARTITION_KEYS = ("flow", "date")
MAX_OPEN_PARTITIONS = 16  # open partition files at most; the least recently written is closed (a new part follows)
ROW_GROUP_ROWS = 16_384  # rows buffered per file before a row group is written (~100 MB of Python values at most)


def parse_when(text: str) -> str:
    """An ISO-8601 date or time (UTC when it names no zone) as the log's ``ts`` text, for comparing.

    Raises ValueError naming the text when it is not ISO-8601 (e.g. ``2026-11-01`` or
    ``2026-11-01T12:00:00Z``).
    """
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO-8601 date or time (e.g. 2026-11-01 or 2026-11-01T12:00:00Z)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return iso_time(when.timestamp())


@dataclass
class ChainRange:
    """The part of one hash chain an export read: first and last ``seq``, the last record's hash."""

    chain: str
    first_seq: int
    last_seq: int
    last_hash: str
    records: int = 0  # records read (every kind)
    decisions: int = 0  # decision records exported

    def as_dict(self) -> dict[str, Any]:
        return {"chain": self.chain, "first_seq": self.first_seq, "last_seq": self.last_seq, "last_hash": self.last_hash,
                "records": self.records, "decisions": self.decisions}


@dataclass
class ExportSummary:
    """What an export wrote and covers; ``as_dict`` is the metadata stored with it."""

    log: str
    output: str
    flow: str | None = None
    since: str | None = None
    until: str | None = None
    allow_gaps: bool = False
    partition_by: tuple[str, ...] = ()
    decisions: int = 0
    other_records: Counter[str] = field(default_factory=Counter)  # kind -> records of that kind skipped
    chains: dict[str, ChainRange] = field(default_factory=dict)
    gaps: list[Gap] = field(default_factory=list)
    files: int = 0
    input_columns: tuple[tuple[str, str], ...] = ()
    scores: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return not self.gaps

    def as_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT, "log": self.log, "flow": self.flow, "from": self.since, "to": self.until,
            "partition_by": list(self.partition_by), "decisions": self.decisions,
            "other_records": dict(sorted(self.other_records.items())),
            "chains": [c.as_dict() for c in self.chains.values()],
            "complete": self.complete, "allow_gaps": self.allow_gaps, "gaps": [g.as_dict() for g in self.gaps],
            "input_columns": [list(pair) for pair in self.input_columns], "scores": list(self.scores),
            "files": self.files,
        }


@dataclass(frozen=True)
class _Filter:
    flow: str | None
    since: str | None
    until: str | None

    def keeps(self, record: Mapping[str, Any]) -> bool:
        if self.flow is not None and record.get("flow") != self.flow:
            return False
        ts = str(record.get("ts", ""))
        return (self.since is None or ts >= self.since) and (self.until is None or ts < self.until)


def _survey(source: LogSource, keep: _Filter, gaps: list[Gap] | None) -> tuple[FieldKinds, dict[str, int]]:
    """The first pass: the kinds of the records to export and each chain's last ``seq`` now."""
    kinds = FieldKinds()
    ends: dict[str, int] = {}
    for chain, record in source.records(flow=keep.flow, gaps=gaps):
        seq = record.get("seq")
        if isinstance(seq, int) and seq > ends.get(chain, -1):
            ends[chain] = seq
        if record.get("kind") == "decision" and keep.keeps(record):
            kinds.observe(record)
    return kinds, ends


def export_log(
    source: LogSource,
    dest: Path,
    *,
    flow: str | None = None,
    since: str | None = None,
    until: str | None = None,
    allow_gaps: bool = False,
    partition_by: Sequence[str] = (),
    row_group_rows: int = ROW_GROUP_ROWS,
) -> ExportSummary:
    """Export the decision records of ``source`` (of ``flow``, with ``since`` <= ts < ``until``) to ``dest``.

    ``since``/``until`` are ``ts`` texts (``parse_when``). ``dest`` is a Parquet file, or with
    ``partition_by`` (some of ``PARTITION_KEYS``) a directory that must not exist or be empty.
    Raises LogGap on a gap unless ``allow_gaps``, AuditError when the log cannot be read or
    ``dest`` cannot be written, ValueError for an unknown partition key.
    """
    unknown = [k for k in partition_by if k not in PARTITION_KEYS]
    if unknown or len(set(partition_by)) != len(partition_by):
        raise ValueError(f"partition by {', '.join(partition_by)}: each of {', '.join(PARTITION_KEYS)} at most once")
    began = time.monotonic()
    keep = _Filter(flow, since, until)
    kinds, ends = _survey(source, keep, [] if allow_gaps else None)
    columns = kinds.columns()
    summary = ExportSummary(source.describe(), str(dest), flow, since, until, allow_gaps, tuple(partition_by),
                            input_columns=columns.inputs, scores=columns.scores)
    gaps: list[Gap] | None = [] if allow_gaps else None
    sink = _Sink(Path(dest), columns, tuple(partition_by), row_group_rows)
    try:
        for chain, record in source.records(flow=flow, gaps=gaps):
            if not _covers(summary, ends, chain, record):
                continue
            if record.get("kind") != "decision":
                summary.other_records[str(record.get("kind") or "(none)")] += 1
                continue
            if not keep.keeps(record):
                continue
            sink.add(columns.row(summary.decisions, chain, record), record)
            summary.chains[chain].decisions += 1
            summary.decisions += 1
        summary.gaps = list(gaps or ())
        summary.seconds = time.monotonic() - began
        summary.files = sink.close(summary)
    except BaseException:
        sink.abort()
        raise
    return summary


def _covers(summary: ExportSummary, ends: Mapping[str, int], chain: str, record: Mapping[str, Any]) -> bool:
    """Whether ``record`` is within what the first pass saw of its chain; counts it in the chain's range."""
    seq = record.get("seq")
    if not isinstance(seq, int) or seq > ends.get(chain, -1):
        return False  # appended after the first pass: the next export's
    found = summary.chains.get(chain)
    if found is None:
        found = summary.chains[chain] = ChainRange(chain, seq, seq, str(record.get("hash", "")))
    found.records += 1
    found.first_seq = min(found.first_seq, seq)
    if seq >= found.last_seq:
        found.last_seq, found.last_hash = seq, str(record.get("hash", ""))
    return True


class _Part:
    """One open Parquet file and the rows not yet written to it (a row group at most)."""

    def __init__(self, path: Path, schema: Any) -> None:
        import pyarrow.parquet as pq

        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.writer = pq.ParquetWriter(str(path), schema, compression="zstd")
        self.columns: list[list[Any]] = [[] for _ in schema]  # the buffered rows, column by column
        self.rows = 0


class _Sink:
    """Rows into one Parquet file, or into Hive-style partition directories (at most
    ``MAX_OPEN_PARTITIONS`` files open; each partition's rows are written a row group at a time)."""

    def __init__(self, dest: Path, columns: ExportColumns, partition_by: tuple[str, ...], row_group_rows: int) -> None:
        import pyarrow as pa

        self.dest = dest
        self.partition_by = partition_by
        self.row_group_rows = max(1, row_group_rows)
        schema = columns.arrow_schema()
        drop = [schema.get_field_index("flow")] if "flow" in partition_by else []
        self.keep = [i for i in range(len(schema)) if i not in drop]
        self.schema = pa.schema([schema.field(i) for i in self.keep])
        self.parts: OrderedDict[str, _Part] = OrderedDict()
        self.numbers: Counter[str] = Counter()
        self.files = 0
        if partition_by:
            if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
                raise AuditError(f"{dest}: a partitioned export goes to a new or empty directory")
        elif dest.suffix.lower() != ".parquet":
            raise AuditError(f"{dest}: the export is a .parquet file (or a directory with partitions)")
        try:
            (dest if partition_by else dest.parent).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditError(f"cannot write {dest}: {exc}") from None

    def _key(self, record: Mapping[str, Any]) -> str:
        values = {"flow": str(record.get("flow", "")), "date": str(record.get("ts", ""))[:10] or "unknown"}
        return "/".join(f"{k}={quote(values[k], safe='-_.')}" for k in self.partition_by)

    def add(self, row: list[Any], record: Mapping[str, Any]) -> None:
        key = self._key(record) if self.partition_by else ""
        part = self.parts.get(key)
        if part is None:
            part = self._open(key)
        else:
            self.parts.move_to_end(key)
        for column, i in zip(part.columns, self.keep, strict=True):
            column.append(row[i])
        part.rows += 1
        if part.rows >= self.row_group_rows:
            self._flush(part)

    def _open(self, key: str) -> _Part:
        if len(self.parts) >= MAX_OPEN_PARTITIONS:
            _, oldest = self.parts.popitem(last=False)
            self._finish(oldest)
        if self.partition_by:
            path = self.dest / key / f"part-{self.numbers[key]:05d}.parquet"
            self.numbers[key] += 1
        else:
            path = self.dest.with_name(f".{self.dest.name}.{os.getpid()}.tmp")
        try:
            part = self.parts[key] = _Part(path, self.schema)
        except OSError as exc:
            raise AuditError(f"cannot write {path}: {exc}") from None
        self.files += 1
        return part

    def _flush(self, part: _Part) -> None:
        import pyarrow as pa

        if part.rows:
            arrays = [pa.array(values, type=f.type) for values, f in zip(part.columns, self.schema, strict=True)]
            try:
                part.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
            except OSError as exc:  # e.g. the disk is full
                raise AuditError(f"cannot write {part.path}: {exc}") from None
            part.columns = [[] for _ in self.schema]
            part.rows = 0

    def _finish(self, part: _Part, metadata: bytes | None = None) -> None:
        self._flush(part)
        if metadata is not None:
            part.writer.add_key_value_metadata({META_KEY: metadata})
        part.writer.close()

    def close(self, summary: ExportSummary) -> int:
        """Write what is left and the export's description; returns the number of files."""
        if not self.partition_by and not self.parts:
            self._open("")  # an export of no decisions is still a file, with the columns and the description
        summary.files = self.files
        metadata = json.dumps(summary.as_dict()).encode()
        while self.parts:
            _, part = self.parts.popitem(last=False)
            self._finish(part, None if self.partition_by else metadata)
            if not self.partition_by:
                os.replace(part.path, self.dest)
        if self.partition_by:
            (self.dest / MANIFEST).write_bytes(metadata + b"\n")
        return self.files

    def abort(self) -> None:
        """Close what is open after a failure; a single file's temporary is removed."""
        for part in self.parts.values():
            with contextlib.suppress(Exception):  # already failing: the first error is the one to report
                part.writer.close()
            if not self.partition_by:
                part.path.unlink(missing_ok=True)
        self.parts.clear()

