"""Protected attributes: lint refuses a flow whose model uses a field the flow marks `protected: true`."""

from __future__ import annotations

import shutil
from pathlib import Path

from engine.policy.lint import lint
from engine.policy.protected import protected_inputs, protected_uses
from engine.policy.schema import FlowFile

ROOT = Path(__file__).resolve().parents[2]


def _flow(fields: dict, derived: dict | None = None, models: tuple = ()) -> FlowFile:
    return FlowFile.model_validate({
        "flow": "f", "version": "1", "input": {"fields": fields}, "derived": derived or {}, "models": list(models),
        "rulesets": ["a.b"], "default": {"action": "APPROVE"}, "reasons": {},
    })


def test_derived_fields_carry_the_protected_fields_they_read() -> None:
    """A derived field reading a protected field (even through another derived field) is protected too."""
    flow = _flow(
        {"marital": {"type": "category", "values": ["single", "married"], "protected": True},
         "income": {"type": "number"}},
        {"is_single": "marital == 'single'", "single_income": "income * 1", "proxy": "is_single or income > 5"},
    )
    assert protected_inputs(flow) == {
        "marital": frozenset({"marital"}), "is_single": frozenset({"marital"}), "proxy": frozenset({"marital"}),
    }


def test_protected_uses_names_the_feature_and_the_field_behind_it() -> None:
    """A model feature that is a protected field, or derived from one, is one protected_feature error each."""
    flow = _flow(
        {"marital": {"type": "category", "values": ["single", "married"], "protected": True},
         "income": {"type": "number"}},
        {"is_single": "marital == 'single'"},
        models=({"name": "m", "version": "1", "output": "pd"},),
    )
    problems = protected_uses(flow, "flow.yaml", lambda loc: 7, lambda n, v: ("income", "marital", "is_single"))
    assert [(p.code, p.field, p.line) for p in problems] == [
        ("protected_feature", "marital", 7), ("protected_feature", "is_single", 7),
    ]
    assert "derived from marital" in problems[1].message
    assert protected_uses(flow, "flow.yaml", lambda loc: 7, lambda n, v: ("income",)) == []


def test_lint_refuses_a_credit_flow_whose_model_uses_a_protected_field(tmp_path: Path) -> None:
    """credit_default/1 takes marital as a feature: a flow marking marital protected fails lint on its models line."""
    for d in ("rules", "model_artifacts/credit_default/1"):
        shutil.copytree(ROOT / d, tmp_path / d)
    target = tmp_path / "policies" / "credit_application" / "9"
    target.mkdir(parents=True)
    text = (ROOT / "policies/credit_application/2/flow.yaml").read_text().replace('version: "2"', 'version: "9"')
    marked = text.replace("description: marital status}", "description: marital status, protected: true}")
    assert marked != text
    (target / "flow.yaml").write_text(marked)
    (tmp_path / "policies" / "credit_application" / "routing.yaml").write_text('live: "9"\n')
    report = lint(tmp_path)
    bad = [p for p in report.errors if p.code == "protected_feature"]
    assert len(bad) == 1 and bad[0].field == "marital" and "credit_default/1" in bad[0].message
    assert bad[0].line == marked.splitlines().index("models:") + 2
