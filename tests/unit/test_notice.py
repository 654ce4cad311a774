"""Adverse-action notices: 1-4 specific principal reasons per DECLINE, lint's catalogue check, `verdict notice`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine.audit.record import decision_payload
from engine.audit.segments import FileStore
from engine.audit.writer import GroupCommitWriter
from engine.cli import main
from engine.grpc.convert import decision_to_response
from engine.policy.lint import lint
from engine.policy.loader import load_policies
from engine.runtime.notice import principal_reasons, render_markdown
from engine.runtime.service import Decider
from engine.types import Action, FiredRule, NoticeReason, Reason

from .audit_helpers import credit_applications

ROOT = Path(__file__).resolve().parents[2]
NOTICES = {"HIGH_RISK_SCORE": "score", "SHORT_EMPLOYMENT": "Length of employment", "STAB": "stability",
           "REVIEWED": "reviewed", "A": "a", "B": "b", "C": "c", "D": "d", "E": "e"}
# Inputs that reach the DECLINE rules the real data do not (an applicant under 18; a loan above the price).
BASE = {"seniority": 10, "home": "owner", "time": 36, "age": 40, "marital": "married", "records": False,
        "job": "fixed", "expenses": 50, "income": 200, "assets": 5000, "debt": 0, "amount": 800, "price": 1000}
CONSTRUCTED = [{**BASE, "age": 17}, {**BASE, "amount": 1200}, {**BASE, "expenses": 250}]


def _fired(rid: str, action: Action) -> FiredRule:
    return FiredRule(rid, "r", action, "X", 50)


def test_model_reasons_replace_the_generic_score_reason() -> None:
    """A model-driven DECLINE lists the model's feature reasons, not the rule's generic score code."""
    reasons = [Reason("HIGH_RISK_SCORE", "m", "rule", "RISK"), Reason("SHORT_EMPLOYMENT", "m", "model", "RISK", "seniority", 0.4)]
    out = principal_reasons(Action.DECLINE, reasons, [_fired("RISK", Action.DECLINE)], NOTICES)
    assert out == (NoticeReason("SHORT_EMPLOYMENT", "Length of employment", "model", "seniority"),)


def test_review_rule_reasons_are_not_reasons_for_the_decline() -> None:
    """Reasons of rules that only asked for REVIEW are left out; the DECLINE rule's own reason stays."""
    reasons = [Reason("STAB", "m", "rule", "S1"), Reason("REVIEWED", "m", "rule", "R1")]
    fired = [_fired("S1", Action.DECLINE), _fired("R1", Action.REVIEW)]
    assert [n.code for n in principal_reasons(Action.DECLINE, reasons, fired, NOTICES)] == ["STAB"]


def test_at_most_four_reasons_in_rank_order() -> None:
    """Five declining reasons give the first four, in the outcome's order."""
    reasons = [Reason(c, "m", "rule", "S1") for c in "ABCDE"]
    out = principal_reasons(Action.DECLINE, reasons, [_fired("S1", Action.DECLINE)], NOTICES)
    assert [n.code for n in out] == ["A", "B", "C", "D"]


def test_no_notice_for_other_actions_or_without_a_catalogue() -> None:
    """An APPROVE or REVIEW, or a flow without notices:, gives no notice reasons."""
    reasons = [Reason("STAB", "m", "rule", "S1")]
    assert principal_reasons(Action.REVIEW, reasons, [_fired("S1", Action.REVIEW)], NOTICES) == ()
    assert principal_reasons(Action.DECLINE, reasons, [_fired("S1", Action.DECLINE)], {}) == ()


def test_markdown_has_date_version_and_numbered_reasons() -> None:
    """The rendered notice carries the date, decision id, flow version and the reasons numbered from 1."""
    text = render_markdown(decision_id="d1", date="2026-11-29", flow="credit_application", version="3",
                           revision="ab" * 32, reasons=[NoticeReason("A", "First", "model"), NoticeReason("B", "Second", "rule")])
    assert "Date of decision: 2026-11-29" in text and "credit_application version 3 (revision abababababab)" in text
    assert "1. First\n2. Second\n" in text


@pytest.fixture(scope="module")
def decider() -> Decider:
    """A decider over the project's policies."""
    return Decider(load_policies(ROOT))


def test_every_bundled_decline_path_has_one_to_four_specific_reasons(decider: Decider) -> None:
    """Every DECLINE rule of each flow version with a notice catalogue is reached, and each DECLINE it gives has 1-4 specific reasons."""
    with_notices = [(name, v, c) for name, fv in decider.policies.flows.items() for v, c in fv.versions.items() if c.notices]
    assert ("credit_application", "3") in {(n, v) for n, v, _ in with_notices}
    assert decider.policies.flows["credit_application"].live == "3"
    for name, version, compiled in with_notices:
        paths = {r.id for r in compiled.rules if r.action == Action.DECLINE}
        reached: set[str] = set()
        model_driven = 0
        for row in [*credit_applications(4454), *CONSTRUCTED]:
            out = decider.decide(name, row, version=version).outcome
            if out.action != Action.DECLINE:
                continue
            deciding = {f.id for f in out.fired if f.action == Action.DECLINE}
            reached |= deciding
            assert 1 <= len(out.notice) <= 4, (row, out.reasons)
            assert all(n.text == compiled.notices[n.code] for n in out.notice)
            if any(f.uses_model for f in out.fired if f.action == Action.DECLINE):
                model_driven += 1
                assert any(n.source == "model" for n in out.notice), (row, out.reasons)
                generic = {f.reason_code for f in out.fired if f.uses_model and f.action == Action.DECLINE}
                assert not generic & {n.code for n in out.notice}, (row, out.notice)
        assert reached == paths, f"{name} {version}: DECLINE rules never reached: {paths - reached}"
        assert model_driven > 100


