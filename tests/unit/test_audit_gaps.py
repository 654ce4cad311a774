"""Readers of the decision log follow the chain: a missing or vanished segment, or missing records, is a gap.

The log of the case replay-log-rotated-mid-replay (/work/shared/cases, run.sh and mklog.py): real
credit decisions (Decider, AuditSink, FileStore) in small segments, then the closed segments from
number FIRST_ARCHIVED on, all but the newest, moved away as an archive job does — (A) while the
replay reads, (B) just before it starts. Scaled down from 13,362 decisions in 247 segments of
64 KiB to 300 decisions in segments of 4 KiB; the archived part starts at the same place (60 of
247 there, 20 of ~100 here).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import engine.audit.segments as segments_module
import engine.audit.source as source_module
from engine.audit.errors import LogGap
from engine.audit.follow import ChainFollower, Gap, links, seq_gaps
from engine.audit.record import Chain, unseal
from engine.audit.segments import FileStore, iter_lines, list_segments
from engine.audit.sink import AuditSink
from engine.audit.source import FileSource
from engine.audit.writer import GroupCommitWriter
from engine.cli import main
from engine.policy.documents import ROOT_DIRS
from engine.policy.loader import load_policies
from engine.runtime.idempotency import Fingerprinter
from engine.runtime.privacy import HashKey
from engine.runtime.service import Decider

from .audit_helpers import credit_applications, payload_of, write_log

PROJECT = Path(__file__).resolve().parents[2]
N = 300
FIRST_ARCHIVED = 20
FLOW = "credit_application"


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """The bundled root with only the live versions answering (as the case's run.sh does)."""
    root = tmp_path_factory.mktemp("root")
    for part in ROOT_DIRS:
        shutil.copytree(PROJECT / part, root / part)
    for routing in (root / "policies").glob("*/routing.yaml"):
        routing.write_text("".join(line for line in routing.read_text().splitlines(keepends=True) if line.startswith("live")))
    return root


@pytest.fixture(scope="module")
def log0(tmp_path_factory, root) -> Path:
    """N real credit decisions logged in 4 KiB segments (the case's mklog.py, scaled down)."""
    directory = tmp_path_factory.mktemp("log0")
    key = HashKey(b"bh2-key")
    writer = GroupCommitWriter(FileStore(directory, fsync=False, max_segment_bytes=4096))
    decider = Decider(load_policies(root), sink=AuditSink(writer, key, Fingerprinter(key)))
    for i, row in enumerate(credit_applications(N)):
        decider.decide(FLOW, row, request_id=f"app-{i}")
    decider.close()
    writer.close()
    assert len(list_segments(directory)) > FIRST_ARCHIVED + 10
    return directory


def copy_log(log0: Path, tmp_path: Path, name: str = "log") -> Path:
    target = tmp_path / name
    shutil.copytree(log0, target)
    return target


def to_archive(log: Path) -> list[Path]:
    """The segments the case's archive job moves: numbers FIRST_ARCHIVED.. except the newest."""
    return [path for index, path in list_segments(log)[:-1] if index >= FIRST_ARCHIVED]


def archive(log: Path) -> None:
    target = log.with_name(log.name + ".archive")
    target.mkdir(exist_ok=True)
    for path in to_archive(log):
        shutil.move(path, target / path.name)


def first_seq(path: Path) -> int:
    """The seq of a segment's header record."""
    return int(unseal(path.read_bytes().split(b"\n", 1)[0]).seq)


def decisions_in(paths: list[Path], flow: str = FLOW) -> int:
    """Decision records of ``flow`` in these files, counted independently of the reader."""
    n = 0
    for path in paths:
        for line in path.read_bytes().splitlines():
            data = json.loads(line)
            n += data.get("kind") == "decision" and data.get("flow") == flow
    return n


def expected_gap(log: Path) -> tuple[int, int, int, int]:
    """(first segment, last segment, first seq, last seq) the archive job will take away."""
    segments = list_segments(log)
    moved = to_archive(log)
    first_index = next(i for i, p in segments if p == moved[0])
    last_index = next(i for i, p in segments if p == moved[-1])
    return first_index, last_index, first_seq(moved[0]), first_seq(segments[-1][1]) - 1


@pytest.fixture
def archive_when_opened(monkeypatch):
    """Case A, deterministically: the archive job runs the moment the reader opens segment FIRST_ARCHIVED - 1."""

    def arm(log: Path) -> None:
        trigger = list_segments(log)[FIRST_ARCHIVED - 2][1]
        real = source_module.iter_lines

        def hooked(path: Path, chunk: int = 1 << 20):
            if Path(path) == trigger and trigger.exists() and any(p.exists() for p in to_archive(log)):
                archive(log)
            return real(path, chunk)

        monkeypatch.setattr(source_module, "iter_lines", hooked)
        monkeypatch.setattr(segments_module, "iter_lines", hooked)  # verify reads through engine.audit.segments

    return arm


# --- following one chain -------------------------------------------------------------------------


def sealed(n: int, start: int = 0) -> list[bytes]:
    """A chain of ``n`` sealed decision records (payloads varied from ``start``)."""
    chain = Chain()
    return [chain.seal(payload_of(start + i)) for i in range(n)]


def test_links_reads_seq_prev_and_hash_from_their_places():
    """links() returns what unseal() parses, without hashing; a non-record line is a ValueError."""
    line = sealed(3)[2]
    rec = unseal(line)
    assert links(line) == (2, rec.prev.encode(), rec.hash.encode())
    with pytest.raises(ValueError):
        links(b'{"kind":"decision"}')


def test_an_unbroken_chain_has_no_gap():
    """Every record of a sealed chain follows the one before."""
    follower = ChainFollower("c", None)
    assert all(follower.follows(line) for line in sealed(20))
    follower.end()


def test_records_missing_from_a_chain_are_a_gap_with_their_seqs():
    """Records 5-7 removed: raises without a list; with one, the gap names seq 5 to 7 and reading resumes."""
    lines = sealed(12)
    kept = lines[:5] + lines[8:]
    follower = ChainFollower("c", None)
    with pytest.raises(LogGap, match="records seq 5 to 7 \\(3 records\\) missing"):
        for i, line in enumerate(kept):
            if not follower.follows(line):
                follower.break_at(f"line {i + 1}", line)
    gaps: list[Gap] = []
    follower = ChainFollower("c", gaps)
    for i, line in enumerate(kept):
        if not follower.follows(line):
            follower.break_at(f"line {i + 1}", line)
    follower.end()
    assert [(g.first_seq, g.last_seq, g.records) for g in gaps] == [(5, 7, 3)]
    assert str(gaps[0]).startswith("line 6: ")


def test_a_replaced_record_and_a_garbled_line_are_gaps_too():
    """A record from another chain breaks the chain at it and after it; a line that is no record breaks it once."""
    lines = sealed(6)
    other = sealed(6, start=100)
    gaps: list[Gap] = []
    follower = ChainFollower("c", gaps)
    for i, line in enumerate([*lines[:2], other[2], *lines[3:4], b"garbage", *lines[5:]]):
        if not follower.follows(line):
            follower.break_at(f"line {i + 1}", line)
    assert [g.text.split(":")[0] for g in gaps] == ["line 3", "line 4", "line 5"]
    assert "previous-hash mismatch" in gaps[0].text and "previous-hash mismatch" in gaps[1].text
    assert "not a record" in gaps[2].text


def test_seq_gaps_of_a_numbered_chain():
    """PostgreSQL chains: holes, a missing start and a missing end are named with their seqs; a whole chain is none."""
    assert seq_gaps("writer w", 10, 10, 0, 9, []) == []
    assert seq_gaps("writer w", 0, 0, None, None, []) == []
    found = seq_gaps("writer w", 20, 12, 3, 16, [(5, 6)])
    assert [(g.first_seq, g.last_seq) for g in found] == [(0, 2), (5, 6), (17, 19)]
    assert "missing at the chain's end" in found[-1].text
    assert [(g.first_seq, g.last_seq) for g in seq_gaps("writer w", 4, 0, None, None, [])] == [(0, 3)]


# --- the file source -----------------------------------------------------------------------------


def test_case_b_segments_archived_before_the_read_raise_before_any_record(log0, tmp_path):
    """Case B: segments 20.. moved away before reading: LogGap names segment 20 and the segment found next, nothing is read."""
    log = copy_log(log0, tmp_path)
    first, last, _, _ = expected_gap(log)
    archive(log)
    records = FileSource(log).decisions(flow=FLOW)
    with pytest.raises(LogGap) as caught:
        next(records)
    assert str(caught.value) == (
        f"{log}/segment-{first:08d}.log: segments {first} to {last} are missing (found segment {last + 1} next)"
    )


def test_case_b_with_gaps_allowed_reads_the_rest_and_states_what_is_missing(log0, tmp_path):
    """Case B with a gaps list: every remaining decision is read; the gap names the segments and the exact records lost."""
    log = copy_log(log0, tmp_path)
    first, last, seq_a, seq_b = expected_gap(log)
    archive(log)
    gaps: list[Gap] = []
    got = list(FileSource(log).decisions(flow=FLOW, gaps=gaps))
    assert len(got) == decisions_in([p for _, p in list_segments(log)]) < N
    assert [(g.segments, g.first_seq, g.last_seq) for g in gaps] == [((first, last), seq_a, seq_b)]


def test_case_a_segments_archived_during_the_read_raise_a_clear_error(log0, tmp_path, archive_when_opened):
    """Case A: the archive job runs mid-read: LogGap saying the next segment disappeared (no FileNotFoundError)."""
    log = copy_log(log0, tmp_path)
    first, _, _, _ = expected_gap(log)
    archive_when_opened(log)
    read = 0
    with pytest.raises(LogGap) as caught:
        for _ in FileSource(log).decisions(flow=FLOW):
            read += 1
    assert str(caught.value) == f"{log}/segment-{first:08d}.log disappeared while the log was read (rotated or archived?)"
    assert read > 0


def test_case_a_with_gaps_allowed_states_the_vanished_segments_and_records(log0, tmp_path, archive_when_opened):
    """Case A with a gaps list: one gap for the run of vanished segments, with the records lost; the rest is read."""
    log = copy_log(log0, tmp_path)
    first, last, seq_a, seq_b = expected_gap(log)
    kept = [p for i, p in list_segments(log) if not first <= i <= last]
    archive_when_opened(log)
    gaps: list[Gap] = []
    got = list(FileSource(log).decisions(flow=FLOW, gaps=gaps))
    assert len(got) == decisions_in(kept)
    assert [(g.segments, g.first_seq, g.last_seq) for g in gaps] == [((first, last), seq_a, seq_b)]
    assert "disappeared while the log was read" in gaps[0].text


def test_segments_missing_at_the_start_are_a_gap(tmp_path):
    """Retention removed the oldest segments: the log starts at segment 3, and readers say so."""
    write_log(tmp_path, 60, max_segment_bytes=4096)
    for _, path in list_segments(tmp_path)[:2]:
        path.unlink()
    with pytest.raises(LogGap, match="segments 1 to 2 are missing \\(the log starts at segment 3\\)"):
        list(FileSource(tmp_path).decisions())
    gaps: list[Gap] = []
    FileSource(tmp_path).last_decisions(5, gaps=gaps)
    assert gaps[0].first_seq == 0 and gaps[0].segments == (1, 2)


def test_a_record_cut_from_the_middle_of_a_segment_is_a_gap(tmp_path):
    """One record removed inside a segment: the reader names its seq (verify would too)."""
    write_log(tmp_path, 20)
    path = list_segments(tmp_path)[0][1]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:8] + lines[9:]))
    with pytest.raises(LogGap, match="line 9: record seq 8 missing before it"):
        list(FileSource(tmp_path).decisions())


