"""Tests of the embedded decision log: record format, hash chain, segments, recovery, group commit."""

from __future__ import annotations

import contextlib
import json
import threading
from pathlib import Path

import pytest

from engine.audit.errors import AuditCorrupt, AuditError, AuditUnavailable
from engine.audit.record import GENESIS, Chain, decision_from_record, iso_time, parse_time, payload, unseal
from engine.audit.segments import FileStore, list_segments
from engine.audit.source import FileSource, open_source
from engine.audit.writer import GroupCommitWriter

from .audit_helpers import make_decision, payload_of, write_log


def lines_of(directory: Path) -> list[bytes]:
    out: list[bytes] = []
    for _, path in list_segments(directory):
        out.extend(path.read_bytes().splitlines())
    return out


def test_sealed_record_is_json_with_seq_prev_and_hash():
    """A sealed line is one JSON object carrying seq, prev and the hash of its own bytes."""
    chain = Chain()
    first = chain.seal(payload_of(1))
    second = chain.seal(payload_of(2))
    a, b = unseal(first), unseal(second)
    assert a.hash_ok and b.hash_ok
    assert (a.seq, a.prev) == (0, GENESIS)
    assert (b.seq, b.prev) == (1, a.hash)
    assert json.loads(first)["decision_id"] == "d000001"
    assert chain.seq == 2 and chain.prev == b.hash


def test_any_edited_byte_breaks_the_hash():
    """Changing one byte anywhere in a record is detected by its hash (or makes it unparseable)."""
    line = Chain().seal(payload_of(7))
    for i in range(0, len(line), 7):
        edited = bytearray(line)
        edited[i] = ord("X") if edited[i] != ord("X") else ord("Y")
        with contextlib.suppress(ValueError):
            assert not unseal(bytes(edited)).hash_ok


def test_decision_round_trips_through_its_record():
    """decision_from_record gives back the decision that was logged (features aside)."""
    for i in range(6):
        decision = make_decision(i)
        data = unseal(Chain().seal(payload_of(i))).data
        assert decision_from_record(data) == decision


def test_iso_time_round_trips_to_the_microsecond():
    """Record timestamps are UTC ISO-8601 with microseconds and parse back to the same instant."""
    t = 1_700_000_123.456789
    text = iso_time(t)
    assert text == "2023-11-14T22:15:23.456789Z"
    assert abs(parse_time(text) - t) < 1e-6


def test_log_writes_header_and_records_and_verifies(tmp_path):
    """A fresh log has a segment header then one line per decision; verify counts them."""
    write_log(tmp_path, 10)
    lines = lines_of(tmp_path)
    assert len(lines) == 11
    assert json.loads(lines[0])["kind"] == "segment"
    report = open_source(tmp_path).verify()
    assert report.ok and report.decisions == 10 and report.records == 11
    assert report.chains[0].last_hash == unseal(lines[-1]).hash


def test_reopening_continues_the_chain(tmp_path):
    """A second writer on the same directory continues seq and prev where the first stopped."""
    write_log(tmp_path, 3)
    writer = GroupCommitWriter(FileStore(tmp_path))
    assert writer.chain.seq == 4
    writer.append(payload_of(99))
    writer.close()
    report = open_source(tmp_path).verify()
    assert report.ok and report.decisions == 4


def test_segments_rotate_by_size_and_chain_across(tmp_path):
    """Past the size limit a new segment starts; its header chains to the previous segment."""
    write_log(tmp_path, 60, max_segment_bytes=4096)
    segments = list_segments(tmp_path)
    assert len(segments) > 3
    headers = [unseal(p.read_bytes().splitlines()[0]) for _, p in segments]
    lasts = [unseal(p.read_bytes().splitlines()[-1]) for _, p in segments]
    for k in range(1, len(segments)):
        assert headers[k].data["segment"] == k + 1
        assert headers[k].prev == lasts[k - 1].hash
    report = open_source(tmp_path).verify()
    assert report.ok and report.decisions == 60 and report.chains[0].segments == len(segments)


