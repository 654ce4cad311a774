"""The behaviour: section of a flow file is checked like the rest: every problem with its line and a hint."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from engine.policy.documents import ROOT_DIRS
from engine.policy.loader import load

ROOT = Path(__file__).resolve().parents[2]


def _root_with(tmp_path: Path, behaviour: dict) -> Path:
    for part in ROOT_DIRS:
        shutil.copytree(ROOT / part, tmp_path / part)
    path = tmp_path / "policies/card_payment/2/flow.yaml"
    flow = yaml.safe_load(path.read_text())
    flow["behaviour"] = behaviour
    path.write_text(yaml.safe_dump(flow, sort_keys=False))
    return tmp_path


def test_bad_features_are_each_reported_with_line_and_did_you_mean(tmp_path):
    """A misspelt key field, a sum over text, a bad where and a bad window are all reported at once."""
    root = _root_with(tmp_path, {"features": {
        "txn_count_1h": {"aggregate": "count", "key": "custmer_id", "window": "1h"},
        "txn_count_24h": {"aggregate": "count", "key": "customer_id", "window": "24h"},
        "amount_avg_30d": {"aggregate": "sum", "key": "customer_id", "field": "currency", "window": "30d"},
        "device_txn_90d": {"aggregate": "count", "key": ["customer_id"], "window": "90d", "where": "amount >"},
        "cards_per_device_24h": {"aggregate": "distinct", "key": "device_id", "field": "card_number", "window": "24h"},
    }})
    problems = [p for p in load(root).problems if p.severity == "error" and p.path.endswith("2/flow.yaml")]
    by_code = {p.code: p for p in problems}
    assert by_code["unknown_field"].hint and "customer_id" in by_code["unknown_field"].hint
    assert "custmer_id" in by_code["unknown_field"].message and by_code["unknown_field"].line
    assert "sum needs a number field" in by_code["type_error"].message
    assert "expression_syntax" in by_code and by_code["expression_syntax"].line


def test_a_window_beyond_90_days_is_a_schema_error_with_its_line(tmp_path):
    """'window: 91d' is refused by the schema with its line (windows run from 1s to 90d)."""
    root = _root_with(tmp_path, {"features": {"txn_count_1h": {"aggregate": "count", "key": "customer_id", "window": "91d"}}})
    problems = [p for p in load(root).problems if p.code == "schema" and p.path.endswith("2/flow.yaml")]
    assert problems and problems[0].line and "1s..90d" in problems[0].message


def test_an_event_schema_changed_under_a_released_version_is_refused(tmp_path):
    """The release lock of account_payout 1 records the event schemas it reads; a changed events/login.yaml fails the load naming it."""
    from engine.cli import main
    from engine.policy.release import lock_path, read_lock

    from .policy_roots import project_copy

    root = project_copy(tmp_path)
    assert main(["release", "account_payout", "1", "--root", str(root)]) == 0
    lock, _ = read_lock(lock_path(root, "account_payout", "1"), "lock")
    assert lock is not None and {"events/login.yaml", "events/password_reset.yaml"} <= set(lock.files)
    login = root / "events/login.yaml"
    login.write_text(login.read_text().replace("max_length: 128", "max_length: 64"))
    errors = load(root).errors
    assert [(p.code, p.path) for p in errors] == [("released_version_changed", "events/login.yaml")]
