"""Cases open from the durable decision log, never from the request: the writer's hook feeds the
opener, a restart's catch-up opens what a crash left unopened, dispositions are relayed as chained
records, and outcome files import idempotently with bad rows named by line."""

from __future__ import annotations

import json
from pathlib import Path

from engine.audit.record import payload
from engine.audit.segments import FileStore
from engine.audit.source import open_source
from engine.audit.writer import GroupCommitWriter
from engine.cases import CaseOpener, CaseQuery, Disposition, ReviewConfig, case_from_record, catch_up, chain_lines, open_store
from engine.cases.relay import relay_once
from engine.cli import main

from .cases_helpers import T0, review_record

CONFIG = ReviewConfig({})


def _write(writer: GroupCommitWriter, n: int, start: int = 0) -> None:
    """n decisions; every third one a REVIEW (one of them a shadow's)."""
    for i in range(start, start + n):
        action = "REVIEW" if i % 3 == 0 else "APPROVE"
        route = "shadow" if i == 3 else "live"
        writer.append(payload(review_record(f"d{i}", ts=T0 + i, action=action, route=route)))


def test_hooked_opener_opens_every_review_but_shadows(tmp_path: Path) -> None:
    """With the opener on the writer's on_durable hook, each REVIEW (not the shadow's) has a case."""
    writer = GroupCommitWriter(FileStore(tmp_path / "log"))
    store = open_store(tmp_path / "cases.db")
    opener = CaseOpener(store, "chain", CONFIG)
    writer.on_durable = opener.offer
    opener.start()
    _write(writer, 12)
    writer.close()
    opener.stop()
    assert sorted(c.case_id for c in store.list_cases()) == ["d0", "d6", "d9"]
    assert store.cursor("chain") is not None


def test_catch_up_after_a_crash_opens_what_was_missed(tmp_path: Path) -> None:
    """Records made durable while no opener ran (a crash) get their cases from the log on restart, once."""
    log = tmp_path / "log"
    writer = GroupCommitWriter(FileStore(log, max_segment_bytes=4096))
    store = open_store(tmp_path / "cases.db")
    opener = CaseOpener(store, str(log), CONFIG)
    writer.on_durable = opener.offer
    opener.start()
    _write(writer, 6)  # d0 opened live
    writer.close()
    opener.stop()
    writer = GroupCommitWriter(FileStore(log, max_segment_bytes=4096))  # "after the crash": no opener hooked
    _write(writer, 30, start=6)
    writer.close()
    missed = {f"d{i}" for i in range(6, 36) if i % 3 == 0}
    assert not missed & {c.case_id for c in store.list_cases(CaseQuery(limit=1000))}
    added = catch_up(store, str(log), chain_lines(log, store.cursor(str(log))), CONFIG)
    assert added == len(missed)
    assert {c.case_id for c in store.list_cases(CaseQuery(limit=1000))} == missed | {"d0"}
    assert catch_up(store, str(log), chain_lines(log, store.cursor(str(log))), CONFIG) == 0


def test_dispositions_are_relayed_as_chained_records(tmp_path: Path, capsys) -> None:
    """A decided case becomes one disposition record; the chain verifies, decision readers skip it, `audit show --dispositions` shows it."""
    log = tmp_path / "log"
    writer = GroupCommitWriter(FileStore(log))
    store = open_store(tmp_path / "cases.db")
    opener = CaseOpener(store, str(log), CONFIG)
    writer.on_durable = opener.offer
    opener.start()
    _write(writer, 3)
    assert opener.wait_idle(10)
    store.decide("d0", Disposition.ESCALATE, "card 4111111111111111 seen before", "ana", now=T0 + 99)
    assert relay_once(store, writer) == 1
    assert relay_once(store, writer) == 0
    writer.close()
    opener.stop()
    source = open_source(log)
    assert source.verify().ok
    assert [d["decision_id"] for d in source.decisions()] == ["d0", "d1", "d2"]
    lines = [raw for raw in chain_lines(log, None) if b'"kind":"disposition"' in raw]
    assert len(lines) == 1 and b"4111111111111111" not in lines[0] and b'"disposition":"escalate"' in lines[0]
    capsys.readouterr()
    assert main(["audit", "show", str(log), "--dispositions"]) == 0
    shown = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(d["kind"], d["decision_id"], d["actor"]) for d in shown] == [("disposition", "d0", "ana")]
    assert main(["audit", "show", str(log), "--last", "5"]) == 0
    assert [json.loads(line)["kind"] for line in capsys.readouterr().out.splitlines()] == ["decision"] * 3


