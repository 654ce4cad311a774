"""Reading a decision log: a directory of segment files or a PostgreSQL database (by DSN).

A location is either a PostgreSQL URI (``postgresql://…`` or ``postgres://…``) or a directory.
A directory holds one chain (its own segment files) and/or one chain per sub-directory holding
segment files (``verdict serve --workers N`` gives each worker ``DIR/worker-<i>``).

Every source can ``verify()`` its chains and iterate its ``decisions()`` (parsed records) in
chain order; reading does not check hashes (``verify`` does).
"""

from __future__ import annotations

import json
import re
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from engine.audit.errors import AuditError
from engine.audit.record import iso_time
from engine.audit.segments import iter_lines, list_segments, verify_segment_files
from engine.audit.verify import ChainReport, ChainVerifier, VerifyReport

__all__ = ["FileSource", "LogSource", "is_dsn", "open_source"]

_DSN_RE = re.compile(r"^postgres(ql)?://", re.IGNORECASE)


class LogSource(Protocol):
    """A readable decision log."""

    def describe(self) -> str: ...

    def verify(self) -> VerifyReport: ...

    def decisions(self, *, flow: str | None = None, decision_id: str | None = None) -> Iterator[dict[str, Any]]: ...

    def last_decisions(self, n: int, *, flow: str | None = None) -> list[dict[str, Any]]: ...

    def recent(self, since: float) -> Iterator[dict[str, Any]]: ...

    def count_hint(self, flow: str | None = None) -> int | None: ...

    def close(self) -> None: ...


def is_dsn(location: str) -> bool:
    return bool(_DSN_RE.match(location))


def open_source(location: str | Path) -> LogSource:
    """The log at ``location`` (a directory or a PostgreSQL DSN); raises AuditError if there is none."""
    text = str(location)
    if is_dsn(text):
        from engine.audit.postgres import PgSource

        return PgSource(text)
    return FileSource(Path(text))


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
        for sub in sorted(p for p in self.directory.iterdir() if p.is_dir()):
            if list_segments(sub):
                found.append(sub)
        return found

    def describe(self) -> str:
        return str(self.directory)

    def _name(self, chain_dir: Path) -> str:
        return str(chain_dir)

    def verify(self) -> VerifyReport:
        report = VerifyReport(self.describe())
        for chain_dir in self.chain_dirs:
            report.chains.append(self._verify_chain(chain_dir))
        return report

    def _verify_chain(self, chain_dir: Path) -> ChainReport:
        report = ChainReport(self._name(chain_dir))
        checker = ChainVerifier(report)
        segments = list_segments(chain_dir)
        for expected, (index, path) in enumerate(segments, start=1):
            if index != expected:
                missing = segment_label(chain_dir, expected)
                checker.fail(missing, f"segment {expected} is missing (found segment {index} next)")
                break
            report.segments += 1
            line_no = 0
            for raw, complete in iter_lines(path):
                line_no += 1
                where = f"{path}: line {line_no}"
                rec = checker.feed(where, raw, complete)
                if rec is None:
                    return report
                if line_no == 1 and (rec.kind != "segment" or rec.data.get("segment") != index):
                    checker.fail(where, f"the first record of segment {index} is not its header")
                    return report
                if line_no > 1 and rec.kind == "segment":
                    checker.fail(where, "a segment header in the middle of a segment")
                    return report
            if line_no == 0:
                checker.fail(f"{path}", "empty segment (no header)")
                return report
        return report

    def decisions(self, *, flow: str | None = None, decision_id: str | None = None) -> Iterator[dict[str, Any]]:
        for chain_dir in self.chain_dirs:
            yield from self._chain_decisions(chain_dir, list_segments(chain_dir), flow, decision_id)

    def _chain_decisions(
        self, chain_dir: Path, segments: list[tuple[int, Path]], flow: str | None, decision_id: str | None
    ) -> Iterator[dict[str, Any]]:
        flow_marker = b'"flow":' + json.dumps(flow).encode() if flow is not None else b""
        id_marker = decision_id.encode() if decision_id is not None else b""
        for _, path in segments:
            for raw, complete in iter_lines(path):
                if not complete or flow_marker not in raw or id_marker not in raw:
                    continue
                try:
                    data = json.loads(raw)
                except ValueError:
                    continue
                if data.get("kind") != "decision":
                    continue
                if flow is not None and data.get("flow") != flow:
                    continue
                if decision_id is not None and data.get("decision_id") != decision_id:
                    continue
                yield data

    def last_decisions(self, n: int, *, flow: str | None = None) -> list[dict[str, Any]]: ...

    def recent(self, since: float) -> Iterator[dict[str, Any]]: ...

    def count_hint(self, flow: str | None = None) -> int | None: ...

    def close(self) -> None: ...


