"""Tamper evidence: verify names the first bad record for every kind of change to the log."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from engine.audit.segments import list_segments
from engine.audit.source import open_source

from .audit_helpers import write_log


@pytest.fixture
def log(tmp_path) -> Path:
    """A verified log of 40 decisions over several segments."""
    write_log(tmp_path, 40, max_segment_bytes=4096)
    assert open_source(tmp_path).verify().ok
    return tmp_path


def segment(log: Path, k: int) -> Path:
    return list_segments(log)[k][1]


def first_bad(log: Path) -> str:
    report = open_source(log).verify()
    assert not report.ok
    bad = report.first_bad()
    assert bad is not None
    return str(bad)


def test_every_single_byte_edit_is_detected(log):
    """Flipping any one byte (sampled over the whole log) fails verification."""
    rng = random.Random(7)
    paths = [p for _, p in list_segments(log)]
    for _ in range(25):
        path = rng.choice(paths)
        data = bytearray(path.read_bytes())
        i = rng.randrange(len(data))
        original = data[i]
        data[i] = original ^ 0x01
        path.write_bytes(bytes(data))
        assert not open_source(log).verify().ok, f"edit at {path.name}:{i} went unnoticed"
        data[i] = original
        path.write_bytes(bytes(data))
    assert open_source(log).verify().ok


def test_edited_record_is_named(log):
    """Changing a decision's action names that record's file, line, seq and decision id."""
    path = segment(log, 1)
    lines = path.read_bytes().splitlines(keepends=True)
    record = json.loads(lines[2])
    old = f'"action":"{record["action"]}"'.encode()
    lines[2] = lines[2].replace(old, b'"action":"APPROVE"' if b"APPROVE" not in old else b'"action":"DECLINE"')
    path.write_bytes(b"".join(lines))
    text = first_bad(log)
    assert f"{path.name}: line 3" in text and "hash mismatch" in text
    assert record["decision_id"] in text and f"seq {record['seq']}" in text


def test_removed_record_is_detected(log):
    """Deleting a whole record breaks the sequence at the record after it."""
    path = segment(log, 1)
    lines = path.read_bytes().splitlines(keepends=True)
    del lines[2]
    path.write_bytes(b"".join(lines))
    text = first_bad(log)
    assert f"{path.name}: line 3" in text and "removed" in text


def test_reordered_records_are_detected(log):
    """Swapping two records is detected at the first of them."""
    path = segment(log, 0)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[2], lines[3] = lines[3], lines[2]
    path.write_bytes(b"".join(lines))
    text = first_bad(log)
    assert f"{path.name}: line 3" in text and "reordered" in text


def test_truncated_mid_record_is_detected(log):
    """Cutting the last segment inside a record names the cut record."""
    path = segment(log, -1)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 30])
    text = first_bad(log)
    assert "truncated mid-record" in text and path.name in text


def test_truncated_middle_segment_is_detected(log):
    """Cutting a segment that is followed by others breaks the chain into the next segment."""
    path = segment(log, 0)
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-1]))
    text = first_bad(log)
    assert segment(log, 1).name in text and "line 1" in text


def test_removed_segment_is_detected(log):
    """Deleting a whole segment file in the middle is named as a missing segment."""
    victim = segment(log, 1)
    victim.unlink()
    text = first_bad(log)
    assert "segment 2 is missing" in text


def test_inserted_record_is_detected(log):
    """A forged record (correct hash of its own bytes) inserted between two records is detected."""
    from engine.audit.record import Chain

    from .audit_helpers import payload_of

    path = segment(log, 0)
    lines = path.read_bytes().splitlines(keepends=True)
    prev = json.loads(lines[1])
    forged = Chain(prev["seq"] + 1, prev["hash"]).seal(payload_of(999)) + b"\n"
    lines.insert(2, forged)
    path.write_bytes(b"".join(lines))
    text = first_bad(log)
    assert f"{path.name}: line 4" in text


def test_garbage_line_is_named(log):
    """A line that is not a record at all is reported as such."""
    path = segment(log, 0)
    lines = path.read_bytes().splitlines(keepends=True)
    lines[1] = b"hello\n"
    path.write_bytes(b"".join(lines))
    assert "not a valid record" in first_bad(log)