def test_outcomes_import_reports_bad_rows_by_line_and_is_idempotent(tmp_path: Path, capsys) -> None:
    """Bad rows are named with their line and nothing is imported (exit 2); a good file imports once."""
    store = str(tmp_path / "cases.db")
    bad = tmp_path / "bad.csv"
    bad.write_text("decision_id,outcome,date\nd1,chargeback,2026-06-01\nd2,stolen,2026-06-01\n,repaid,June\n")
    assert main(["outcomes", "import", str(bad), "--store", store]) == 2
    err = capsys.readouterr().err
    assert "bad.csv:3: outcome 'stolen'" in err and "bad.csv:4:" in err and "'June'" in err and "needs a decision_id" in err
    assert open_store(store).outcomes() == {}
    good = tmp_path / "good.csv"
    good.write_text("decision_id,outcome,date\nd1,chargeback,2026-06-01\nd2,repaid,2026-07-01\n")
    assert main(["outcomes", "import", str(good), "--store", store]) == 0
    assert "2 outcome(s) imported, 0 already there" in capsys.readouterr().out
    assert main(["outcomes", "import", str(good), "--store", store]) == 0
    assert "0 outcome(s) imported, 2 already there" in capsys.readouterr().out


def test_outcomes_import_uses_the_same_check_as_record_outcomes(tmp_path: Path, capsys) -> None:
    """A week date, a compact date and an over-long decision id are refused in a CSV as in RecordOutcomes (one checker)."""
    store = str(tmp_path / "cases.db")
    bad = tmp_path / "dates.csv"
    bad.write_text(f"decision_id,outcome,date\nd1,chargeback,2026-W11-6\nd2,repaid,20260314\n{'x' * 129},default,2026-06-01\n")
    assert main(["outcomes", "import", str(bad), "--store", store]) == 2
    err = capsys.readouterr().err
    assert "dates.csv:2: date '2026-W11-6' is not an ISO date" in err and "dates.csv:3: date '20260314'" in err
    assert "dates.csv:4: decision_id required, at most 128 characters" in err
    assert open_store(store).outcomes() == {}


def test_outcomes_import_finds_request_ids_in_the_log(tmp_path: Path, capsys) -> None:
    """A row by request_id is labelled on the decision the log holds for it; an unknown one is a bad row."""
    log = tmp_path / "log"
    writer = GroupCommitWriter(FileStore(log))
    _write(writer, 2)
    writer.close()
    csv = tmp_path / "o.csv"
    csv.write_text("request_id;outcome;date\nreq-d1;default;2026-08-01\n")
    store = str(tmp_path / "cases.db")
    assert main(["outcomes", "import", str(csv), "--log", str(log), "--store", store]) == 0
    assert [label.kind.value for label in open_store(store).outcomes()["d1"]] == ["default"]
    csv.write_text("request_id;outcome;date\nreq-zz;default;2026-08-01\n")
    assert main(["outcomes", "import", str(csv), "--log", str(log), "--store", store]) == 2
    assert "o.csv:2: request_id 'req-zz' is not in the decision log" in capsys.readouterr().err


class _BlockedStore:
    """A case store whose writes wait until released: stands for a slow or stuck disk."""

    def __init__(self, inner, gate) -> None:
        self.inner = inner
        self.gate = gate
        self.location = inner.location

    def open_cases(self, cases, *, chain="", seq=None):
        self.gate.wait(30)
        return self.inner.open_cases(cases, chain=chain, seq=seq)

    def __getattr__(self, name):
        return getattr(self.inner, name)


def test_logging_a_review_never_waits_for_the_case_store(tmp_path: Path) -> None:
    """With the case store stuck, every REVIEW record is still acknowledged (Decide's one write is the log's); cases follow once it frees."""
    import threading

    gate = threading.Event()
    store = open_store(tmp_path / "cases.db")
    writer = GroupCommitWriter(FileStore(tmp_path / "log", fsync=False))
    opener = CaseOpener(_BlockedStore(store, gate), "chain", CONFIG)
    writer.on_durable = opener.offer
    opener.start()
    done = threading.Event()

    def log_reviews() -> None:
        for i in range(0, 30, 3):
            writer.append(payload(review_record(f"d{i}", ts=T0 + i)))
        done.set()

    threading.Thread(target=log_reviews, daemon=True).start()
    assert done.wait(10), "appending REVIEW records waited for the case store"
    assert store.list_cases() == []
    gate.set()
    writer.close()
    opener.stop()
    assert len(store.list_cases()) == 10


def test_cases_note_from_the_cli(tmp_path: Path, capsys) -> None:
    """`verdict cases note` adds a masked note step that `cases show` prints; an empty text is exit 2 naming text; an unknown case exit 2."""
    store_path = str(tmp_path / "cases.db")
    store = open_store(store_path)
    store.open_cases([c for c in [case_from_record(review_record("n1"), ReviewConfig({}))] if c is not None])
    store.close()
    assert main(["cases", "note", "n1", "--actor", "ana", "--text", "card 4111111111111111 was lost", "--store", store_path]) == 0
    capsys.readouterr()
    assert main(["cases", "show", "n1", "--store", store_path]) == 0
    out = capsys.readouterr().out
    assert "note  by ana  card 411111******1111 was lost" in out and "4111111111111111" not in out
    assert main(["cases", "note", "n1", "--actor", "ana", "--text", " ", "--store", store_path]) == 2
    assert "text: required" in capsys.readouterr().err
    assert main(["cases", "note", "zz", "--actor", "ana", "--text", "x", "--store", store_path]) == 2
