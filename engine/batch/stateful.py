"""Batches of flows with stateful features: rows decided in event-time order, each as of just before itself.

A version with a ``behaviour:`` section (engine.state, docs/behaviour.md) reads velocity counters
and windows over the events before each decision. A batch of history must give every row the
values the online service would have computed had the rows arrived one by one at their own
times, never a value from the future (Feast/Tecton's point-in-time correctness). So, when a
version a row may be routed to has stateful features:

1. every row must carry its event time in the column named by the versions' ``behaviour.time_field``
   (e.g. ``event_time``, Unix seconds, 0 to the year 3000, as the input field): a missing or
   unreadable time refuses the whole run (``StatefulBatchError``, naming the rows), for a row
   without a time has no place in the order;
2. the rows are sorted by that time, stably (rows of the same time keep their file order, as
   requests one after the other);
3. each row is decided in that order through the version's state plan
   (``engine.state.store.decide_with_state``: the features as of its time, the evaluation, the
   decision recorded as an event when the flow counts it) with one in-memory store per version
   (``MemoryStore``, a fresh random salt: nothing is shared with a server's state);
4. the results are put back in input order.

The rows are decided one by one through the online evaluation (``CompiledFlow.evaluate_clean``):
what a row reads depends on the rows before it (and, for ``events: approved``, on their outcome),
so the chunk-wide scoring of ``engine.batch.core`` does not apply. All the file's rows are held at
once (the order is over the whole file): memory grows with the file, unlike a stateless batch.
On Spark a stateful version is refused (``refuse_on_spark``): rows of one key would be decided on
several executors, out of order.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from engine.batch.core import Decided, Resolve, RowResult, failed_result
from engine.batch.table import Chunk, TableFormatError
from engine.runtime.flow import CompiledFlow
from engine.state.store import MemoryStore, decide_with_state

__all__ = ["MAX_EVENT_TIME", "StatefulBatchError", "decide_in_event_order", "refuse_on_spark", "split", "time_field"]

MAX_EVENT_TIME = 32503680000.0  # the year 3000 in Unix seconds: the bound of RecordEvent's and the bundled flows' event_time
_LISTED = 5  # bad rows named in the message; the rest counted


class StatefulBatchError(TableFormatError):
    """A batch cannot decide a flow's stateful features as asked: no event time column or a row
    without a readable event time, versions with different time fields, or Spark."""

    code = "stateful_batch"


def time_field(flow: str, versions: Sequence[CompiledFlow]) -> str | None:
    """The event-time column of a batch over ``versions`` (those a row may go to); None when none is stateful.

    Raises StatefulBatchError when a stateful version declares no ``behaviour.time_field`` or two
    declare different ones.
    """
    stateful = [v for v in versions if v.state is not None]
    fields = {v.state.time_field for v in stateful if v.state is not None}
    if not stateful:
        return None
    if None in fields:
        names = ", ".join(v.version for v in stateful if v.state is not None and v.state.time_field is None)
        raise StatefulBatchError(
            f"{flow} version(s) {names} compute stateful features but declare no behaviour.time_field: a batch decides "
            "each row as of its own event time; declare the input field that carries it (docs/behaviour.md)")
    if len(fields) > 1:
        raise StatefulBatchError(
            f"{flow}: the versions a row may go to read their event time from different fields ({', '.join(sorted(map(str, fields)))}); "
            "decide one version at a time (--version)")
    return next(iter(fields))


def refuse_on_spark(flow: str, versions: Sequence[CompiledFlow]) -> None:
    """Raises StatefulBatchError when one of ``versions`` computes stateful features (Spark cannot order them)."""
    stateful = [v.version for v in versions if v.state is not None]
    if stateful:
        raise StatefulBatchError(
            f"{flow} version(s) {', '.join(stateful)} compute stateful features (behaviour:), which a batch decides row "
            "by row in event-time order through one state history; Spark would split a key's rows across executors: "
            "use --engine local (docs/batch.md, 'Stateful features')")


def _event_times(source: str, chunks: Sequence[Chunk], field: str) -> list[float]:
    """Each row's event time, in input order; raises StatefulBatchError naming the rows without a readable one."""
    if chunks and all(field not in c.columns for c in chunks):
        raise StatefulBatchError(
            f"{source}: no column {field!r}: the flow computes stateful features as of each row's event time "
            f"(behaviour.time_field {field!r}, Unix seconds)")
    times: list[float] = []
    bad: list[str] = []
    for chunk in chunks:
        column = chunk.columns.get(field) or [None] * chunk.n
        for k, v in enumerate(column):
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and 0 <= v <= MAX_EVENT_TIME
            if not ok:
                bad.append(f"row {chunk.start + k}: {'missing' if v is None else repr(v)}")
            times.append(float(v) if ok else 0.0)
    if bad:
        more = f" (and {len(bad) - _LISTED} more rows)" if len(bad) > _LISTED else ""
        raise StatefulBatchError(
            f"{source}: {field} must be Unix seconds from 0 to {MAX_EVENT_TIME:.0f} on every row, to decide the rows in "
            f"event-time order: {'; '.join(bad[:_LISTED])}{more}")
    return times


def decide_in_event_order(resolve: Resolve, chunks: Sequence[Chunk], field: str, source: str) -> list[RowResult]:
    """The result of every row of ``chunks`` (in input order), decided in event-time order (see the module docstring).

    Raises StatefulBatchError for a missing or unreadable event time; a row's own fault is its ``Failed``.
    """
    times = _event_times(source, chunks, field)
    raws = [row for chunk in chunks for row in chunk.rows]
    stores: dict[int, MemoryStore] = {}
    fixed = getattr(resolve, "fixed", None)
    results: list[RowResult | None] = [None] * len(raws)
    for i in sorted(range(len(raws)), key=times.__getitem__):  # stable: equal times keep input order
        try:
            compiled, route = fixed if fixed is not None else resolve(raws[i])
            results[i] = Decided(compiled, route, _decide_one(compiled, raws[i], times[i], stores))
        except Exception as exc:  # noqa: BLE001 - a row's fault (or a bug) fails that row, never the batch
            results[i] = failed_result(exc)
    return [r if r is not None else failed_result(RuntimeError("not decided")) for r in results]


def _decide_one(compiled: CompiledFlow, raw: Mapping[str, Any], at: float, stores: dict[int, MemoryStore]) -> Any:
    """One row as the service decides it (Decider._evaluate): validate, then read as of ``at``, evaluate, record."""
    plan = compiled.state
    if plan is None:
        return compiled.evaluate(raw)
    store = stores.get(id(compiled))
    if store is None:
        store = stores[id(compiled)] = MemoryStore(os.urandom(32))
    values = compiled.validator(raw)
    return decide_with_state(store, plan, values, at, compiled.evaluate_clean)[0]


def split(results: Sequence[RowResult], chunks: Iterable[Chunk]) -> Iterable[tuple[Chunk, Sequence[RowResult]]]:
    """Each chunk with its rows' results (``results`` in input order over all the chunks)."""
    at = 0
    for chunk in chunks:
        yield chunk, results[at : at + chunk.n]
        at += chunk.n
