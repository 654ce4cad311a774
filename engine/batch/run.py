"""Stream a table of inputs through the batch core into a table of decisions (``verdict batch``).

The I/O edge of the batch: reads ``InputTable`` chunks, decides each with ``decide_rows`` and the
service's routing (``Decider.resolve``), writes each chunk's records before reading the next, and
counts what happened. Nothing is written to the decision log: a batch is analysis (re-scoring,
backtests, what-ifs), not decisions delivered to a caller; ``Summary`` is the run's record.
"""

from __future__ import annotations

import gc
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.batch.core import decide_columns
from engine.batch.records import OutputColumns, to_columns
from engine.batch.stateful import decide_in_event_order, split, time_field
from engine.batch.table import Chunk, InputTable, Writer
from engine.runtime.flow import CompiledFlow
from engine.runtime.service import Decider

__all__ = ["DEFAULT_CHUNK", "Summary", "decide_chunk", "decide_chunk_columns", "decide_file", "decided_chunks", "flow_fields", "paused_gc", "resolver"]

DEFAULT_CHUNK = 10_000  # rows held at a time: ~10 MB of Python objects for a 15-field flow


@dataclass
class Summary:
    """What a batch run did: rows read, decided and failed, actions and error codes counted, timing."""

    flow: str
    rows: int = 0
    decided: int = 0
    failed: int = 0
    actions: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    versions: Counter[str] = field(default_factory=Counter)
    ignored_columns: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def add_columns(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Count the output columns of one chunk (engine.batch.records.to_columns)."""
        codes = columns["error_code"]
        failed = len(codes) - codes.count(None)
        self.rows += len(codes)
        self.failed += failed
        self.decided += len(codes) - failed
        self.errors.update(c for c in codes if c is not None)
        self.actions.update(a for a in columns["action"] if a is not None)
        self.versions.update(v for v in columns["version"] if v is not None)

    def add(self, records: Iterable[Mapping[str, Any]]) -> None:
        """Count the output records of one chunk."""
        for rec in records:
            self.rows += 1
            if rec["error_code"] is None:
                self.decided += 1
                self.actions[rec["action"]] += 1
                self.versions[rec["version"]] += 1
            else:
                self.failed += 1
                self.errors[rec["error_code"]] += 1

    def to_dict(self) -> dict[str, Any]:
        """The summary as JSON-ready data (rows per second over the whole run)."""
        return {
            "flow": self.flow, "rows": self.rows, "decided": self.decided, "failed": self.failed,
            "actions": dict(sorted(self.actions.items())), "errors": dict(sorted(self.errors.items())),
            "versions": dict(sorted(self.versions.items())), "ignored_columns": self.ignored_columns,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows / self.seconds, 1) if self.seconds > 0 else None,
        }


class resolver:  # noqa: N801 - used as the function it was (a Resolve), with the fixed answer beside it
    """``Decider.resolve`` for one flow and version (the routing of the online service).

    ``fixed`` is the one (version, route) of every row when no row's input can change it (a pinned
    version, or a flow without a challenger): the batch core then routes a chunk once, not each row.
    Raises FlowNotFound, FlowUnavailable or VersionNotFound as the service does, when built.
    """

    __slots__ = ("_decider", "_flow", "_version", "fixed")

    def __init__(self, decider: Decider, flow: str, version: str = "") -> None:
        self._decider, self._flow, self._version = decider, flow, version
        compiled, route = decider.resolve(flow, version)
        entry = decider.policies.flows[flow]
        self.fixed: tuple[CompiledFlow, str] | None = (compiled, route) if version or entry.challenger is None else None

    def __call__(self, raw: Mapping[str, Any]) -> tuple[CompiledFlow, str]:
        return self._decider.resolve(self._flow, self._version, raw)


def flow_fields(decider: Decider, flow: str, version: str = "") -> tuple[dict[str, Any], list[CompiledFlow]]:
    """The input fields of every version a row may be routed to, and those versions.

    Raises FlowNotFound, FlowUnavailable or VersionNotFound as the service does.
    """
    decider.resolve(flow, version)  # the typed error for an unknown flow or version
    entry = decider.policies.flows[flow]
    versions = [entry.versions[version]] if version else list(entry.versions.values())
    fields: dict[str, Any] = {}
    for v in versions:
        fields.update({k: f for k, f in v.validator.fields.items() if k not in fields})
    return fields, versions


@contextmanager
def paused_gc() -> Iterator[None]:
    """No automatic cyclic garbage collection while a chunk is decided (restored after).

    A chunk allocates ~100 objects a row that reference counting frees (no cycles); the collector,
    triggered every 700 allocations, would scan them and every long-lived object of the loaded
    flows again and again: ~20% of a batch row's CPU time (measured, 30,000 credit rows).
    """
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def decide_chunk(resolve: Callable[[Mapping[str, Any]], tuple[CompiledFlow, str]], columns: OutputColumns,
                 chunk: Chunk) -> list[dict[str, Any]]:
    """The output records of one chunk, in input order."""
    out = decide_chunk_columns(resolve, columns, chunk)
    return [dict(zip(out, row, strict=True)) for row in zip(*out.values(), strict=True)]


def decide_chunk_columns(resolve: Callable[[Mapping[str, Any]], tuple[CompiledFlow, str]], columns: OutputColumns,
                         chunk: Chunk) -> dict[str, list[Any]]:
    """The output columns of one chunk (engine.batch.records.to_columns), rows in input order."""
    return to_columns(columns, chunk.start, decide_columns(resolve, chunk.columns, chunk.n), chunk.ids)


def decided_chunks(
    resolve: Callable[[Mapping[str, Any]], tuple[CompiledFlow, str]], columns: OutputColumns, table: InputTable,
    field: str | None, jobs: int = 1,
) -> Iterator[tuple[Chunk, dict[str, list[Any]]]]:
    """Each chunk of ``table`` with its output columns, in input order.

    ``field``: the event-time column when a version has stateful features (``time_field``): then
    every chunk is read first and the rows decided in event-time order (engine.batch.stateful);
    else chunk by chunk, memory flat, in ``jobs`` worker processes when more than 1
    (``_in_processes``). Raises as ``InputTable.chunks`` and ``decide_in_event_order``.
    """
    if field is None and jobs > 1:
        yield from _in_processes(resolve, columns, table, jobs)
        return
    if field is None:
        for chunk in table.chunks():
            with paused_gc():
                out = decide_chunk_columns(resolve, columns, chunk)
            yield chunk, out
        return
    chunks = list(table.chunks())
    results = decide_in_event_order(resolve, chunks, field, str(table.path))
    for chunk, part in split(results, chunks):
        yield chunk, to_columns(columns, chunk.start, part, chunk.ids)


# A worker process's flows and columns, set once by ``_start_worker`` in the worker (never in the parent)
_worker: tuple[Callable[[Mapping[str, Any]], tuple[CompiledFlow, str]], OutputColumns] | None = None


def _start_worker(resolve: Callable[[Mapping[str, Any]], tuple[CompiledFlow, str]], columns: OutputColumns) -> None:
    """The pool's initializer: with ``fork`` its arguments reach the worker unpickled (the loaded flows as they are)."""
    global _worker
    _worker = (resolve, columns)


