"""Replay / backtest: the same version reproduces every logged decision; another one is reported."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import yaml

from engine.audit.record import unseal
from engine.audit.replay import OutcomesError, load_outcomes, replay
from engine.audit.report import render_table
from engine.audit.segments import FileStore, list_segments
from engine.audit.sink import AuditSink
from engine.audit.source import open_source
from engine.audit.writer import GroupCommitWriter
from engine.cli import main
from engine.policy.documents import ROOT_DIRS
from engine.policy.loader import load_policies
from engine.runtime.idempotency import Fingerprinter
from engine.runtime.privacy import HashKey
from engine.runtime.service import Decider

from .audit_helpers import PAN, credit_applications, credit_statuses, decide_concurrently, live_card_payments

ROOT = Path(__file__).resolve().parents[2]
N_CREDIT = 400
N_CARD = 150
CANDIDATE = "backtest-strict"

STRICT_RULES = """\
ruleset: credit.strict
description: Candidate policy for the backtest test - large loans are declined.
rules:
  - id: STRICT-001
    description: Loans above 1,500 are out of appetite.
    when: amount > 1500
    action: DECLINE
    reason: AMOUNT_TOO_HIGH
    priority: 60
"""


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A copy of the bundled policies plus a stricter candidate version of the live credit flow."""
    root = tmp_path_factory.mktemp("root")
    for part in ROOT_DIRS:
        shutil.copytree(ROOT / part, root / part)
    live = load_policies(root).flows["credit_application"].live
    flow = yaml.safe_load((root / f"policies/credit_application/{live}/flow.yaml").read_text())
    flow["version"] = CANDIDATE
    flow["rulesets"] = [*flow["rulesets"], "credit.strict"]
    (root / f"policies/credit_application/{CANDIDATE}").mkdir()
    (root / f"policies/credit_application/{CANDIDATE}/flow.yaml").write_text(yaml.safe_dump(flow, sort_keys=False))
    (root / "rules/credit/strict_backtest.yaml").write_text(STRICT_RULES)
    for flow_dir in (p for p in (root / "policies").iterdir() if p.is_dir()):  # only the live version answers: deterministic counts
        (flow_dir / "routing.yaml").write_text(f'live: "{load_policies(ROOT).flows[flow_dir.name].live}"\n')
    return root


def live(policies, flow: str):
    """The live version of ``flow``: the one that produced the log."""
    entry = policies.flows[flow]
    return entry.versions[entry.live]


def candidate(policies):
    return policies.flows["credit_application"].versions[CANDIDATE]


@pytest.fixture(scope="module")
def policies(root):
    return load_policies(root)


@pytest.fixture(scope="module")
def log(tmp_path_factory, policies) -> Path:
    """A log of real credit applications (request ids = CSV rows) and card payments with a planted PAN."""
    directory = tmp_path_factory.mktemp("audit")
    key = HashKey(b"test-key")
    writer = GroupCommitWriter(FileStore(directory, fsync=False, max_segment_bytes=64 * 1024))
    decider = Decider(policies, sink=AuditSink(writer, key, Fingerprinter(key)))
    work = [("credit_application", row, f"row-{i}") for i, row in enumerate(credit_applications(N_CREDIT))]
    work += [("card_payment", {**row, "card_number": PAN}, f"card-{i}") for i, row in enumerate(live_card_payments(N_CARD))]
    decide_concurrently(decider, work)
    decider.close()
    writer.close()
    return directory


@pytest.fixture(scope="module")
def outcomes_csv(tmp_path_factory) -> Path:
    """Known outcomes of the logged credit applications (the data's own good/bad status), by request id."""
    path = tmp_path_factory.mktemp("outcomes") / "outcomes.csv"
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["request_id", "outcome"])
        for i, status in enumerate(credit_statuses(N_CREDIT)):
            writer.writerow([f"row-{i}", status])
    return path


def test_replay_with_the_producing_version_reproduces_every_decision(log, policies):
    """Replaying the log through the version that produced it changes nothing at all."""
    for flow, n in (("credit_application", N_CREDIT), ("card_payment", N_CARD)):
        report = replay(open_source(log).decisions(flow=flow), live(policies, flow))
        assert report.considered == n and report.replayed == n
        assert report.rejected == 0 and report.failed == 0
        assert report.changed == 0 and report.differs == 0, report.as_dict()
        assert report.same_version == n and report.same_version_differs == 0
        assert sum(report.before.values()) == n and report.before == report.after