def test_recent_reads_past_gaps_and_count_hint_past_vanished_files(tmp_path, monkeypatch):
    """The idempotency warm-up (recent) and the progress total do not fail on archived segments."""
    write_log(tmp_path, 60, max_segment_bytes=4096)
    segments = list_segments(tmp_path)
    for _, path in segments[:3]:
        path.unlink()
    newest = [d["decision_id"] for d in FileSource(tmp_path).recent(1_700_000_055.0)]
    assert newest == [f"d{i:06d}" for i in range(55, 60)]
    source = FileSource(tmp_path)
    segments[5][1].unlink()  # listed by the source, gone before it counts
    assert source.count_hint() == decisions_in([p for _, p in list_segments(tmp_path)], "card_payment")


def test_iter_lines_of_a_vanished_file_is_an_audit_error(tmp_path):
    """Opening a segment that is gone raises SegmentVanished (an AuditError), not FileNotFoundError."""
    from engine.audit.errors import AuditError, SegmentVanished

    with pytest.raises(SegmentVanished, match="disappeared while the log was read") as caught:
        list(iter_lines(tmp_path / "segment-00000001.log"))
    assert isinstance(caught.value, AuditError)


# --- the commands ---------------------------------------------------------------------------------


def replay_args(log: Path, root: Path, *extra: str) -> list[str]:
    return ["replay", str(log), "--flow", FLOW, "--version", "1", "--root", str(root), "--no-progress", *extra]