def _decide_in_worker(chunk: Chunk) -> dict[str, list[Any]]:
    """A worker process's task: one chunk's output columns, with the flows the parent loaded before forking."""
    assert _worker is not None
    with paused_gc():
        return decide_chunk_columns(_worker[0], _worker[1], chunk)


def _in_processes(
    resolve: Callable[[Mapping[str, Any]], tuple[CompiledFlow, str]], columns: OutputColumns, table: InputTable, jobs: int,
) -> Iterator[tuple[Chunk, dict[str, list[Any]]]]:
    """``decided_chunks`` by ``jobs`` forked worker processes: this process reads the chunks and
    writes the results in input order; at most two chunks a worker are in flight (memory flat).

    The workers are forked after the flows are loaded (no loading per worker; copy-on-write pages)
    and get each chunk's columns pickled, the output columns pickled back (~5 µs a row each way,
    measured): worth it when a row's decision costs several times that. POSIX only (``fork``).
    """
    import multiprocessing
    from collections import deque

    pending: deque[tuple[Chunk, Any]] = deque()
    with multiprocessing.get_context("fork").Pool(jobs, _start_worker, (resolve, columns)) as pool:
        for chunk in table.chunks():
            pending.append((chunk, pool.apply_async(_decide_in_worker, (chunk,))))
            if len(pending) >= 2 * jobs:
                done, result = pending.popleft()
                yield done, result.get()
        while pending:
            done, result = pending.popleft()
            yield done, result.get()


def decide_file(
    decider: Decider,
    flow: str,
    source: Path,
    dest: Path,
    *,
    version: str = "",
    id_column: str | None = None,
    chunk_rows: int = DEFAULT_CHUNK,
    progress: Callable[[Summary], None] | None = None,
    clock: Callable[[], float] = time.monotonic,
    jobs: int = 1,
) -> Summary:
    """Decide every row of ``source`` (CSV or Parquet) into ``dest`` (CSV or Parquet); the run's summary.

    ``progress`` is called after each chunk. ``jobs`` > 1 decides the chunks in that many forked
    worker processes (a flow without stateful features). A flow version with stateful features is
    decided in event-time order (engine.batch.stateful), in this process. Raises FlowNotFound / VersionNotFound /
    FlowUnavailable for the flow, ``TableError`` or ``TableFormatError`` for an unreadable input or
    unwritable output (``StatefulBatchError``, one of them, for a missing or unreadable event
    time); a row's own fault never raises (it is that row's ``error``).
    """
    fields, versions = flow_fields(decider, flow, version)
    field = time_field(flow, versions)
    columns = OutputColumns.of(versions, id_column)
    table = InputTable(Path(source), fields, id_column, chunk_rows)
    writer = Writer(Path(dest), columns.names, columns.float_columns)
    summary = Summary(flow)
    resolve = resolver(decider, flow, version)
    began = clock()
    try:
        for _, out in decided_chunks(resolve, columns, table, field, jobs):
            summary.ignored_columns = table.ignored
            writer.write_columns(out)
            summary.add_columns(out)
            summary.seconds = clock() - began
            if progress is not None:
                progress(summary)
    finally:
        writer.close()
    summary.seconds = clock() - began
    return summary
