"""A decision log exported to Parquet (``engine.audit.export``), read back: its description and its records.

``ExportedLog(path)`` opens a file or a partitioned directory and refuses one that is not a
finished export (no description: the export did not finish, or the file is some other Parquet);
``decisions(flow)`` yields the records as ``engine.audit.source`` yields them from the log (with
each row's ``log_order``), in batches of at most ``BATCH_ROWS`` rows, so ``engine.audit.replay``
replays an export exactly as it replays the log it came from. ``gaps()`` are the gaps the export
stated (it was made with ``--allow-gaps``): a replay of it states them too, and ``notes()`` what an
older export (format ``/1``, without ``event_time``, ``state``, ``lists`` and ``fallback``) cannot
reproduce.
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.audit.columns import CARRIED_SINCE_2, FORMAT, FORMATS, META_KEY, input_kinds, record_of
from engine.audit.errors import AuditError
from engine.audit.export import MANIFEST
from engine.audit.follow import Gap
from engine.extras import require

__all__ = ["BATCH_ROWS", "ExportedLog"]

BATCH_ROWS = 10_000


def _gap(data: dict[str, Any]) -> Gap:
    records = data.get("missing_records") or [None, None]
    segments = data.get("missing_segments")
    return Gap(str(data["chain"]), str(data["gap"]), records[0], records[1], tuple(segments) if segments else None)


class ExportedLog:
    """An export: ``meta`` is its description (``engine.audit.export.ExportSummary.as_dict``)."""

    def __init__(self, path: str | Path) -> None:
        require("batch", "reading a decision log exported to Parquet")
        self.path = Path(path)
        self.meta = self._description()
        if self.meta.get("format") not in FORMATS or "chains" not in self.meta:
            raise AuditError(f"{self.path}: not a finished decision-log export (no {' or '.join(FORMATS)} description)")
        self.kinds = input_kinds([tuple(p) for p in self.meta.get("input_columns", [])])

    def _description(self) -> dict[str, Any]:
        try:
            if self.path.is_dir():
                manifest = self.path / MANIFEST
                if not manifest.is_file():
                    raise AuditError(f"{self.path}: no {MANIFEST}: not a finished partitioned export")
                data = json.loads(manifest.read_text(encoding="utf-8"))
            else:
                import pyarrow.parquet as pq

                found = (pq.ParquetFile(str(self.path)).metadata.metadata or {}).get(META_KEY)
                if found is None:
                    raise AuditError(f"{self.path}: not a decision-log export (no {META_KEY.decode()} metadata)")
                data = json.loads(found)
        except (OSError, ValueError) as exc:  # missing, unreadable, not Parquet, bad JSON
            raise AuditError(f"cannot read the export {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise AuditError(f"{self.path}: the export's description is not a JSON object")
        return data

    def describe(self) -> str:
        return f"{self.path} (export of {self.meta.get('log', '?')})"

    @property
    def carries_state(self) -> bool:
        """Whether the export has ``event_time``, ``state``, ``lists`` and ``fallback`` (format /2 on)."""
        return self.meta.get("format") != FORMATS[0]

    def notes(self) -> list[str]:
        """What a replay of this export must state about it: an older export's missing columns."""
        if self.carries_state:
            return []
        return [f"{self.path} is an export of format {FORMATS[0]}, without {', '.join(CARRIED_SINCE_2)}: decisions of flows "
                f"with stateful features or list rules are replayed against this process's lists and recomputed state, "
                f"not as logged; export the log again (format {FORMAT}) to reproduce them"]

    def gaps(self) -> list[Gap]:
        """The gaps the export stated: the parts of the log it could not read."""
        return [_gap(g) for g in self.meta.get("gaps", [])]

    def dataset(self) -> Any:
        """The export as a ``pyarrow.dataset.Dataset`` (partition directories as columns)."""
        import pyarrow.dataset as ds

        if self.path.is_dir():
            return ds.dataset(str(self.path), format="parquet", partitioning="hive")
        return ds.dataset(str(self.path), format="parquet")

    def count_hint(self, flow: str | None = None) -> int:
        """How many decision rows (of ``flow``) the export holds."""
        return int(self.dataset().count_rows(filter=self._filter(flow)))

    @staticmethod
    def _filter(flow: str | None) -> Any:
        import pyarrow.dataset as ds

        return None if flow is None else ds.field("flow") == flow

    def decisions(self, flow: str | None = None, *, in_log_order: bool = False) -> Iterator[dict[str, Any]]:
        """Decision records (of ``flow``) as the log's readers give them, with ``log_order``; the order
        of the files (a partitioned export's are not in log order: ``log_order`` is), or with
        ``in_log_order`` the partition files merged by ``log_order`` (each file is in log order; a
        batch per file in memory), for a replay whose stateful features need the decisions before each."""
        try:
            if in_log_order and self.path.is_dir():
                import pyarrow.dataset as ds

                files = sorted(str(p) for p in self.path.rglob("*.parquet"))
                streams = [self._records(ds.dataset([f], format="parquet", partitioning="hive", partition_base_dir=str(self.path)), flow)
                           for f in files]
                yield from heapq.merge(*streams, key=lambda r: int(r["log_order"]))
            else:
                yield from self._records(self.dataset(), flow)
        except OSError as exc:
            raise AuditError(f"cannot read the export {self.path}: {exc}") from None

    def _records(self, data: Any, flow: str | None) -> Iterator[dict[str, Any]]:
        for batch in data.to_batches(filter=self._filter(flow), batch_size=BATCH_ROWS):
            for row in batch.to_pylist():
                yield record_of(row, self.kinds)