def test_torn_tail_is_trimmed_on_open_and_reported(tmp_path, capsys):
    """A record cut short by a crash is trimmed when the log is opened again; the rest stays."""
    write_log(tmp_path, 5)
    _, path = list_segments(tmp_path)[-1]
    whole = path.read_bytes()
    path.write_bytes(whole + Chain(6, "a" * 64).seal(payload_of(6))[:40])
    assert not open_source(tmp_path).verify().ok  # a torn record is a truncated record until recovered
    store = FileStore(tmp_path)
    store.open()
    assert store.recovery is not None and store.recovery.trimmed_bytes == 40
    store.close()
    assert path.read_bytes() == whole
    assert open_source(tmp_path).verify().ok


def test_corrupt_middle_record_refuses_to_open(tmp_path):
    """An edited record in the last segment is corruption, not a torn tail: the writer will not open."""
    write_log(tmp_path, 5)
    _, path = list_segments(tmp_path)[-1]
    path.write_bytes(path.read_bytes().replace(b'"REVIEW"', b'"APPROVE"', 1))
    with pytest.raises(AuditCorrupt, match="hash mismatch"):
        FileStore(tmp_path).open()


def test_second_writer_on_a_directory_is_refused(tmp_path):
    """Two processes (or stores) cannot append to the same directory at once."""
    first = FileStore(tmp_path)
    first.open()
    try:
        with pytest.raises(AuditError, match="in use"):
            FileStore(tmp_path).open()
    finally:
        first.close()


def test_empty_segment_left_by_a_crash_is_removed(tmp_path):
    """A last segment file without a header is removed on open and the chain goes on."""
    write_log(tmp_path, 3)
    (tmp_path / "segment-00000002.log").write_bytes(b"")
    writer = GroupCommitWriter(FileStore(tmp_path))
    writer.append(payload_of(4))
    writer.close()
    assert [i for i, _ in list_segments(tmp_path)] == [1]
    assert open_source(tmp_path).verify().ok


def test_group_commit_batches_concurrent_records(tmp_path):
    """Many threads appending at once share fsyncs: fewer batches than records, all durable."""
    writer = GroupCommitWriter(FileStore(tmp_path))
    barrier = threading.Barrier(16)

    def work(k: int) -> None:
        barrier.wait()
        for i in range(20):
            writer.append(payload_of(k * 100 + i))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert writer.stats.records == 320
    assert writer.stats.batches < 320 and writer.stats.max_batch > 1
    report = open_source(tmp_path).verify()
    assert report.ok and report.decisions == 320


class _FailingStore(FileStore):
    def __init__(self, directory: Path, fail_after: int) -> None:
        super().__init__(directory)
        self.fail_after = fail_after

    def append(self, lines, metas=()):  # type: ignore[override]
        if self.fail_after <= 0:
            raise OSError(5, "Input/output error")
        self.fail_after -= 1
        super().append(lines, metas)


def test_failed_fsync_fails_the_batch_and_everything_after(tmp_path):
    """After a failed write/fsync no record is acknowledged any more (AuditUnavailable)."""
    writer = GroupCommitWriter(_FailingStore(tmp_path, fail_after=1))
    writer.append(payload_of(1))
    with pytest.raises(AuditUnavailable, match="could not be logged"):
        writer.append(payload_of(2))
    with pytest.raises(AuditUnavailable):
        writer.append(payload_of(3))
    writer.close()
    assert open_source(tmp_path).verify().decisions == 1


def test_closed_writer_refuses_records(tmp_path):
    """Appending after close raises instead of blocking forever."""
    writer = GroupCommitWriter(FileStore(tmp_path))
    writer.close()
    with pytest.raises(AuditUnavailable, match="closed"):
        writer.append(payload_of(1))


def test_source_reads_decisions_filters_and_tails(tmp_path):
    """decisions() filters by flow and id; last_decisions gives the newest N in order."""
    writer = GroupCommitWriter(FileStore(tmp_path))
    for i in range(10):
        writer.append(payload_of(i, flow="card_payment" if i % 2 else "credit_application"))
    writer.close()
    source = FileSource(tmp_path)
    assert [d["decision_id"] for d in source.decisions(flow="card_payment")] == [f"d{i:06d}" for i in range(1, 10, 2)]
    assert [d["decision_id"] for d in source.decisions(decision_id="d000004")] == ["d000004"]
    assert [d["decision_id"] for d in source.last_decisions(3)] == ["d000007", "d000008", "d000009"]
    assert [d["decision_id"] for d in source.last_decisions(2, flow="credit_application")] == ["d000006", "d000008"]
    assert source.count_hint("card_payment") == 5


