"""The review queue end to end with a real `verdict serve` on port 0: a REVIEW decision over gRPC
opens a case, `verdict cases decide` decides it, the disposition reaches a WatchCases stream and the
decision log (chain still valid), and imported outcomes reach replay."""

from __future__ import annotations

import json
import time
from pathlib import Path

import grpc
import pytest

from engine.audit.segments import iter_lines, list_segments
from engine.cli import main
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.gen.verdict.v1 import decision_pb2_grpc as pb_grpc

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
    """REVIEW over gRPC → case; CLI decide → WatchCases event and a chained disposition record; outcomes import → replay uses them."""
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