def test_replay_case_a_exits_1_with_one_line(log0, root, tmp_path, capsys, archive_when_opened):
    """`verdict replay` while segments are archived: exit 1, one line naming the segment (after the policy root line), no traceback, no report."""
    log = copy_log(log0, tmp_path)
    first, _, _, _ = expected_gap(log)
    archive_when_opened(log)
    assert main(replay_args(log, root)) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    errors = [line for line in captured.err.splitlines(keepends=True) if not line.startswith("verdict: policy root ")]
    assert "".join(errors) == (
        f"verdict: {log}/segment-{first:08d}.log disappeared while the log was read (rotated or archived?); "
        "--allow-gaps replays what is there and lists the gaps\n"
    )


def test_replay_case_b_exits_1_and_with_allow_gaps_reports_the_gap(log0, root, tmp_path, capsys):
    """`verdict replay` of a log with a gap: exit 1; with --allow-gaps the table and JSON state the gap and the coverage."""
    log = copy_log(log0, tmp_path)
    first, last, seq_a, seq_b = expected_gap(log)
    archive(log)
    assert main(replay_args(log, root)) == 1
    err = capsys.readouterr().err
    err = "".join(line for line in err.splitlines(keepends=True) if not line.startswith("verdict: policy root "))
    assert err.count("\n") == 1 and f"segments {first} to {last} are missing (found segment {last + 1} next)" in err
    out_json = tmp_path / "r.json"
    assert main(replay_args(log, root, "--allow-gaps", "--json", str(out_json))) == 0
    captured = capsys.readouterr()
    covered = decisions_in([p for _, p in list_segments(log)])
    assert f"INCOMPLETE LOG: 1 gap; this report covers only the {covered:,} decisions of {FLOW}" in captured.out
    assert f"records seq {seq_a:,} to {seq_b:,}" in captured.out
    doc = json.loads(out_json.read_text())
    assert doc["complete"] is False and doc["considered"] == covered < N
    assert doc["gaps"][0]["missing_segments"] == [first, last]
    assert doc["gaps"][0]["missing_records"] == [seq_a, seq_b]


