"""Small policy roots written into tmp_path for the policy-owner tooling tests (no models: fast)."""

from __future__ import annotations

import shutil
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[2]

FLOW = """\
flow: demo
version: "{version}"
input:
  fields:
    amount: {{type: number, required: true, min: 0, max: 100000}}
    age: {{type: integer, required: true, min: 0, max: 120}}
    income: {{type: number, min: 0}}
    country: {{type: category, values: [GB, FR, DE]}}
    customer_id: {{type: string, max_length: 64}}
rulesets: [{rulesets}]
default: {{action: APPROVE}}
reasons:
  BIG: Amount is big
  YOUNG: Applicant is young
  BLOCKED: Country is blocked
  NO_INCOME: Income missing
"""

RULES = """\
ruleset: demo.main
rules:
  - id: R1
    when: amount > {limit}
    action: REVIEW
    reason: BIG
    priority: 10
  - id: R2
    when: age < 18
    action: DECLINE
    reason: YOUNG
    priority: 90
  - id: R3
    when: country in ['DE']
    action: DECLINE
    reason: BLOCKED
    priority: 80
  - id: R4
    when: is_null(income)
    action: REVIEW
    reason: NO_INCOME
"""

TESTS = """\
cases:
  - name: small amount is approved
    input: {amount: 10, age: 30, income: 100}
    expect: {action: APPROVE, reasons: [], fired: []}
  - name: big amount goes to review
    input: {amount: 5000, age: 30, income: 100}
    expect: {action: REVIEW, reasons: [BIG], fired: [R1]}
  - name: minors are declined
    input: {amount: 10, age: 16, income: 100}
    expect: {action: DECLINE, reasons: {contains: [YOUNG]}}
  - name: blocked country
    input: {amount: 10, age: 30, income: 100, country: DE}
    expect: {action: DECLINE, fired: {contains: [R3]}}
  - name: missing income
    input: {amount: 10, age: 30}
    expect: {action: REVIEW, reasons: [NO_INCOME]}
  - name: negative age is refused
    input: {amount: 10, age: -1}
    expect: {invalid: [age]}
"""


def write(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def demo_root(root: Path, *, versions: tuple[str, ...] = ("1",), limit: int = 1000, tests: bool = True) -> Path:
    """A root with flow `demo` in `versions` (all on ruleset demo.main) and a test file per version."""
    write(root, "rules/main.yaml", RULES.format(limit=limit))
    for version in versions:
        write(root, f"policies/demo/{version}/flow.yaml", FLOW.format(version=version, rulesets="demo.main"))
        if tests:
            write(root, f"policies/demo/{version}/tests/cases.yaml", TESTS)
    write(root, "policies/demo/routing.yaml", f'live: "{versions[0]}"\n')
    return root


def project_copy(root: Path, *, models: bool = True) -> Path:
    """A copy of the project's own policies/, rules/, lists/, events/ (and model_artifacts/) under `root`."""
    for name in ("policies", "rules", "lists", "events") + (("model_artifacts",) if models else ()):
        shutil.copytree(PROJECT / name, root / name, ignore=shutil.ignore_patterns("*.png", "report.md"))
    return root


ROUTED = """\
# A copy's routing with a challenger and a shadow (the bundled routing has only live 3).
live: "3"
challenger: {version: "4", share: 0.1, key: customer_id}
shadow: ["4"]
"""


def routed_copy(root: Path, *, models: bool = True) -> Path:
    """``project_copy`` plus credit_application version 4 (version 3's content, unreleased), routed as the
    challenger of live version 3 for 10% of customers and evaluated as its shadow on every other request."""
    project_copy(root, models=models)
    flow = root / "policies" / "credit_application"
    shutil.copytree(flow / "3", flow / "4")
    (flow / "4" / "release.lock").unlink()
    text = (flow / "4" / "flow.yaml").read_text()
    (flow / "4" / "flow.yaml").write_text(text.replace('\nversion: "3"\n', '\nversion: "4"\n', 1))
    (flow / "routing.yaml").write_text(ROUTED)
    return root


def flows_copy(tmp: Path, flows: tuple[str, ...]) -> Path:
    """A policy root in ``tmp/root`` with the project's ``flows``, the files under policies/ every flow may
    read, and the rule files copied (to edit), and its models, lists and event schemas linked (read-only)."""
    root = tmp / "root"
    (root / "policies").mkdir(parents=True)
    for flow in flows:
        shutil.copytree(PROJECT / "policies" / flow, root / "policies" / flow)
    for shared in (PROJECT / "policies").glob("*.yaml"):  # files every flow may read (custom_lists.yaml)
        shutil.copy2(shared, root / "policies" / shared.name)
    shutil.copytree(PROJECT / "rules", root / "rules")
    for name in ("model_artifacts", "lists", "events"):
        (root / name).symlink_to(PROJECT / name)
    return root
