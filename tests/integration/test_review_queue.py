"""The review queue end to end with a real `verdict serve` on port 0: a REVIEW decision over gRPC
opens a case, `verdict cases decide` decides it, the disposition reaches a WatchCases stream and the
decision log (chain still valid), and imported outcomes reach replay."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from engine.audit.segments import iter_lines, list_segments
from engine.cli import main
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc
from tests.pg import fresh_schema, server_dsn_or_skip
from tests.unit.policy_roots import project_copy

from .helpers import ServeProcess, credit_applications, request, wait_serving

pytestmark = pytest.mark.integration


def _review_decision(stub) -> pb.DecideResponse:
    for i, application in enumerate(credit_applications(400)):
        response = stub.Decide(request("credit_application", application, request_id=f"rq-{i}"), timeout=10)
        if response.action == pb.REVIEW:
            return response
    raise AssertionError("no REVIEW among 400 real applications")


def _wait_case(cases, case_id: str) -> pb.Case:
    deadline = time.monotonic() + 20
    while True:
        try:
            return cases.GetCase(pb.GetCaseRequest(case_id=case_id), timeout=5)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _log_records(directory: Path, kind: str) -> list[dict]:
    out = []
    for _, path in list_segments(directory):
        for raw, complete in iter_lines(path):
            data = json.loads(raw) if complete else {}
            if data.get("kind") == kind:
                out.append(data)
    return out


def test_review_case_decided_reaches_stream_log_and_replay(tmp_path: Path, capsys) -> None:
    """REVIEW over gRPC → case; CLI decide → WatchCases event and a chained disposition record; outcomes import → replay and backtest use them."""
    server = ServeProcess(tmp_path)
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            stub = pb_grpc.DecisionServiceStub(channel)
            cases = pb_grpc.CaseServiceStub(channel)
            review = _review_decision(stub)
            case = _wait_case(cases, review.decision_id)
            assert case.state == "open" and case.flow == "credit_application"
            assert json.loads(case.record_json)["action"] == "REVIEW"
            store = str(tmp_path / "audit" / "cases.db")
            assert main(["cases", "decide", case.case_id, "--disposition", "decline", "--note", "thin file",
                         "--actor", "ana", "--outcome", "confirmed_fraud", "--store", store]) == 0
            assert main(["cases", "decide", case.case_id, "--disposition", "approve", "--actor", "ana", "--store", store]) == 2
            assert "cannot decide" in capsys.readouterr().err
            stream = cases.WatchCases(pb.WatchCasesRequest(since=0), timeout=20)
            first = next(stream)
            stream.cancel()
            assert (first.case_id, first.disposition, first.actor, first.note) == (case.case_id, "decline", "ana", "thin file")
            page = cases.ListCaseDecisions(pb.ListCaseDecisionsRequest(since=first.seq), timeout=5)
            assert list(page.decisions) == [] and page.next_since == first.seq
            with pytest.raises(grpc.RpcError) as bad:
                cases.ListCaseDecisions(pb.ListCaseDecisionsRequest(since=-1, page_size=5000), timeout=5)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "since" in bad.value.details() and "page_size" in bad.value.details()
            deadline = time.monotonic() + 20
            while not _log_records(tmp_path / "audit", "disposition") and time.monotonic() < deadline:
                time.sleep(0.1)
            assert stub.Decide(request("credit_application", credit_applications(1)[0]), timeout=10).decision_id
    finally:
        assert server.terminate_and_wait() == 0
    logged = _log_records(tmp_path / "audit", "disposition")
    assert [(d["decision_id"], d["disposition"], d["case_seq"]) for d in logged] == [(case.case_id, "decline", first.seq)]
    assert main(["audit", "verify", str(tmp_path / "audit")]) == 0
    capsys.readouterr()
    assert main(["replay", str(tmp_path / "audit"), "--flow", "credit_application", "--version", "2",
                 "--outcomes-store", store, "--json", "-", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcomes"]["before"]["labelled"] == 1 and report["outcomes"]["before"]["bad"] == 1
    history = tmp_path / "history.csv"  # the applications sent, with the request ids they were sent with
    applications = credit_applications(40)
    columns = sorted({k for a in applications for k in a})
    history.write_text("request_id," + ",".join(columns) + "\n" + "".join(
        f"rq-{i}," + ",".join(str(a.get(c, "")) for c in columns) + "\n" for i, a in enumerate(applications)))
    labels = tmp_path / "outcomes.csv"
    labels.write_text("request_id,outcome,date\n" + "".join(f"rq-{i},{'default' if i % 3 == 0 else 'repaid'},2026-09-30\n" for i in range(5)))
    assert main(["outcomes", "import", str(labels), "--log", str(tmp_path / "audit"), "--store", store]) == 0
    capsys.readouterr()
    assert main(["backtest", "credit_application", "--versions", "2,3", "--input", str(history), "--id-column", "request_id",
                 "--outcomes-store", store, "--json", "-"]) == 0
    labelled = {f"rq-{i}" for i in range(5)} | ({review.request_id} & {f"rq-{i}" for i in range(40)})  # + the case's confirmed_fraud
    assert json.loads(capsys.readouterr().out)["labelled"] == len(labelled)


def test_outcomes_recorded_over_grpc_reach_replay(tmp_path: Path, capsys) -> None:
    """Decide over gRPC, RecordOutcomes for that decision id (twice: the retry adds nothing), then replay --outcomes-store counts the label."""
    server = ServeProcess(tmp_path)
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            decided = pb_grpc.DecisionServiceStub(channel).Decide(request("credit_application", credit_applications(1)[0]), timeout=10)
            cases = pb_grpc.CaseServiceStub(channel)
            call = pb.RecordOutcomesRequest(outcomes=[pb.OutcomeEntry(decision_id=decided.decision_id, outcome="default", date="2026-09-30")])
            first = cases.RecordOutcomes(call, timeout=5)
            again = cases.RecordOutcomes(call, timeout=5)
            with pytest.raises(grpc.RpcError) as bad:
                cases.RecordOutcomes(pb.RecordOutcomesRequest(outcomes=[call.outcomes[0], pb.OutcomeEntry(decision_id="x", outcome="repaid", date="30/09/2026")]), timeout=5)
    finally:
        assert server.terminate_and_wait() == 0
    assert (first.added, first.already, again.added, again.already) == (1, 0, 0, 1)
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "outcomes[1].date" in bad.value.details()
    store = str(tmp_path / "audit" / "cases.db")
    assert main(["replay", str(tmp_path / "audit"), "--flow", "credit_application", "--version", "2",
                 "--outcomes-store", store, "--json", "-", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["outcomes"]["before"]["labelled"] == 1 and report["outcomes"]["before"]["bad"] == 1


def _reviews(stub, n: int, prefix: str) -> list[str]:
    """Decide real applications until ``n`` REVIEWs were returned; their decision ids."""
    found = []
    for i, application in enumerate(credit_applications()):
        response = stub.Decide(request("credit_application", application, request_id=f"{prefix}-{i}"), timeout=10)
        if response.action == pb.REVIEW:
            found.append(response.decision_id)
            if len(found) == n:
                return found
    raise AssertionError(f"only {len(found)} REVIEWs in the data")


def test_no_review_is_missed_across_kill_9(tmp_path: Path) -> None:
    """REVIEWs answered just before SIGKILL all have cases once the server is started again (catch-up from the log)."""
    server = ServeProcess(tmp_path)
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            ids = _reviews(pb_grpc.DecisionServiceStub(channel), 15, "k")
    finally:
        server.kill()  # SIGKILL right after the last answer: the opener may not have written its cases
    again = ServeProcess(tmp_path)
    try:
        wait_serving(again.target)
        with grpc.insecure_channel(again.target) as channel:
            cases = pb_grpc.CaseServiceStub(channel)
            assert sorted(_wait_case(cases, i).case_id for i in ids) == sorted(ids)
    finally:
        assert again.terminate_and_wait() == 0


def test_workers_share_one_store_and_log_each_disposition_once(tmp_path: Path) -> None:
    """With --workers 2 every REVIEW gets exactly one case in the shared store and one disposition record across the chains."""
    server = ServeProcess(tmp_path, "--workers", "2")
    store = str(tmp_path / "audit" / "cases.db")
    try:
        wait_serving(server.target)
        ids: list[str] = []
        for n in range(4):  # new connections land on either worker
            with grpc.insecure_channel(server.target, options=[("grpc.use_local_subchannel_pool", 1)]) as channel:
                ids += _reviews(pb_grpc.DecisionServiceStub(channel), 3, f"w{n}")
        with grpc.insecure_channel(server.target) as channel:
            cases = pb_grpc.CaseServiceStub(channel)
            for case_id in ids:
                _wait_case(cases, case_id)
            for case_id in ids[:4]:
                cases.DecideCase(pb.DecideCaseRequest(case_id=case_id, disposition="approve", note="ok"), timeout=5)
            with pytest.raises(grpc.RpcError) as again:
                cases.DecideCase(pb.DecideCaseRequest(case_id=ids[0], disposition="decline"), timeout=5)
            assert again.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            with pytest.raises(grpc.RpcError) as unknown:
                cases.GetCase(pb.GetCaseRequest(case_id="no-such-case"), timeout=5)
            assert unknown.value.code() == grpc.StatusCode.NOT_FOUND
            with pytest.raises(grpc.RpcError) as bad:
                cases.DecideCase(pb.DecideCaseRequest(case_id="", disposition="maybe", outcome="stolen"), timeout=5)
            assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert all(f in bad.value.details() for f in ("case_id", "disposition", "outcome"))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and len(_all_dispositions(tmp_path / "audit")) < 4:
                time.sleep(0.1)
    finally:
        assert server.terminate_and_wait() == 0
    from engine.cases import open_store

    opened = open_store(store)
    assert len({c.case_id for c in opened.list_cases()}) == len(set(ids)) == 12
    logged = _all_dispositions(tmp_path / "audit")
    assert sorted(d["decision_id"] for d in logged) == sorted(ids[:4])
    assert {d["actor"] for d in logged} == {"grpc"}
    assert main(["audit", "verify", str(tmp_path / "audit")]) == 0


def test_review_yaml_is_reread_on_hot_reload_and_a_bad_one_keeps_the_last_good(tmp_path: Path) -> None:
    """A saved review.yaml routes the next REVIEW to its queue without a restart; a bad one is refused in status (file, line) and the queue keeps the last good config."""
    root = project_copy(tmp_path / "root")
    review_file = root / "policies" / "credit_application" / "review.yaml"
    server = ServeProcess(tmp_path, "--root", str(root), "--reload-interval", "0.2")
    try:
        wait_serving(server.target)
        server.wait_for(lambda e: e["event"] == "reload_ok" and e["trigger"] == "start")
        with grpc.insecure_channel(server.target) as channel:
            stub, cases = pb_grpc.DecisionServiceStub(channel), pb_grpc.CaseServiceStub(channel)
            assert _wait_case(cases, _reviews(stub, 1, "a")[0]).queue == "credit_application"
            review_file.write_text("queue: desk-a\n")
            server.wait_for(lambda e: e["event"] == "reload_ok" and e["trigger"] == "watch")
            assert _wait_case(cases, _reviews(stub, 1, "b")[0]).queue == "desk-a"
            review_file.write_text("queue: desk-b\nsla_minutes:\n  normal: 0\n")
            server.wait_for(lambda e: e["event"] == "reload_refused")
            last = pb_grpc.PolicyServiceStub(channel).GetStatus(pb.StatusRequest(), timeout=10).last_reload
            assert not last.ok and (last.problems[0].path, last.problems[0].line) == ("policies/credit_application/review.yaml", 3)
            assert _wait_case(cases, _reviews(stub, 1, "c")[0]).queue == "desk-a"
    finally:
        assert server.terminate_and_wait() == 0


def _all_dispositions(directory: Path) -> list[dict]:
    return [d for chain in sorted(directory.glob("worker-*")) for d in _log_records(chain, "disposition")]


@pytest.fixture
def pg_dsn() -> Iterator[str]:
    """A fresh schema of VERDICT_TEST_PG_DSN's server (dropped afterwards); skips without one."""
    with fresh_schema(server_dsn_or_skip()) as dsn:
        yield dsn