def is_dsn(location: str) -> bool:
    return bool(_DSN_RE.match(location))


def open_source(location: str | Path) -> LogSource:
    """The log at ``location`` (a directory or a PostgreSQL DSN); raises AuditError if there is none."""
    text = str(location)
    if is_dsn(text):
        from engine.audit.postgres import PgSource

        return PgSource(text)
    return FileSource(Path(text))


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
        for sub in sorted(p for p in self.directory.iterdir() if p.is_dir()):
            if list_segments(sub):
                found.append(sub)
        return found

    def describe(self) -> str:
        return str(self.directory)

    def _name(self, chain_dir: Path) -> str:
        return str(chain_dir)

    def verify(self) -> VerifyReport:
        report = VerifyReport(self.describe())
        for chain_dir in self.chain_dirs:
            report.chains.append(self._verify_chain(chain_dir))
        return report

    def _verify_chain(self, chain_dir: Path) -> ChainReport:
        report = ChainReport(self._name(chain_dir))
        verify_segment_files(chain_dir, list_segments(chain_dir), ChainVerifier(report))
        return report

    def decisions(self, *, flow: str | None = None, decision_id: str | None = None) -> Iterator[dict[str, Any]]:
        for chain_dir in self.chain_dirs:
            yield from self._chain_decisions(chain_dir, list_segments(chain_dir), flow, decision_id)

    def _chain_decisions(
        self, chain_dir: Path, segments: list[tuple[int, Path]], flow: str | None, decision_id: str | None
    ) -> Iterator[dict[str, Any]]:
        for _, path in segments:
            for raw, complete in iter_lines(path):
                    if not complete:
                        continue
                    if flow is not None and b'"flow":' + json.dumps(flow).encode() not in raw:
                        continue
                    if decision_id is not None and decision_id.encode() not in raw:
                        continue
                    try:
                        data = json.loads(raw)
                    except ValueError:
                        continue
                    if data.get("kind") != "decision":
                        continue
                    if flow is not None and data.get("flow") != flow:
                        continue
                    if decision_id is not None and data.get("decision_id") != decision_id:
                        continue
                    yield data

    def last_decisions(self, n: int, *, flow: str | None = None) -> list[dict[str, Any]]:
        """The last ``n`` decision records (of ``flow``), oldest first, across chains by time."""
        if n <= 0:
            return []
        tails: list[dict[str, Any]] = []
        for chain_dir in self.chain_dirs:
            tail: deque[dict[str, Any]] = deque(maxlen=n)
            tail.extend(self._chain_decisions(chain_dir, list_segments(chain_dir), flow, None))
            tails.extend(tail)
        tails.sort(key=lambda d: str(d.get("ts", "")))
        return tails[-n:]

    def recent(self, since: float) -> Iterator[dict[str, Any]]:
        """Decision records from ``since`` (epoch seconds) on, oldest first; reads only the segments needed."""
        cutoff = iso_time(since)
        found: list[dict[str, Any]] = []
        for chain_dir in self.chain_dirs:
            segments = list_segments(chain_dir)
            start = 0
            for i in range(len(segments) - 1, -1, -1):
                start = i
                if _segment_created(segments[i][1]) < cutoff:
                    break
            for data in self._chain_decisions(chain_dir, segments[start:], None, None):
                if str(data.get("ts", "")) >= cutoff:
                    found.append(data)
        found.sort(key=lambda d: str(d.get("ts", "")))
        return iter(found)

    def count_hint(self, flow: str | None = None) -> int | None:
        """About how many decision records (of ``flow``) there are: a total for progress reports."""
        marker = b'"kind":"decision"' if flow is None else b'"flow":' + json.dumps(flow).encode()
        n = 0
        for chain_dir in self.chain_dirs:
            for _, path in list_segments(chain_dir):
                with open(path, "rb") as f:
                    while block := f.read(1 << 22):
                        n += block.count(marker)
        return n

    def close(self) -> None:
        return None


def _segment_created(path: Path) -> str:
    """The ``created`` time of a segment's header ("" when unreadable)."""
    for raw, _ in iter_lines(path, chunk=1 << 16):
        try:
            return str(json.loads(raw).get("created", ""))
        except ValueError:
            return ""
    return ""


def segment_label(chain_dir: Path, index: int) -> str:
    from engine.audit.segments import segment_name

    return str(chain_dir / segment_name(index))
