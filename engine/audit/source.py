"""Reading a decision log: a directory of segment files or a PostgreSQL database (by DSN).

A location is either a PostgreSQL URI (``postgresql://…`` or ``postgres://…``) or a directory.
A directory holds one chain (its own segment files) and/or one chain per sub-directory holding
segment files (``verdict serve --workers N`` gives each worker ``DIR/worker-<i>``).

Every source can ``verify()`` its chains (every hash recomputed) and iterate its ``decisions()``
(parsed records) in chain order. Reading follows each chain as it goes (``engine.audit.follow``):
a missing or vanished segment, or records missing from a chain, is a **gap**. With ``gaps=None``
(the default) a gap raises ``LogGap`` — a report over part of a log must not pass for a report
over all of it; with a list, every gap is appended to it and reading goes on with what is there.
``recent()`` (the idempotency cache's warm-up) reads past gaps without a word: it needs only the
newest records.
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from engine.audit.errors import AuditError, SegmentVanished
from engine.audit.follow import ChainFollower, Gap, MissingSegments, note_gap
from engine.audit.record import iso_time
from engine.audit.segments import (
    VANISHED,
    iter_lines,
    list_segments,
    segment_name,
    verify_segment_files,
)
from engine.audit.verify import ChainReport, ChainVerifier, VerifyReport
from engine.extras import require

__all__ = ["FileSource", "LogSource", "is_dsn", "numbering_holes", "open_source"]

_DSN_RE = re.compile(r"^postgres(ql)?://", re.IGNORECASE)
_MISSING = "is missing (found segment {found} next)"
_MISSING_AT_START = "is missing (the log starts at segment {found})"


class LogSource(Protocol):
    """A readable decision log.

    ``decisions`` and ``last_decisions`` raise ``LogGap`` on a gap unless given a ``gaps`` list
    to append it to; every source raises ``AuditError`` when it cannot be read at all.
    """

    def describe(self) -> str: ...

    def verify(self) -> VerifyReport: ...

    def decisions(
        self, *, flow: str | None = None, decision_id: str | None = None, gaps: list[Gap] | None = None, kind: str = "decision"
    ) -> Iterator[dict[str, Any]]: ...

    def last_decisions(self, n: int, *, flow: str | None = None, gaps: list[Gap] | None = None) -> list[dict[str, Any]]: ...

    def recent(self, since: float) -> Iterator[dict[str, Any]]: ...

    def count_hint(self, flow: str | None = None) -> int | None: ...

    def close(self) -> None: ...


def is_dsn(location: str) -> bool:
    return bool(_DSN_RE.match(location))


def open_source(location: str | Path) -> LogSource:
    """The log at ``location`` (a directory or a PostgreSQL DSN); raises AuditError if there is none."""
    text = str(location)
    if is_dsn(text):
        require("postgres", "a decision log in PostgreSQL")
        from engine.audit.postgres import PgSource

        return PgSource(text)
    return FileSource(Path(text))


def numbering_holes(segments: list[tuple[int, Path]]) -> list[tuple[int, int, int]]:
    """``(first, last, found)`` for each run of segment numbers missing before segment ``found``."""
    holes = []
    expected = 1
    for index, _ in segments:
        if index != expected:
            holes.append((expected, index - 1, index))
        expected = index + 1
    return holes


class FileSource:
    """A directory of segment files (one chain) or of chain sub-directories."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise AuditError(f"no decision log at {self.directory}: not a directory")
        self.chain_dirs = self._chain_dirs()
        if not self.chain_dirs:
            raise AuditError(f"no decision log at {self.directory}: no segment files")

    def _chain_dirs(self) -> list[Path]:
        found = [self.directory] if list_segments(self.directory) else []
        found.extend(sub for sub in sorted(p for p in self.directory.iterdir() if p.is_dir()) if list_segments(sub))
        return found

    def describe(self) -> str:
        return str(self.directory)

    def verify(self) -> VerifyReport:
        report = VerifyReport(self.describe())
        for chain_dir in self.chain_dirs:
            report.chains.append(self._verify_chain(chain_dir))
        return report

    def _verify_chain(self, chain_dir: Path) -> ChainReport:
        report = ChainReport(str(chain_dir))
        verify_segment_files(chain_dir, list_segments(chain_dir), ChainVerifier(report))
        return report

    def _snapshot(self, gaps: list[Gap] | None) -> list[tuple[Path, list[tuple[int, Path]]]]:
        """Every chain's segment files as listed now; with ``gaps=None`` a numbering hole raises here,
        before anything is read."""
        chains = [(chain_dir, list_segments(chain_dir)) for chain_dir in self.chain_dirs]
        if gaps is None:
            for chain_dir, segments in chains:
                for first, last, found in numbering_holes(segments):
                    note_gap(_missing(chain_dir, first, last, found).gap(str(chain_dir)), None)
        return chains

    def decisions(
        self, *, flow: str | None = None, decision_id: str | None = None, gaps: list[Gap] | None = None, kind: str = "decision"
    ) -> Iterator[dict[str, Any]]:
        """Decision records (of ``flow``, or the one ``decision_id``), chain by chain in chain order;
        ``kind="disposition"``: the review cases' disposition records instead (engine.audit.record)."""
        for chain_dir, segments in self._snapshot(gaps):
            yield from self._chain_decisions(chain_dir, segments, flow, decision_id, gaps, kind)

    def _chain_decisions(
        self,
        chain_dir: Path,
        segments: list[tuple[int, Path]],
        flow: str | None,
        decision_id: str | None,
        gaps: list[Gap] | None,
        kind: str = "decision",
    ) -> Iterator[dict[str, Any]]:
        """The records of ``kind`` of one chain's ``segments``, following the chain through them."""
        flow_marker = b'"flow":' + json.dumps(flow).encode() if flow is not None else b""
        id_marker = decision_id.encode() if decision_id is not None else b""
        follower = ChainFollower(str(chain_dir), gaps)
        holes = {found: (first, last) for first, last, found in numbering_holes(segments)}
        for index, path in segments:
            if index in holes:
                follower.segments_missing(_missing(chain_dir, *holes[index], index))
            line_no = 0
            try:
                for raw, complete in iter_lines(path):
                    line_no += 1
                    if not complete:  # a torn last line, or one being written: not a record yet
                        continue
                    if not follower.follows(raw):
                        follower.break_at(f"{path}: line {line_no}", raw)
                    if flow_marker not in raw or id_marker not in raw:
                        continue
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        continue
                    if data.get("kind") != kind:
                        continue
                    if flow is not None and data.get("flow") != flow:
                        continue
                    if decision_id is not None and data.get("decision_id") != decision_id:
                        continue
                    yield data
            except SegmentVanished:
                follower.segments_missing(MissingSegments(str(path), index, index, VANISHED))
        follower.end()

    def last_decisions(self, n: int, *, flow: str | None = None, gaps: list[Gap] | None = None) -> list[dict[str, Any]]:
        """The last ``n`` decision records (of ``flow``), oldest first, across chains by time."""
        if n <= 0:
            return []
        tails: list[dict[str, Any]] = []
        for chain_dir, segments in self._snapshot(gaps):
            tail: deque[dict[str, Any]] = deque(maxlen=n)
            tail.extend(self._chain_decisions(chain_dir, segments, flow, None, gaps))
            tails.extend(tail)
        tails.sort(key=lambda d: str(d.get("ts", "")))
        return tails[-n:]

    def recent(self, since: float) -> Iterator[dict[str, Any]]:
        """Decision records from ``since`` (epoch seconds) on, oldest first; reads only the segments
        needed, and past any gap (older segments archived meanwhile are no concern here)."""
        cutoff = iso_time(since)
        found: list[dict[str, Any]] = []
        for chain_dir in self.chain_dirs:
            segments = list_segments(chain_dir)
            start = 0
            for i in range(len(segments) - 1, -1, -1):
                start = i
                if _segment_created(segments[i][1]) < cutoff:
                    break
            read_past: list[Gap] = []  # starting mid-chain is a "gap" too: noted here and dropped
            decisions = self._chain_decisions(chain_dir, segments[start:], None, None, read_past)
            found.extend(data for data in decisions if str(data.get("ts", "")) >= cutoff)
        found.sort(key=lambda d: str(d.get("ts", "")))
        return iter(found)

    def count_hint(self, flow: str | None = None) -> int | None:
        """About how many decision records (of ``flow``) there are: a total for progress reports."""
        marker = b'"kind":"decision"' if flow is None else b'"flow":' + json.dumps(flow).encode()
        n = 0
        for chain_dir in self.chain_dirs:
            for _, path in list_segments(chain_dir):
                try:
                    with open(path, "rb") as f:
                        while block := f.read(1 << 22):
                            n += block.count(marker)
                except OSError:  # moved away meanwhile: reading will say so; this is only a hint
                    continue
        return n

    def close(self) -> None:
        return None


def _missing(chain_dir: Path, first: int, last: int, found: int) -> MissingSegments:
    """Segments ``first``..``last`` of a chain are not there; ``found`` is the number listed next."""
    why = (_MISSING_AT_START if first == 1 else _MISSING).format(found=found)
    return MissingSegments(str(chain_dir / segment_name(first)), first, last, why)


def _segment_created(path: Path) -> str:
    """The ``created`` time of a segment's header ("" when unreadable or gone)."""
    try:
        for raw, _ in iter_lines(path, chunk=1 << 16):
            try:
                return str(json.loads(raw).get("created", ""))
            except ValueError:
                return ""
    except AuditError:
        return ""
    return ""

