"""Checking an export against the log it came from (``verdict audit verify LOG --export EXPORT``).

The log's decision records that the export says it covers (its filters, each chain up to the
``last_seq`` it states) are read in log order beside the export's rows in ``log_order`` (a
partitioned export's files merged: each file is in log order), and each pair must be the same
record: the same chain, ``seq`` and ``hash`` (so the same bytes in the log), and the same fields a
replay reads back (``engine.audit.columns.record_of``; from format /2 on also ``event_time``,
``state``, ``lists`` and ``fallback``). Each chain's record at the stated
``last_seq`` must have the stated ``last_hash``. Memory: a batch of rows per file.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import zip_longest
from typing import Any

from engine.audit.columns import CARRIED_SINCE_2
from engine.audit.exported import ExportedLog
from engine.audit.follow import Gap
from engine.audit.source import LogSource

__all__ = ["MAX_PROBLEMS", "check_export"]

MAX_PROBLEMS = 10  # differences named at most; the rest are counted
_COMPARED = ("decision_id", "request_id", "flow", "version", "revision", "route", "action", "reasons", "fired",
             "scores", "input", "seq", "hash", "ts")


def _logged(export: ExportedLog, source: LogSource, ends: Mapping[str, int], last: dict[str, str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """The log's decision records the export covers, in log order; notes each chain's hash at its stated end."""
    meta = export.meta
    gaps: list[Gap] | None = [] if meta.get("allow_gaps") else None
    since, until, flow = meta.get("from"), meta.get("to"), meta.get("flow")
    for chain, record in source.records(flow=flow, gaps=gaps):
        seq = record.get("seq")
        if not isinstance(seq, int) or seq > ends.get(chain, -1):
            continue
        if seq == ends[chain]:
            last[chain] = str(record.get("hash", ""))
        ts = str(record.get("ts", ""))
        if (record.get("kind") != "decision" or (flow is not None and record.get("flow") != flow)
                or (since is not None and ts < since) or (until is not None and ts >= until)):
            continue
        yield chain, record


def check_export(export: ExportedLog, source: LogSource) -> tuple[int, list[str]]:
    """``(rows checked, differences)``: every row of ``export`` against its record in ``source``.

    The differences name at most ``MAX_PROBLEMS`` rows (then how many more); none means the export
    holds exactly the log's records it says it covers. Raises LogGap when the log has a gap the
    export did not state, AuditError when the log cannot be read.
    """
    ends = {str(c["chain"]): int(c["last_seq"]) for c in export.meta.get("chains", [])}
    last: dict[str, str] = {}
    problems: list[str] = []
    more = 0
    checked = 0
    compared = (*_COMPARED, *CARRIED_SINCE_2) if export.carries_state else _COMPARED
    for pair in zip_longest(_logged(export, source, ends, last), export.decisions(in_log_order=True)):
        logged, row = pair
        checked += row is not None
        found = _difference(logged, row, compared)
        if found is None:
            continue
        if len(problems) < MAX_PROBLEMS:
            problems.append(found)
        else:
            more += 1
    problems.extend(
        f"{c['chain']}: the record at seq {c['last_seq']} does not have the hash the export states "
        f"({str(c['last_hash'])[:12]}…; the log: {last.get(str(c['chain']), 'none')[:12]}…)"
        for c in export.meta.get("chains", []) if last.get(str(c["chain"])) != c["last_hash"])
    if more:
        problems.append(f"... and {more:,} more differences")
    return checked, problems


def _difference(logged: tuple[str, dict[str, Any]] | None, row: dict[str, Any] | None, compared: tuple[str, ...]) -> str | None:
    if row is None:
        assert logged is not None
        return f"{logged[0]} seq {logged[1].get('seq')}: in the log, not in the export"
    if logged is None:
        return f"log_order {row['log_order']} ({row.get('chain')} seq {row.get('seq')}): in the export, not in the log"
    chain, record = logged
    fields = [k for k in compared if record.get(k) != row.get(k)] + (["chain"] if chain != row.get("chain") else [])
    if not fields:
        return None
    return f"log_order {row['log_order']} ({chain} seq {record.get('seq')}): {', '.join(fields)} differ from the log"
