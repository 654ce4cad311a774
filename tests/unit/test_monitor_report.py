"""Tests of `verdict monitor`: the stability report from a real decision log, for any period."""

from __future__ import annotations

import random
import re
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.audit.wiring import open_audit
from engine.cli import main
from engine.datasets import read_credit_applications
from engine.policy.loader import load_policies
from engine.runtime.service import Decider
from engine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


@pytest.fixture(scope="module")
def shifted_log(tmp_path_factory):
    """A decision log of 400 training-like applications, then 400 with incomes x2; the instant between them."""
    log_dir = tmp_path_factory.mktemp("monitor") / "audit"
    sample = random.Random(11).sample(read_credit_applications(ROOT / "data" / "credit_data.csv"), 400)
    audit = open_audit(Settings.load(audit=str(log_dir), idempotency_window_seconds=0, root=ROOT))
    decider = Decider(load_policies(ROOT), sink=audit.sink)
    start = time.time()
    for a in sample:
        decider.decide("credit_application", a, version="1")
    time.sleep(0.01)
    boundary = time.time()
    time.sleep(0.01)
    for a in sample:
        decider.decide("credit_application", dict(a, income=a["income"] * 2) if "income" in a else a, version="1")
    decider.close()
    audit.close()
    return log_dir, start, boundary


def _income_row(report: str) -> list[str]:
    (row,) = [line for line in report.splitlines() if line.startswith("| income |")]
    return [cell.strip() for cell in row.strip("|").split("|")]


def test_the_report_shows_doubled_incomes_only_in_their_period(shifted_log, tmp_path, capsys):
    """--until the boundary: income is stable; --since it: income is graded act; each with n = 400 and the figures."""
    log_dir, start, boundary = shifted_log
    before, after = tmp_path / "before", tmp_path / "after"
    root = ["--root", str(ROOT)]
    assert main(["monitor", "--from-log", str(log_dir), "--out", str(before), "--since", _iso(start - 1), "--until", _iso(boundary), *root]) == 0
    assert main(["monitor", "--from-log", str(log_dir), "--out", str(after), "--since", _iso(boundary), *root]) == 0
    assert "wrote" in capsys.readouterr().out
    quiet, loud = (before / "report.md").read_text(), (after / "report.md").read_text()
    assert "n = 400" in quiet and "n = 400" in loud
    assert _income_row(quiet)[2] == "stable" and float(_income_row(quiet)[1]) < 0.1
    assert _income_row(loud)[2] == "act" and float(_income_row(loud)[1]) >= 0.25
    for png in ("psi_credit_default_1.png", "score_credit_default_1.png", "actions.png", "rules.png"):
        assert (after / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"]({png})" in loud


def test_action_and_rule_rates_match_the_log(shifted_log, tmp_path):
    """The period's approve/review/decline shares in the report equal those counted from the log's records."""
    import json
    import subprocess
    import sys

    log_dir, start, _boundary = shifted_log
    assert main(["monitor", "--from-log", str(log_dir), "--out", str(tmp_path), "--every", "hour", "--root", str(ROOT)]) == 0
    report = (tmp_path / "report.md").read_text()
    shown = subprocess.run([sys.executable, "-m", "engine.cli", "audit", "show", str(log_dir)], capture_output=True, text=True, check=True)
    records = [r for r in map(json.loads, shown.stdout.splitlines()) if r["route"] != "shadow"]
    hour = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H")
    rows = [line for line in report.splitlines() if line.startswith(f"| {hour} | ")]
    assert rows, report
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    n = int(cells[1])
    in_hour = [r for r in records if r["ts"].startswith(hour)]
    assert n == len(in_hour)
    for cell, action in zip(cells[2:5], ("APPROVE", "REVIEW", "DECLINE"), strict=True):
        assert cell == f"{sum(r['action'] == action for r in in_hour) / n:.1%}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday' is not an ISO 8601"),
        (["--watch", "0.3", "--act", "0.2"], "need 0 < watch < act"),
    ],
)
def test_bad_usage_is_refused_naming_the_flag(tmp_path, capsys, args, message):
    """A time that is not ISO 8601, or thresholds out of order: exit 2 and a message naming the flag."""
    assert main(["monitor", "--from-log", str(tmp_path), "--out", str(tmp_path / "r"), *args]) == 2
    assert message in capsys.readouterr().err