def test_the_notice_is_in_the_grpc_response(decider: Decider) -> None:
    """DecideResponse.notice_reasons carries a DECLINE's notice, code, text, source and feature."""
    row = next(r for r in credit_applications(400)
               if decider.decide("credit_application", r).action == Action.DECLINE
               and any(n.source == "model" for n in decider.decide("credit_application", r).outcome.notice))
    d = decider.decide("credit_application", row)
    msg = decision_to_response(d)
    assert [(n.code, n.text, n.source, n.feature) for n in msg.notice_reasons] == [
        (n.code, n.text, n.source, n.feature) for n in d.outcome.notice]
    approve = decider.decide("credit_application", BASE)
    assert approve.action == Action.APPROVE and not decision_to_response(approve).notice_reasons


def test_lint_requires_a_notice_for_every_declining_code(tmp_path: Path) -> None:
    """Removing one DECLINE code's notice text fails lint with missing_notice naming the code and the rule."""
    for d in ("rules", "model_artifacts/credit_default/2"):
        shutil.copytree(ROOT / d, tmp_path / d)
    target = tmp_path / "policies" / "credit_application" / "3"
    target.mkdir(parents=True)
    text = (ROOT / "policies/credit_application/3/flow.yaml").read_text()
    cut = "\n".join(line for line in text.splitlines() if not line.startswith("  LOAN_EXCEEDS_PRICE: The amount of credit"))
    assert cut.count("LOAN_EXCEEDS_PRICE") == text.count("LOAN_EXCEEDS_PRICE") - 1
    (target / "flow.yaml").write_text(cut)
    (tmp_path / "policies" / "credit_application" / "routing.yaml").write_text('live: "3"\n')
    bad = [p for p in lint(tmp_path).errors if p.code == "missing_notice"]
    assert len(bad) == 1 and "LOAN_EXCEEDS_PRICE (rule ELIG-002)" in bad[0].message


def _log(directory: Path, decisions, inputs) -> None:
    writer = GroupCommitWriter(FileStore(directory))
    try:
        for i, (d, raw) in enumerate(zip(decisions, inputs, strict=True)):
            writer.append(decision_payload(d, raw, [], ts=1_795_000_000.0 + i))
    finally:
        writer.close()


def test_verdict_notice_prints_the_decline_from_the_log(decider: Decider, tmp_path: Path, capsys) -> None:
    """`verdict notice ID --log DIR` prints date, version and the same reasons as the response; an APPROVE or unknown id exits 1."""
    rows = credit_applications(300)
    decisions = [decider.decide("credit_application", r) for r in rows]
    _log(tmp_path / "audit", decisions, rows)
    declined = next(d for d in decisions if d.action == Action.DECLINE and len(d.outcome.notice) >= 2)
    code = main(["notice", declined.decision_id, "--log", str(tmp_path / "audit"), "--root", str(ROOT)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Date of decision: 2026-11-18" in out and "credit_application version 3" in out
    for i, n in enumerate(declined.outcome.notice, start=1):
        assert f"{i}. {n.text}\n" in out
    approved = next(d for d in decisions if d.action == Action.APPROVE)
    assert main(["notice", approved.decision_id, "--log", str(tmp_path / "audit"), "--root", str(ROOT)]) == 1
    assert "was APPROVE, not DECLINE" in capsys.readouterr().err
    assert main(["notice", "nope", "--log", str(tmp_path / "audit"), "--root", str(ROOT)]) == 1
    assert "is not in" in capsys.readouterr().err
    assert main(["notice", "x", "--log", str(tmp_path / "none")]) == 2


def test_the_fast_response_encoder_writes_the_notice(decider: Decider) -> None:
    """The servers' ResponseEncoder writes notice_reasons that parse to decision_to_response's message."""
    from engine.grpc.encoder import ResponseEncoder
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

    encoder = ResponseEncoder()
    declines = [d for d in (decider.decide("credit_application", r) for r in credit_applications(200))
                if d.outcome.notice][:20]
    assert len(declines) == 20
    for d in declines:
        raw = encoder.encode(d)
        assert pb.DecideResponse.FromString(raw) == decision_to_response(d)
        assert len(pb.DecideResponse.FromString(raw).notice_reasons) == len(d.outcome.notice) >= 1


def test_verdict_decide_prints_the_notice(tmp_path: Path, capsys) -> None:
    """`verdict decide` on a declined application prints its notice_reasons with the catalogue's texts."""
    import json as _json

    row = {"seniority": 1, "home": "rent", "time": 60, "age": 22, "marital": "single", "records": True, "job": "partime",
           "expenses": 60, "income": 90, "assets": 0, "debt": 0, "amount": 1400, "price": 1500}
    app = tmp_path / "app.json"
    app.write_text(_json.dumps(row))
    assert main(["decide", "credit_application", "--input", str(app), "--root", str(ROOT)]) == 0
    out = _json.loads(capsys.readouterr().out)
    assert out["action"] == "DECLINE" and out["version"] == "3"
    assert [n["code"] for n in out["notice_reasons"]] == ["DELINQUENCY_RECORDS", "SHORT_EMPLOYMENT", "EMPLOYMENT_TYPE"]
    assert out["notice_reasons"][1]["text"] == "Length of employment"
