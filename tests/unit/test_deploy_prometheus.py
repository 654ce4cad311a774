"""The shipped Prometheus alerting rules: `promtool check rules`, their unit tests, and the PSI alert on real drift."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from engine.datasets import read_credit_applications
from engine.metrics import Metrics
from engine.policy.loader import load_policies
from engine.runtime.service import Decider

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yaml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yaml"


@pytest.fixture(scope="module")
def promtool() -> str:
    """promtool's path; a failure under CI=true (scripts/test_services.sh installs it), a skip saying why elsewhere."""
    path = shutil.which("promtool")
    if path is None:
        if os.environ.get("CI") == "true":
            pytest.fail("promtool is missing: scripts/test_services.sh installs Debian's prometheus package in CI")
        pytest.skip("promtool is not installed (apt-get install prometheus, or run scripts/test.sh)")
    return path


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, cwd=cwd, timeout=120)


def test_the_alerting_rules_pass_promtool_check(promtool):
    """promtool check rules accepts alerts.yaml (valid PromQL, durations, labels)."""
    done = _run(promtool, "check", "rules", str(RULES), cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_alerting_rules_pass_their_unit_tests(promtool):
    """promtool test rules: each alert fires on the series meant to raise it and stays quiet otherwise."""
    done = _run(promtool, "test", "rules", str(RULE_TESTS), cwd=RULE_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


def _income_psi(double: bool) -> tuple[float, float, float, float]:
    """(income PSI, sample size, watch and act thresholds) the server's drift gauges show after 600 applications
    (incomes x2 when ``double``)."""
    sample = random.Random(3).sample(read_credit_applications(ROOT / "data" / "credit_data.csv"), 600)
    metrics = Metrics()
    decider = Decider(load_policies(ROOT), metrics=metrics)
    for a in sample:
        decider.decide("credit_application", dict(a, income=a["income"] * 2) if double and "income" in a else a, version="1")
    decider.close()
    decider.drift.refresh()
    labels = {"model": "credit_default", "version": "1"}
    return (metrics.get("verdict_feature_psi", **labels, feature="income"), metrics.get("verdict_psi_sample_size", **labels),
            metrics.get("verdict_psi_threshold", **labels, level="watch"), metrics.get("verdict_psi_threshold", **labels, level="act"))


_PSI_TEST = """rule_files: [{rules}]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'verdict_feature_psi{{job="verdict",model="credit_default",version="1",feature="income"}}'
        values: '{psi}x60'
      - series: 'verdict_psi_sample_size{{job="verdict",model="credit_default",version="1"}}'
        values: '{n}x60'
      - series: 'verdict_psi_threshold{{job="verdict",model="credit_default",version="1",level="watch"}}'
        values: '{watch}x60'
      - series: 'verdict_psi_threshold{{job="verdict",model="credit_default",version="1",level="act"}}'
        values: '{act}x60'
    alert_rule_test:
      - eval_time: 45m
        alertname: VerdictFeaturePSIAct
        exp_alerts: {expected}
"""
_FIRING = """
          - exp_labels: {severity: warning, job: verdict, model: credit_default, version: "1", feature: income}
            exp_annotations:
              summary: "Input income of model credit_default 1 has shifted (PSI at or above act)"
              runbook: "docs/operations.md#verdictfeaturepsi\""""


@pytest.mark.parametrize("double", [True, False], ids=["incomes-x2", "training-like"])
def test_doubled_incomes_raise_the_psi_alert(promtool, tmp_path, double):
    """The income PSI the server computes for incomes x2 fires VerdictFeaturePSIAct in promtool; training-like traffic does not."""
    psi, n, watch, act = _income_psi(double)
    assert n == 600
    assert (watch, act) == (0.1, 0.25)  # credit_application declares no psi:, so the defaults
    assert (psi >= 0.25) is double
    test = tmp_path / "psi_test.yaml"
    test.write_text(_PSI_TEST.format(rules=RULES, psi=repr(psi), n=int(n), watch=watch, act=act,
                                     expected=_FIRING if double else "[]"))
    done = _run(promtool, "test", "rules", str(test), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


DASHBOARD = ROOT / "deploy" / "grafana" / "verdict.json"


def _exported_names() -> set[str]:
    """Every sample name the server exports (engine.metrics.FAMILIES with their suffixes)."""
    from engine.metrics import FAMILIES

    names = set()
    for f in FAMILIES:
        if f.kind == "counter":
            names.add(f.name + "_total")
        elif f.kind == "histogram":
            names |= {f.name + s for s in ("_bucket", "_count", "_sum")}
        else:
            names.add(f.name)
    return names


def _dashboard_exprs() -> list[str]:
    import json

    doc = json.loads(DASHBOARD.read_text())
    assert len({p["id"] for p in doc["panels"]}) == len(doc["panels"])
    return [t["expr"] for p in doc["panels"] for t in p["targets"]]


def test_the_dashboard_and_alerts_use_only_exported_metrics():
    """Every verdict_* name in the Grafana dashboard and the alerting rules is a series the server exports."""
    import re

    text = RULES.read_text() + "\n".join(_dashboard_exprs())
    used = set(re.findall(r"\bverdict_[a-z_]+", text))
    assert used and used <= _exported_names(), used - _exported_names()


def test_the_dashboard_queries_are_valid_promql(promtool, tmp_path):
    """Each dashboard query (with $job expanded) passes promtool's PromQL parser as a recording rule."""
    import yaml

    rules = [{"record": f"verdict:dashboard_{i}", "expr": e.replace("$job", ".*")} for i, e in enumerate(_dashboard_exprs())]
    path = tmp_path / "dashboard_rules.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    done = _run(promtool, "check", "rules", str(path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_metric_and_alert_is_explained_in_operations_md():
    """docs/operations.md names every exported family, and each alert's runbook anchor is a heading there."""
    import re

    import yaml

    from engine.metrics import FAMILIES

    doc = (ROOT / "docs" / "operations.md").read_text()
    missing = [f.name for f in FAMILIES if f.name not in doc]
    assert not missing, missing
    anchors = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in re.findall(r"^#+ (.+)$", doc, re.M)}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            anchor = rule["annotations"]["runbook"].split("#")[1]
            assert anchor in anchors, (rule["alert"], anchor)
