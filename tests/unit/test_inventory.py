"""Model inventory: lifecycle rules, lint/activation refuse unapproved or restricted models, `verdict models list`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.cli import main
from engine.models.inventory import ModelEntry
from engine.policy.activation import check
from engine.policy.documents import ROOT_DIRS
from engine.policy.lint import lint

ROOT = Path(__file__).resolve().parents[2]
BASE = {"owner": "Head of Risk", "trainer": "Ana Trainer",
        "validation": {"by": "Val Idator", "at": "2026-01-02", "report": "r.md"}}


def test_an_approval_needs_a_validation_and_an_approver_other_than_the_trainer() -> None:
    """approved without validation, approved by the trainer, or approved before validation are refused."""
    ok = ModelEntry.model_validate({**BASE, "state": "approved", "approval": {"by": "Risk Committee", "at": "2026-01-03"}})
    assert ok.state == "approved"
    with pytest.raises(ValidationError, match="must not be the trainer"):
        ModelEntry.model_validate({**BASE, "state": "approved", "approval": {"by": "ana trainer", "at": "2026-01-03"}})
    with pytest.raises(ValidationError, match="needs its validation"):
        ModelEntry.model_validate({"owner": "Head of Risk", "trainer": "Ana Trainer", "state": "approved",
                                   "approval": {"by": "Risk Committee", "at": "2026-01-03"}})
    with pytest.raises(ValidationError, match="before validation"):
        ModelEntry.model_validate({**BASE, "state": "approved", "approval": {"by": "Risk Committee", "at": "2026-01-01"}})
    with pytest.raises(ValidationError, match="needs its retirement"):
        ModelEntry.model_validate({**BASE, "state": "retired"})


def _root(tmp_path: Path) -> Path:
    for d in ROOT_DIRS:
        shutil.copytree(ROOT / d, tmp_path / d, ignore=shutil.ignore_patterns("*.png"))
    return tmp_path


def _set_state(root: Path, model: str, state: str) -> None:
    """Set ``model``'s state in the root's registry and drop its approval line."""
    path = root / "model_artifacts" / "registry.yaml"
    lines = path.read_text().splitlines()
    start = lines.index(f"  {model}:")
    end = next((k for k in range(start + 1, len(lines)) if lines[k].startswith("  ") and not lines[k].startswith("    ")), len(lines))
    block = [f"    state: {state}" if ln.startswith("    state:") else ln for ln in lines[start:end] if not ln.startswith("    approval:")]
    path.write_text("\n".join(lines[:start] + block + lines[end:]) + "\n")


def test_the_bundled_inventory_lints_clean_and_lists_every_model(capsys) -> None:
    """The project lints clean with its inventory; `models list` shows every model with its state, metric and flows."""
    assert not [p for p in lint(ROOT).errors]
    assert main(["models", "list", "--root", str(ROOT), "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert {"credit_default/1", "credit_default/2", "card_fraud/1", "account_anomaly/1"} <= set(rows)
    assert rows["credit_default/2"]["state"] == "approved" and rows["credit_default/2"]["fairness"] == "yes"
    assert rows["credit_default/2"]["flows"] == ["credit_application 3"]
    assert rows["credit_default/1"]["restriction"] == "pinned" and "marital" in rows["credit_default/1"]["findings"][0]
    assert rows["card_fraud/1"]["metric"].startswith("cv_auc 0.9")


def test_an_unapproved_model_cannot_serve_live_traffic(tmp_path: Path) -> None:
    """With credit_default/2 only validated, lint refuses live version 3 and activation holds the flow back."""
    root = _root(tmp_path)
    _set_state(root, "credit_default/2", "validated")
    errors = [p for p in lint(root).errors if p.code == "model_not_approved"]
    assert len(errors) == 1 and "credit_application 3 is routed" in errors[0].message
    outcome = check(root)
    assert outcome.flows["credit_application"].state != "ok"
    assert outcome.flows["card_payment"].state == "ok"


def test_a_pinned_only_model_cannot_be_routed_again(tmp_path: Path) -> None:
    """Routing version 1 (credit_default/1, approved for pinned requests only) live again is refused."""
    root = _root(tmp_path)
    (root / "policies" / "credit_application" / "routing.yaml").write_text('live: "1"\n')
    errors = [p for p in lint(root).errors if p.code == "model_restricted"]
    assert len(errors) == 1 and errors[0].path == "policies/credit_application/1/flow.yaml"


def test_a_released_version_needs_its_models_in_the_inventory(tmp_path: Path) -> None:
    """A model that released versions run but the inventory omits is model_not_in_inventory."""
    root = _root(tmp_path)
    path = root / "model_artifacts" / "registry.yaml"
    text = path.read_text()
    start = text.index("  credit_default/1:")
    path.write_text(text[:start] + text[text.index("  credit_default/2:"):])
    bad = sorted(p.message.split(" is ")[0] for p in lint(root).errors if p.code == "model_not_in_inventory")
    assert bad == ["credit_application 1", "credit_application 2"]


def test_a_missing_validation_report_is_shown_missing(tmp_path: Path, capsys) -> None:
    """`models list --json` marks a validation report that is not under the root as MISSING."""
    root = _root(tmp_path)
    (root / "model_artifacts" / "card_fraud" / "1" / "report.md").unlink()
    assert main(["models", "list", "--root", str(root), "--json"]) == 0
    rows = {r["model"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["card_fraud/1"]["report"] == "model_artifacts/card_fraud/1/report.md (MISSING)"
    assert rows["credit_default/2"]["report"] == "model_artifacts/credit_default/2/report.md"
