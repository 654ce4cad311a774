"""credit_application v3 on credit_default/2: live, no marital status, age never held against 62+, rebuilt byte for byte."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from engine.models.runtime import load_model
from engine.policy.lint import lint
from engine.policy.loader import load_policies
from engine.runtime.service import Decider
from engine.training.rebuild import rebuild

from .audit_helpers import credit_applications

ROOT = Path(__file__).resolve().parents[2]
V2_MODEL = ROOT / "model_artifacts" / "credit_default" / "2"


@pytest.fixture(scope="module")
def decider() -> Decider:
    """A decider over the project's policies."""
    return Decider(load_policies(ROOT))


def test_version_3_is_live_on_credit_default_2(decider: Decider) -> None:
    """Routing makes version 3 live; its decisions carry credit_default/2 and versions 1 and 2 stay for pinned callers."""
    flow = decider.policies.flows["credit_application"]
    assert flow.live == "3"
    assert {"1", "2", "3"} <= set(flow.versions)
    d = decider.decide("credit_application", credit_applications(1)[0])
    assert (d.version, d.route) == ("3", "live")
    assert d.models["credit_default"].startswith("2@")
    pinned = decider.decide("credit_application", credit_applications(1)[0], version="1")
    assert pinned.version == "1" and pinned.models["credit_default"].startswith("1@")


def test_credit_default_2_has_no_marital_and_a_fairness_report() -> None:
    """The card lists no marital feature, age is monotone, and the fairness report covers marital and age bands."""
    card = load_model(V2_MODEL).card
    names = [f.name for f in card.features]
    assert "marital" not in names and "age" in names
    assert card.training.params["monotone_constraints"][names.index("age")] == -1
    fair = card.fairness
    assert fair["protected"] == ["Marital"] and fair["age_column"] == "Age" and fair["cutoffs"] == [0.3, 0.5]
    assert {g["group"] for g in fair["attributes"]["Marital"]["groups"]} >= {"married", "single", "widow"}
    assert [g["group"] for g in fair["attributes"]["Age"]["groups"]] == ["under 25", "25-39", "40-61", "62 and over"]
    assert fair["age"]["passed"] and fair["age"]["violations"] == 0
    assert card.metrics["cv_auc"] >= 0.84
    assert "## Fair lending" in (V2_MODEL / "report.md").read_text()


def test_marital_status_never_moves_the_version_3_score(decider: Decider) -> None:
    """On 200 real applications, every marital status gives the same pd and action in version 3."""
    for row in credit_applications(200):
        seen = set()
        for status in ("married", "single", "widow", "separated", "divorced"):
            out = decider.decide("credit_application", {**row, "marital": status}).outcome
            seen.add((out.scores["pd"], out.action))
        assert len(seen) == 1, row


def test_applicants_aged_62_or_over_are_never_scored_worse(decider: Decider) -> None:
    """On 200 real applications, the version 3 pd at every age 62-90 is at most the pd at every age 18-61."""
    for row in credit_applications(200):
        pd = {age: decider.decide("credit_application", {**row, "age": age}).outcome.scores["pd"]
              for age in (18, 25, 35, 45, 55, 61, 62, 63, 70, 80, 90)}
        assert max(v for a, v in pd.items() if a >= 62) <= min(v for a, v in pd.items() if a < 62) + 1e-12, row


def test_version_3_lints_clean_with_marital_protected() -> None:
    """The bundled root has no lint error, and version 3 marks marital protected while its model does not use it."""
    assert not lint(ROOT).errors
    text = (ROOT / "policies/credit_application/3/flow.yaml").read_text()
    assert "protected: true" in text and 'version: "2"' in text


def test_rebuild_reproduces_credit_default_2(tmp_path: Path) -> None:
    """`models rebuild credit_default/2` from the committed data gives the committed model, booster and card."""
    (tmp_path / "data").mkdir()
    shutil.copy(ROOT / "data" / "credit_data.csv", tmp_path / "data" / "credit_data.csv")
    out = tmp_path / "model_artifacts" / "credit_default" / "2"
    out.mkdir(parents=True)
    shutil.copy(V2_MODEL / "card.json", out / "card.json")  # lets the rebuild keep created_at
    rebuild(tmp_path, ["credit_default/2"])
    for name in ("model.onnx", "model.txt", "card.json"):
        assert (out / name).read_bytes() == (V2_MODEL / name).read_bytes(), name
    assert json.loads((out / "card.json").read_text())["fairness"]["age"]["passed"]