def test_replay_through_a_stricter_version_reports_what_changes(log, policies):
    """The candidate declines large loans: only upgrades to DECLINE, driven by STRICT-001."""
    report = replay(open_source(log).decisions(flow="credit_application"), candidate(policies))
    assert report.replayed == N_CREDIT and report.changed > 0 and report.same_version == 0
    for (before, after), n in report.transitions.items():
        if before != after:
            assert after == "DECLINE", (before, after, n)
    assert report.after["DECLINE"] == report.before["DECLINE"] + report.changed
    assert report.drivers[("STRICT-001", "now fires -> DECLINE")] == report.changed
    assert report.hits_before["STRICT-001"] == 0 and report.hits_after["STRICT-001"] >= report.changed
    doc = report.as_dict()
    assert doc["changed"] == report.changed and doc["transitions"]["APPROVE"]["DECLINE"] == report.transitions[("APPROVE", "DECLINE")]
    assert json.loads(json.dumps(doc)) == doc  # the report is plain JSON


def test_outcomes_give_precision_recall_and_bad_rate_for_both(log, policies, outcomes_csv):
    """With known outcomes both versions get the same labelled set and consistent metrics."""
    outcomes = load_outcomes(outcomes_csv)
    assert len(outcomes) == N_CREDIT
    report = replay(
        open_source(log).decisions(flow="credit_application"),
        candidate(policies),
        outcomes=outcomes,
    )
    before, after = report.metrics_before, report.metrics_after
    assert before.labelled == after.labelled == N_CREDIT and report.unmatched_outcomes == 0
    assert before.bad == after.bad == sum(outcomes.values())
    assert after.declined == report.after["DECLINE"] and before.declined == report.before["DECLINE"]
    assert after.approved <= before.approved and after.declined_bad >= before.declined_bad
    metrics = report.as_dict()["outcomes"]["after"]
    assert metrics["bad_rate_of_approved"] == pytest.approx(after.approved_bad / after.approved)
    assert metrics["decline_recall"] == pytest.approx(after.declined_bad / after.bad)


@pytest.fixture(scope="module")
def protected_csv(tmp_path_factory) -> Path:
    """Marital status and age of the logged credit applications (data/credit_data.csv), by request id, kept apart from the log."""
    path = tmp_path_factory.mktemp("protected") / "protected.csv"
    rows = credit_applications(N_CREDIT)
    path.write_text("request_id,marital_status,applicant_age\n"
                    + "".join(f"row-{i},{r.get('marital', '')},{r['age']:g}\n" for i, r in enumerate(rows)))
    return path


def test_protected_attributes_joined_per_group_before_and_after(log, policies, outcomes_csv, protected_csv):
    """Per group (marital status, age band), the logged and replayed approvals, AIR and bad rate of approved equal a row-by-row count."""
    from engine.audit.replay import load_protected

    segments = {p: p.read_bytes() for _, p in list_segments(log)}
    outcomes = load_outcomes(outcomes_csv)
    report = replay(open_source(log).decisions(flow="credit_application"), candidate(policies), outcomes=outcomes,
                    protected=load_protected(protected_csv, age="applicant_age"))
    assert {p: p.read_bytes() for _, p in list_segments(log)} == segments  # nothing written to the log
    rows = credit_applications(N_CREDIT)
    bands = ["under 25" if r["age"] < 25 else "25-39" if r["age"] < 40 else "40-61" if r["age"] < 62 else "62 and over"
             for r in rows]
    doc = report.as_dict()["fairness"]
    assert doc["unmatched_decisions"] == 0 and doc["attributes"] == ["marital_status", "applicant_age"]
    for side, flow in (("before", live(policies, "credit_application")), ("after", candidate(policies))):
        approved = [flow.evaluate(r).action.name == "APPROVE" for r in rows]
        bad = [outcomes[f"row-{i}"] for i in range(N_CREDIT)]
        for attribute, groups in (("marital_status", [r.get("marital", "(missing)") for r in rows]), ("applicant_age", bands)):
            table = {g["group"]: g for g in doc[side][attribute]["groups"]}
            n = {g: groups.count(g) for g in set(groups)}
            yes = {g: sum(a for x, a in zip(groups, approved, strict=True) if x == g) for g in n}
            top = max(yes[g] / n[g] for g in n if n[g] >= 30)
            assert set(table) == set(n)
            for g in n:
                approved_bad = sum(a and b for x, a, b in zip(groups, approved, bad, strict=True) if x == g)
                assert (table[g]["rows"], table[g]["approved"]) == (n[g], yes[g])
                assert table[g]["air"] == pytest.approx(yes[g] / n[g] / top)
                assert table[g]["flagged"] == (n[g] >= 30 and yes[g] / n[g] / top < 0.8)
                assert table[g]["bad_rate_of_approved"] == (approved_bad / yes[g] if yes[g] else None)


def test_replay_protected_cli_and_bad_file(log, policies, protected_csv, tmp_path, capsys):
    """--protected prints the per-group tables; a file without request_id or with a repeated id exits 2 naming it."""
    root, v = str(Path(policies.root)), CANDIDATE
    args = ["replay", str(log), "--flow", "credit_application", "--version", v, "--root", root, "--no-progress"]
    assert main([*args, "--protected", str(protected_csv), "--age", "applicant_age"]) == 0
    out = capsys.readouterr().out
    assert f"fairness, version {v} (after), applicant_age (reference group:" in out and "marital_status" in out
    no_key = tmp_path / "no_key.csv"
    no_key.write_text("id,marital_status\nrow-0,single\n")
    assert main([*args, "--protected", str(no_key)]) == 2
    assert "no key column 'request_id'" in capsys.readouterr().err
    twice = tmp_path / "twice.csv"
    twice.write_text("request_id,marital_status\nrow-0,single\nrow-0,married\n")
    assert main([*args, "--protected", str(twice)]) == 2
    assert "'row-0' appears twice" in capsys.readouterr().err


