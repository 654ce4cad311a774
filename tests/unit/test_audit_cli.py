"""`verdict audit verify|show|recover` on a log directory: output, filters, exit codes."""

from __future__ import annotations

import json

from engine.audit.record import Chain
from engine.audit.segments import list_segments
from engine.cli import main

from .audit_helpers import payload_of, write_log


def test_verify_prints_count_and_last_hash(tmp_path, capsys):
    """A good log: exit 0, the number of decision records and the last hash."""
    write_log(tmp_path, 12)
    assert main(["audit", "verify", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    last = json.loads(list_segments(tmp_path)[-1][1].read_bytes().splitlines()[-1])["hash"]
    assert "ok: 12 decision records" in out and f"last hash: {last}" in out


def test_verify_names_the_first_bad_record_and_exits_1(tmp_path, capsys):
    """One edited byte: exit 1 and the record's file, line and decision id on stderr."""
    write_log(tmp_path, 12)
    path = list_segments(tmp_path)[0][1]
    lines = path.read_bytes().splitlines(keepends=True)
    lines[5] = lines[5].replace(b'"eval_us":', b'"eval_us":1', 1)
    path.write_bytes(b"".join(lines))
    assert main(["audit", "verify", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "BAD:" in err and f"{path.name}: line 6" in err and "d000004" in err


def test_verify_without_a_log_exits_2(tmp_path, capsys):
    """A directory with no segments is not a log: exit 2 with the reason."""
    assert main(["audit", "verify", str(tmp_path)]) == 2
    assert "no decision log" in capsys.readouterr().err


def test_show_prints_json_lines_with_filters(tmp_path, capsys):
    """show prints one JSON record per line; --last, --decision and --flow select them."""
    write_log(tmp_path, 10)
    assert main(["audit", "show", str(tmp_path)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["decision_id"] for r in rows] == [f"d{i:06d}" for i in range(10)]
    assert all(r["kind"] == "decision" and "hash" in r for r in rows)

    assert main(["audit", "show", str(tmp_path), "--last", "2"]) == 0
    assert [json.loads(x)["decision_id"] for x in capsys.readouterr().out.splitlines()] == ["d000008", "d000009"]

    assert main(["audit", "show", str(tmp_path), "--decision", "d000003"]) == 0
    assert [json.loads(x)["decision_id"] for x in capsys.readouterr().out.splitlines()] == ["d000003"]

    assert main(["audit", "show", str(tmp_path), "--flow", "credit_application"]) == 0
    assert capsys.readouterr().out == ""

    assert main(["audit", "show", str(tmp_path), "--decision", "nope"]) == 1
    assert "not in" in capsys.readouterr().err


def test_recover_trims_a_torn_tail_then_verify_passes(tmp_path, capsys):
    """recover cuts a half-written record (as a restart would); verify then passes."""
    write_log(tmp_path, 4)
    path = list_segments(tmp_path)[-1][1]
    path.write_bytes(path.read_bytes() + Chain(5, "f" * 64).seal(payload_of(5))[:100])
    assert main(["audit", "verify", str(tmp_path)]) == 1
    assert "truncated mid-record" in capsys.readouterr().err
    assert main(["audit", "recover", str(tmp_path)]) == 0
    assert "trimmed 100 bytes" in capsys.readouterr().out
    assert main(["audit", "verify", str(tmp_path)]) == 0


def test_verify_reads_per_worker_chains(tmp_path, capsys):
    """A directory of worker-<i> sub-logs (verdict serve --workers N) verifies each chain."""
    write_log(tmp_path / "worker-0", 3)
    write_log(tmp_path / "worker-1", 5)
    assert main(["audit", "verify", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ok: 8 decision records" in out and "2 chains" in out and "worker-1: 5 decisions" in out