def test_postgresql_log_and_store_survive_kill_9_and_log_dispositions(tmp_path: Path, pg_dsn: str, capsys) -> None:
    """With --audit-dsn (cases in the same database): REVIEWs before SIGKILL get cases from the next process's catch-up of every chain; a disposition is a chained record."""
    server = ServeProcess(tmp_path, "--audit-dsn", pg_dsn)
    try:
        wait_serving(server.target)
        with grpc.insecure_channel(server.target) as channel:
            ids = _reviews(pb_grpc.DecisionServiceStub(channel), 10, "p")
    finally:
        server.kill()
    again = ServeProcess(tmp_path, "--audit-dsn", pg_dsn)
    try:
        wait_serving(again.target)
        with grpc.insecure_channel(again.target) as channel:
            cases = pb_grpc.CaseServiceStub(channel)
            assert sorted(_wait_case(cases, i).case_id for i in ids) == sorted(ids)
            cases.DecideCase(pb.DecideCaseRequest(case_id=ids[0], disposition="escalate", note="second line"), timeout=5)
            first = next(cases.WatchCases(pb.WatchCasesRequest(since=0), timeout=10))
            assert (first.case_id, first.disposition) == (ids[0], "escalate")
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and not _pg_dispositions(pg_dsn):
                time.sleep(0.1)
    finally:
        assert again.terminate_and_wait() == 0
    logged = _pg_dispositions(pg_dsn)
    assert [(d["decision_id"], d["disposition"]) for d in logged] == [(ids[0], "escalate")]
    assert main(["audit", "verify", pg_dsn]) == 0
    capsys.readouterr()
    assert main(["audit", "show", pg_dsn, "--dispositions"]) == 0
    assert [json.loads(line)["decision_id"] for line in capsys.readouterr().out.splitlines()] == [ids[0]]


def _pg_dispositions(dsn: str) -> list[dict]:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return [json.loads(line) for (line,) in conn.execute("SELECT line FROM verdict_audit_record WHERE kind = 'disposition'")]