def test_rejected_and_shadow_records(policies, log):
    """A logged input the version refuses is counted with its field; shadow records are skipped."""
    records = list(open_source(log).decisions(flow="credit_application"))[:3]
    broken = {**records[0], "input": {**records[0]["input"], "age": -5}}
    shadow = {**records[1], "route": "shadow"}
    report = replay([broken, shadow, records[2]], live(policies, "credit_application"))
    assert report.considered == 2 and report.rejected == 1 and report.replayed == 1
    assert report.rejected_fields["age"] == 1


def test_logged_card_numbers_are_masked_and_replay_output_has_none(log, policies, tmp_path, capsys):
    """The planted PAN is nowhere in the log, and the replay's table and JSON hold none either."""
    data = b"".join(path.read_bytes() for _, path in list_segments(log))
    assert PAN.encode() not in data
    assert data.count(b'"card_number":"411111******1111"') == N_CARD
    out_json = tmp_path / "report.json"
    version = live(policies, "card_payment").version
    code = main(["replay", str(log), "--flow", "card_payment", "--version", version, "--root", str(Path(policies.root)), "--json", str(out_json)])
    captured = capsys.readouterr()
    assert code == 0
    assert "action changed: 0" in captured.out
    assert PAN not in captured.out + captured.err + out_json.read_text()


def test_replay_command_prints_table_and_writes_json(log, root, outcomes_csv, tmp_path, capsys):
    """`verdict replay` prints the analyst's table and writes the same report as JSON."""
    out_json = tmp_path / "r.json"
    code = main(
        ["replay", str(log), "--flow", "credit_application", "--version", CANDIDATE, "--root", str(root),
         "--outcomes", str(outcomes_csv), "--json", str(out_json), "--no-progress"]
    )  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0 and captured.err == f"verdict: policy root {Path(root).resolve()} (--root)\n"  # only the root it read
    doc = json.loads(out_json.read_text())
    assert doc["version"] == CANDIDATE and doc["replayed"] == N_CREDIT and doc["changed"] > 0
    assert "transitions (rows: logged action" in captured.out
    assert "STRICT-001" in captured.out and "bad rate of approved" in captured.out
    assert f"action changed: {doc['changed']}" in captured.out


def test_replay_json_to_stdout_and_usage_errors(log, root, policies, tmp_path, capsys):
    """--json - prints only JSON; an unknown version or outcomes file is a usage error (exit 2)."""
    v = live(policies, "credit_application").version
    assert main(["replay", str(log), "--flow", "credit_application", "--version", v, "--root", str(root), "--json", "-", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["differs"] == 0
    assert main(["replay", str(log), "--flow", "credit_application", "--version", "no-such", "--root", str(root)]) == 2
    assert "version 'no-such'" in capsys.readouterr().err
    missing = tmp_path / "none.csv"
    assert main(["replay", str(log), "--flow", "credit_application", "--version", v, "--root", str(root), "--outcomes", str(missing)]) == 2


def test_render_table_lists_actions_and_rules(log, policies):
    """The table has a row per action and names the driving rule."""
    report = replay(open_source(log).decisions(flow="credit_application"), candidate(policies))
    text = render_table(report)
    for action in ("APPROVE", "REVIEW", "DECLINE"):
        assert action in text
    assert "now fires -> DECLINE" in text


def test_load_outcomes_accepts_common_spellings_and_rejects_others(tmp_path):
    """good/bad, 0/1, true/false are understood; an unknown label or missing column is an error."""
    path = tmp_path / "o.csv"
    path.write_text("decision_id,label\na,bad\nb,good\nc,1\nd,0\n")
    assert load_outcomes(path) == {"a": True, "b": False, "c": True, "d": False}
    path.write_text("decision_id,label\na,maybe\n")
    with pytest.raises(OutcomesError, match="neither good nor bad"):
        load_outcomes(path)
    path.write_text("x,y\na,bad\n")
    with pytest.raises(OutcomesError, match="id column"):
        load_outcomes(path)


def test_every_logged_record_verifies(log):
    """The log written by concurrent deciders is one valid chain with every decision in it."""
    report = open_source(log).verify()
    assert report.ok and report.decisions == N_CREDIT + N_CARD
    first = unseal(list_segments(log)[0][1].read_bytes().splitlines()[1]).data
    assert first["kind"] == "decision" and first["fp"] and first["key_id"] == HashKey(b"test-key").key_id
