"""The embedded log's files: a directory of numbered segment files, written append-only.

Layout: ``DIR/segment-00000001.log``, ``segment-00000002.log``, … and a ``.lock`` file held by the
one process writing the directory. The log holds (masked) customer data, so it is private
whatever the umask: directories are made (and kept) mode 0700 and files mode 0600
(``engine.audit.private_files``: ``private_dir``, and ``private_file`` after each create; files
of an older log are tightened at open).
Each segment is JSON lines (``engine.audit.record``); its first
line is a ``segment`` header whose ``prev`` is the hash of the last record of the segment before
(``GENESIS`` for segment 1), so one hash chain runs through every segment.

A new segment is written to a temporary file with its header, fsynced and renamed into place, so
a segment never exists without its header. Opening the store verifies every record of every
segment (hashes, sequence, ``prev`` links, headers, numbering) and recovers after a crash: a torn
last line (a write cut short) is trimmed and reported; any other bad record is corruption or
tampering and the store refuses to open, naming the file, line and record.

One concept: the segment files (reading, recovering, writing, rotating).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import stat
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from engine.audit.errors import AuditCorrupt, AuditError, SegmentVanished
from engine.audit.private_files import FILE_MODE, private_dir, private_file
from engine.audit.record import FORMAT, Chain, iso_time, payload, unseal
from engine.audit.verify import ChainReport, ChainVerifier

__all__ = [
    "DEFAULT_SEGMENT_BYTES",
    "VANISHED",
    "FileStore",
    "Recovery",
    "has_segments",
    "iter_lines",
    "list_segments",
    "segment_name",
    "verify_segment_files",
]

DEFAULT_SEGMENT_BYTES = 64 * 1024 * 1024
VANISHED = "disappeared while the log was read (rotated or archived?)"
_SEGMENT_RE = re.compile(r"^segment-(\d{8,})\.log$")
_log = structlog.get_logger("verdict.audit")


def segment_name(index: int) -> str:
    return f"segment-{index:08d}.log"


def list_segments(directory: Path) -> list[tuple[int, Path]]:
    """The segment files of ``directory``, in order."""
    if not directory.is_dir():
        return []
    found = []
    for entry in directory.iterdir():
        m = _SEGMENT_RE.match(entry.name)
        if m and entry.is_file():
            found.append((int(m.group(1)), entry))
    return sorted(found)


def has_segments(directory: Path) -> bool:
    return bool(list_segments(directory))


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Recovery:
    """What opening the store found at the end of the log."""

    segment: str
    records: int  # records in the last segment, header included
    trimmed_bytes: int  # bytes of a torn last record that were cut off
    removed_segment: str = ""  # an empty last segment left by a crash, removed


class FileStore:
    """Appends sealed record lines to the segment files of one directory, durably."""

    retryable = False

    def __init__(
        self, directory: Path, *, max_segment_bytes: int = DEFAULT_SEGMENT_BYTES, writer: str = "", fsync: bool = True
    ) -> None:
        if max_segment_bytes < 4096:
            raise AuditError("max_segment_bytes must be at least 4096")
        self.directory = Path(directory)
        self.fsync = fsync  # False only for tests and benchmarks that measure everything but the disk
        self.max_segment_bytes = max_segment_bytes
        self.writer = writer
        self._lock_fd: int | None = None
        self._fd: int | None = None
        self._index = 0
        self._size = 0
        self.recovery: Recovery | None = None

    # --- opening and recovery ----------------------------------------------------------

    def open(self) -> Chain:
        """Lock the directory, verify every segment, recover the tail; the chain to continue.

        Raises AuditCorrupt (naming file, line and record) when any record was changed, removed
        or reordered, and AuditError when the directory is unusable; the lock is released then.
        """
        private_dir(self.directory)
        self._lock()
        try:
            return self._open_locked()
        except BaseException:
            self.close()
            raise

    def _open_locked(self) -> Chain:
        for stale in self.directory.glob("segment-*.log.tmp"):
            stale.unlink()
        segments = list_segments(self.directory)
        for _, existing in segments:  # a log written before files were 0600
            if stat.S_IMODE(existing.stat().st_mode) != FILE_MODE:
                os.chmod(existing, FILE_MODE)
        if not segments:
            chain = Chain()
            self._create_segment(1, chain)
            self.recovery = Recovery(segment_name(1), 1, 0)
            return chain
        index, path = segments[-1]
        if index != len(segments):
            self._verify_sealed(segments)  # names the missing segment
        removed = ""
        chain_or_none, records, trimmed = self._recover(index, path, self._verify_sealed(segments[:-1]))
        if chain_or_none is None:  # nothing usable in the last segment: a crash while creating it
            removed = path.name
            path.unlink()
            _fsync_dir(self.directory)
            _log.warning("audit_empty_segment_removed", directory=str(self.directory), segment=path.name)
            if len(segments) == 1:
                chain = Chain()
                self._create_segment(1, chain)
                self.recovery = Recovery(segment_name(1), 1, trimmed, removed)
                return chain
            index, path = segments[-2]
            chain_or_none, records, trimmed2 = self._recover(index, path, self._verify_sealed(segments[:-2]))
            trimmed += trimmed2
            if chain_or_none is None:
                raise AuditCorrupt(f"{path}: segment has no valid header; run `verdict audit verify {self.directory}`")
        self._index = index
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self.recovery = Recovery(path.name, records, trimmed, removed)
        return chain_or_none

    def _lock(self) -> None:
        path = self.directory / ".lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
        private_file(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise AuditError(f"{self.directory} is in use by another writer (it holds {path})") from None
        self._lock_fd = fd

    def _verify_sealed(self, segments: Sequence[tuple[int, Path]]) -> Chain:
        """Verify every record of ``segments`` (all but the last, which ``_recover`` checks); the
        chain after them. Raises AuditCorrupt naming the first bad record: the server refuses to
        append to a log that was changed after it was written."""
        if not segments:
            return Chain()
        report = ChainReport(str(self.directory))
        verify_segment_files(self.directory, segments, ChainVerifier(report))
        if report.bad is not None:
            raise AuditCorrupt(
                f"{report.bad}; refusing to append to a log that was changed "
                f"(`verdict audit verify {self.directory}`; recovery: docs/decision-log.md)"
            )
        return Chain(report.last_seq + 1, report.last_hash)

    def _recover(self, index: int, path: Path, head: Chain) -> tuple[Chain | None, int, int]:
        """Check the last segment, which continues ``head``; trim a torn tail.

        Returns (chain after it | None if it holds no record, records, trimmed bytes).
        """
        data = path.read_bytes()
        report = ChainReport(str(path))
        checker: ChainVerifier | None = None
        refuse = f"refusing to append to a log that was changed (`verdict audit verify {self.directory}`)"
        pos = 0
        chain: Chain | None = None
        records = 0
        trimmed = 0
        while pos < len(data):
            end = data.find(b"\n", pos)
            if end == -1:  # a write cut short by a crash: the record was never acknowledged
                trimmed = len(data) - pos
                with open(path, "r+b") as f:
                    f.truncate(pos)
                    f.flush()
                    os.fsync(f.fileno())
                _log.warning(
                    "audit_torn_tail_trimmed",
                    directory=str(self.directory),
                    segment=path.name,
                    offset=pos,
                    bytes=trimmed,
                    records_kept=records,
                )
                break
            where = f"{path}: line {records + 1}"
            if chain is None:  # the header: its own checks, then it must continue the segment before
                try:
                    rec = unseal(data[pos:end])
                except ValueError as exc:
                    raise AuditCorrupt(f"{where}: {exc}; {refuse}") from None
                if not rec.hash_ok:
                    raise AuditCorrupt(f"{where}: hash mismatch: the record was edited; {refuse}")
                if rec.kind != "segment" or rec.data.get("segment") != index:
                    raise AuditCorrupt(f"{where}: the first record of a segment must be its header; {refuse}")
                if rec.seq != head.seq or rec.prev != head.prev:
                    raise AuditCorrupt(
                        f"{where} (seq {rec.seq}): the segment header does not continue the segment before "
                        f"(expected seq {head.seq}); {refuse}"
                    )
                checker = ChainVerifier(report, (head.seq, head.prev))
            assert checker is not None
            fed = checker.feed(where, data[pos:end])
            if fed is None:
                raise AuditCorrupt(f"{report.bad}; {refuse}")
            if chain is not None and fed.kind == "segment":
                raise AuditCorrupt(f"{where}: a segment header in the middle of a segment; {refuse}")
            chain = Chain(int(fed.seq) + 1, fed.hash)
            records += 1
            pos = end + 1
        return chain, records, trimmed

    # --- writing ------------------------------------------------------------------------

    def _create_segment(self, index: int, chain: Chain) -> None:
        """Write segment ``index`` with its header (sealed on ``chain``) atomically and switch to it."""
        header = payload(
            {"kind": "segment", "format": FORMAT, "segment": index, "created": iso_time(time.time()), "writer": self.writer}
        )
        line = chain.seal(header) + b"\n"
        final = self.directory / segment_name(index)
        tmp = final.with_name(final.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        try:
            private_file(fd)
            _write_all(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, final)
        _fsync_dir(self.directory)
        if self._fd is not None:
            os.close(self._fd)
        self._fd = os.open(final, os.O_WRONLY | os.O_APPEND)
        self._index = index
        self._size = len(line)

    def append(self, lines: Sequence[bytes], metas: Sequence[object] = ()) -> None:
        """Write sealed lines and fsync; they are durable when this returns."""
        if self._fd is None:
            raise AuditError("the audit log is not open")
        data = b"\n".join(lines) + b"\n"
        _write_all(self._fd, data)
        if self.fsync:
            os.fdatasync(self._fd)
        self._size += len(data)

    def reopen(self) -> Chain:
        raise AuditError("a failed write or fsync leaves a segment in an unknown state; restart to recover")

    def should_rotate(self) -> bool:
        return self._size >= self.max_segment_bytes

    def rotate(self, chain: Chain) -> None:
        """Start the next segment; its header continues ``chain``."""
        self._create_segment(self._index + 1, chain)

    @property
    def segment(self) -> str:
        return segment_name(self._index)

    def close(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def describe(self) -> str:
        return str(self.directory)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def iter_lines(path: Path, chunk: int = 1 << 20) -> Iterator[tuple[bytes, bool]]:
    """The lines of a file without their newline, and whether each was complete (ended by one).

    Raises SegmentVanished when the file is not there (any more) and AuditError when it cannot be
    opened otherwise; once open, a file moved or removed meanwhile reads to its end (POSIX).
    """
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        raise SegmentVanished(str(path)) from None
    except OSError as exc:
        raise AuditError(f"cannot read {path}: {exc.strerror or exc}") from None
    with f:
        rest = b""
        while True:
            block = f.read(chunk)
            if not block:
                break
            rest += block
            parts = rest.split(b"\n")
            rest = parts.pop()
            for part in parts:
                yield part, True
        if rest:
            yield rest, False


def verify_segment_files(chain_dir: Path, segments: Sequence[tuple[int, Path]], checker: ChainVerifier) -> None:
    """Feed every line of ``segments`` (numbered from 1, in order) to ``checker``; stop at the first
    problem, which ``checker.report.bad`` names (file, line, seq, decision id)."""
    report = checker.report
    for expected, (index, path) in enumerate(segments, start=1):
        if index != expected:
            checker.fail(str(chain_dir / segment_name(expected)), f"segment {expected} is missing (found segment {index} next)")
            return
        report.segments += 1
        line_no = 0
        try:
            for raw, complete in iter_lines(path):
                line_no += 1
                where = f"{path}: line {line_no}"
                rec = checker.feed(where, raw, complete)
                if rec is None:
                    return
                if line_no == 1 and (rec.kind != "segment" or rec.data.get("segment") != index):
                    checker.fail(where, f"the first record of segment {index} is not its header")
                    return
                if line_no > 1 and rec.kind == "segment":
                    checker.fail(where, "a segment header in the middle of a segment")
                    return
        except SegmentVanished:
            report.segments -= 1
            checker.fail(str(path), VANISHED)
            return
        if line_no == 0:
            checker.fail(f"{path}", "empty segment (no header)")
            return