def test_recent_reads_records_since_a_time(tmp_path):
    """recent(since) yields the decisions logged at or after ``since``, oldest first."""
    write_log(tmp_path, 10)
    got = [d["decision_id"] for d in FileSource(tmp_path).recent(1_700_000_007.0)]
    assert got == ["d000007", "d000008", "d000009"]


def test_no_log_is_an_error(tmp_path):
    """Reading a directory without segments says there is no log there."""
    with pytest.raises(AuditError, match="no decision log"):
        open_source(tmp_path)


def test_segment_files_are_not_world_readable(tmp_path):
    """Segments hold (masked) customer data: they are created without access for others."""
    write_log(tmp_path, 1)
    for _, path in list_segments(tmp_path):
        assert path.stat().st_mode & 0o007 == 0


def test_values_json_cannot_encode_are_logged_as_text(tmp_path):
    """An in-process caller's odd value (a date) is logged as its text instead of failing the decision."""
    import datetime

    from engine.audit.record import decision_payload

    body = decision_payload(make_decision(1), {"when": datetime.date(2024, 5, 1)}, [], ts=0.0)
    assert json.loads(body)["input"] == {"when": "2024-05-01"}


def test_log_directory_is_private_whatever_the_umask(tmp_path):
    """With umask 0 the log's directories (new parents too) are 0700 and every file 0600."""
    import os
    import stat

    from engine.audit.keyfile import load_or_create_key

    directory = tmp_path / "a" / "log"
    old = os.umask(0)
    try:
        write_log(directory, 30, max_segment_bytes=4096)
        load_or_create_key(directory)
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = [p for p in directory.iterdir()]
    assert {p.name for p in files} >= {".lock", "hash.key", "segment-00000001.log", "segment-00000002.log"}
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in files} == {p.name: 0o600 for p in files}


def test_opening_tightens_an_older_logs_permissions(tmp_path):
    """A log written with wider modes (0755 directory, 0644 segments) is made private at open."""
    import os
    import stat

    write_log(tmp_path, 3)
    os.chmod(tmp_path, 0o755)
    for _, path in list_segments(tmp_path):
        os.chmod(path, 0o644)
    store = FileStore(tmp_path)
    store.open()
    store.close()
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for _, p in list_segments(tmp_path))


def test_tampering_in_an_earlier_segment_refuses_to_open_naming_file_and_record(tmp_path):
    """An edited record in any segment (not only the last) stops the writer from appending; the
    error names the segment file, the line and the record's seq."""
    write_log(tmp_path, 60, max_segment_bytes=4096)
    segments = list_segments(tmp_path)
    assert len(segments) > 3
    _, first = segments[0]
    lines = first.read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b'"eval_us":13.5', b'"eval_us":13.6')
    assert lines[2] != first.read_bytes().split(b"\n")[2]
    first.write_bytes(b"\n".join(lines))
    with pytest.raises(AuditCorrupt, match=r"segment-00000001\.log: line 3 \(seq 2, decision d000001\): hash mismatch"):
        FileStore(tmp_path).open()


def test_a_removed_or_rewritten_segment_refuses_to_open(tmp_path):
    """A missing middle segment, or a last segment whose header does not continue the chain, is refused."""
    write_log(tmp_path, 60, max_segment_bytes=4096)
    segments = list_segments(tmp_path)
    middle = segments[1][1].read_bytes()
    segments[1][1].unlink()
    with pytest.raises(AuditCorrupt, match=r"segment 2 is missing"):
        FileStore(tmp_path).open()
    segments[1][1].write_bytes(middle)
    last_index, last = segments[-1]
    header = payload({"kind": "segment", "format": "verdict-decision-log/1", "segment": last_index, "created": "", "writer": ""})
    last.write_bytes(Chain().seal(header) + b"\n")  # a new chain started where the old one went on
    with pytest.raises(AuditCorrupt, match=rf"segment-{last_index:08d}\.log: line 1 \(seq 0\): the segment header does not continue"):
        FileStore(tmp_path).open()