def test_an_empty_period_exits_1_saying_so(shifted_log, tmp_path, capsys):
    """No decision in the period: exit 1, no report written."""
    log_dir, _, _ = shifted_log
    assert main(["monitor", "--from-log", str(log_dir), "--out", str(tmp_path / "r"), "--until", "2000-01-01", "--root", str(ROOT)]) == 1
    assert re.search("no served decision in .* for the period", capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


def _root_with_psi(tmp_path: Path, psi: str, versions: tuple[str, ...] = ("1",)) -> Path:
    """A copy of the root where credit_application ``versions`` (release locks dropped) declare ``psi``."""
    from .policy_roots import flows_copy

    root = flows_copy(tmp_path, ("credit_application",))
    for lock in (root / "policies" / "credit_application").glob("*/release.lock"):
        lock.unlink()
    for version in versions:
        flow = root / "policies" / "credit_application" / version / "flow.yaml"
        flow.write_text(flow.read_text() + f"\npsi: {psi}\n")
    return root


def test_the_flows_psi_thresholds_grade_the_report_unless_overridden(shifted_log, tmp_path):
    """A flow declaring psi: {watch: 0.5, act: 2} grades the doubled incomes 'watch' (0.25-2 away from act);
    --watch/--act on the command line grade every model with theirs instead."""
    log_dir, _, boundary = shifted_log
    root = _root_with_psi(tmp_path, "{watch: 0.5, act: 2}", ("1", "2"))  # both versions running credit_default 1
    assert load_policies(root).flows["credit_application"].versions["1"].psi == (0.5, 2.0)
    own, given = tmp_path / "own", tmp_path / "given"
    args = ["monitor", "--from-log", str(log_dir), "--since", _iso(boundary), "--root", str(root)]
    assert main([*args, "--out", str(own)]) == 0
    assert main([*args, "--out", str(given), "--watch", "0.1", "--act", "0.25"]) == 0
    mine, theirs = (own / "report.md").read_text(), (given / "report.md").read_text()
    assert "Thresholds: watch 0.5, act 2." in mine and "Thresholds: watch 0.1, act 0.25." in theirs
    psi = float(_income_row(mine)[1])
    assert 0.5 <= psi < 2 and _income_row(mine)[2] == "watch"
    assert _income_row(theirs)[2] == "act"


def test_the_strictest_flow_sets_a_models_thresholds_and_the_server_exports_them(tmp_path):
    """A model run by flow versions with different psi: gets the lowest watch and act; the drift monitor
    exports them as verdict_psi_threshold{level=watch|act}, the gauge the alerting rules compare with."""
    from engine.metrics import Metrics
    from engine.monitor.live import psi_thresholds

    root = _root_with_psi(tmp_path, "{watch: 0.05, act: 0.2}")  # version 2 runs the same model with the defaults
    policies = load_policies(root)
    assert psi_thresholds(policies)[("credit_default", "1")] == (0.05, 0.2)
    assert psi_thresholds(policies)[("credit_default", "2")] == (0.1, 0.25)
    metrics = Metrics()
    decider = Decider(policies, metrics=metrics)
    decider.close()
    assert metrics.get("verdict_psi_threshold", model="credit_default", version="1", level="watch") == 0.05
    assert metrics.get("verdict_psi_threshold", model="credit_default", version="1", level="act") == 0.2


@pytest.mark.parametrize("psi", ["{watch: 0.3, act: 0.2}", "{watch: 0, act: 0.2}", "{watch: 0.1, act: 0.25, warn: 1}"])
def test_bad_psi_thresholds_are_refused_with_the_flow_file(tmp_path, psi):
    """watch at or above act, a threshold not above 0, or an unknown key: an error naming flow.yaml; the version is held back."""
    from engine.policy.loader import load

    result = load(_root_with_psi(tmp_path, psi))
    errors = [p for p in result.problems if p.severity == "error"]
    assert errors and all(p.path.endswith("credit_application/1/flow.yaml") for p in errors)
    assert "1" not in (result.policies.flows["credit_application"].versions if result.policies else {})