def test_replay_of_a_whole_log_is_complete(log0, root, capsys):
    """No gap: the report says complete and lists none; every decision is considered."""
    assert main(replay_args(log0, root, "--json", "-")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["complete"] is True and doc["gaps"] == [] and doc["considered"] == N


def test_show_exits_1_on_a_gap_and_with_allow_gaps_prints_the_rest_and_names_it(log0, tmp_path, capsys):
    """`verdict audit show`: a gap is exit 1 before any record; --allow-gaps prints what remains and names the gap."""
    log = copy_log(log0, tmp_path)
    first, last, _, _ = expected_gap(log)
    archive(log)
    assert main(["audit", "show", str(log)]) == 1
    captured = capsys.readouterr()
    assert captured.out == "" and f"segments {first} to {last} are missing" in captured.err
    assert main(["audit", "show", str(log), "--last", "3"]) == 1
    capsys.readouterr()
    assert main(["audit", "show", str(log), "--allow-gaps"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == decisions_in([p for _, p in list_segments(log)])
    assert "warning: part of the log is missing" in captured.err and f"segments {first} to {last}" in captured.err


def test_verify_names_a_segment_that_vanishes_while_it_reads(log0, tmp_path, capsys, archive_when_opened):
    """`verdict audit verify` during an archive job: exit 1 naming the vanished segment, no traceback."""
    log = copy_log(log0, tmp_path)
    first, _, _, _ = expected_gap(log)
    real = source_module.iter_lines
    archive_when_opened(log)
    assert source_module.iter_lines is not real
    assert main(["audit", "verify", str(log)]) == 1
    err = capsys.readouterr().err
    assert f"segment-{first:08d}.log: disappeared while the log was read (rotated or archived?)" in err
