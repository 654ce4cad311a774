"""engine.policy.approvals and the loader's maker-checker rule: proposals, approvals bound to revisions, the hash chain."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.console.releases import Releases, apply_routing, current_revision
from engine.policy.approvals import LOG_PATH, ApprovalError, ApprovalLog, approvals_required
from engine.policy.loader import load
from tests.unit.policy_roots import routed_copy

FLOW = "credit_application"


def _root(tmp_path: Path, *, required: bool = True) -> Path:
    root = routed_copy(tmp_path / "root")
    if required:
        (root / "approvals.yaml").write_text("approvals: required\n")
    return root


def _approve(root: Path, version: str, target: str = "live", **kw: object) -> str:
    releases = Releases(root)
    p = releases.propose(FLOW, version, target, "olga", **kw)  # type: ignore[arg-type]
    releases.log.decide(p.id, "abe", "approved", current_revision(root, FLOW, version))
    return p.id


def _codes(root: Path) -> list[tuple[str, str]]:
    """(code, message) of every error that holds back credit_application (the other flows are not approved here)."""
    return [(p.code, p.message) for p in load(root).problems if p.severity == "error" and p.flow == FLOW]


def test_without_the_switch_nothing_is_enforced(tmp_path: Path) -> None:
    """A root without approvals.yaml loads its unapproved routing as before (existing roots keep working)."""
    root = _root(tmp_path, required=False)
    assert approvals_required(root) == (False, [])
    assert _codes(root) == []


def test_required_refuses_unapproved_live_and_challenger_naming_each(tmp_path: Path) -> None:
    """With approvals required, the live version 3 and the challenger 4 (share 0.1) are each refused by name."""
    root = _root(tmp_path)
    problems = [m for c, m in _codes(root) if c == "routing_not_approved"]
    assert len(problems) == 2
    assert any("live traffic to credit_application version 3" in m for m in problems)
    assert any("challenger traffic (share 0.1) to credit_application version 4" in m for m in problems)
    assert load(root).policies is None
    others = {p.flow for p in load(root).problems if p.code == "routing_not_approved"} - {FLOW}
    every_other = {d.name for d in (root / "policies").iterdir() if d.is_dir()} - {FLOW}
    assert others == every_other and "card_payment" in others  # their live versions are not approved either


def test_approved_versions_load(tmp_path: Path) -> None:
    """Once 3 is approved for live and 4 for a 0.1 challenger share, the same routing loads with no error."""
    root = _root(tmp_path)
    _approve(root, "3")
    _approve(root, "4", "challenger", share=0.1, key="customer_id")
    assert _codes(root) == []


def test_a_challenger_approval_does_not_cover_a_larger_share_or_live(tmp_path: Path) -> None:
    """An approval for a 5% challenger share does not allow 10%, nor live traffic."""
    root = _root(tmp_path)
    _approve(root, "3")
    _approve(root, "4", "challenger", share=0.05, key="customer_id")
    assert [m for c, m in _codes(root) if c == "routing_not_approved"] and "share 0.1" in _codes(root)[0][1]
    (root / "policies" / FLOW / "routing.yaml").write_text('live: "4"\n')
    assert any("live traffic to credit_application version 4" in m for _, m in _codes(root))


def test_an_edit_after_approval_voids_it(tmp_path: Path) -> None:
    """Editing a rule file version 4 uses gives it a new revision: its approval no longer counts, and the problem says so."""
    root = _root(tmp_path)
    _approve(root, "3")
    _approve(root, "4", "challenger", share=0.1, key="customer_id")
    flow_file = root / "policies" / FLOW / "4" / "flow.yaml"
    flow_file.write_text(flow_file.read_text().replace("description: >", "description: >\n  edited after approval.", 1))
    messages = [m for c, m in _codes(root) if c == "routing_not_approved"]
    assert len(messages) == 1 and "version 4" in messages[0] and "its approval" in messages[0]


def test_the_proposer_cannot_approve_their_own(tmp_path: Path) -> None:
    """Maker-checker: deciding one's own proposal is refused and leaves it proposed."""
    root = _root(tmp_path)
    releases = Releases(root)
    p = releases.propose(FLOW, "4", "live", "olga")
    with pytest.raises(ApprovalError, match="cannot decide it"):
        releases.log.decide(p.id, "olga", "approved", current_revision(root, FLOW, "4"))
    assert releases.log.proposals()[p.id].state == "proposed"


def test_approving_a_version_edited_since_the_proposal_is_refused(tmp_path: Path) -> None:
    """The approver approves what was proposed: a changed revision makes the proposal void at approval time."""
    root = _root(tmp_path)
    releases = Releases(root)
    p = releases.propose(FLOW, "4", "live", "olga")
    flow_file = root / "policies" / FLOW / "4" / "flow.yaml"
    flow_file.write_text(flow_file.read_text() + "\n# edited\n")
    with pytest.raises(ApprovalError, match="changed since it was proposed"):
        releases.decide(p.id, "abe", "approved")


def test_bad_proposals_name_every_bad_field(tmp_path: Path) -> None:
    """A challenger proposal with no share in (0, 1) and no key names both problems in one error."""
    root = _root(tmp_path)
    with pytest.raises(ApprovalError) as info:
        ApprovalLog(root).propose(FLOW, "4", "abc", "challenger", "olga", share=1.5, key="")
    assert "share" in str(info.value) and "routing key" in str(info.value)
    with pytest.raises(ApprovalError, match="does not exist"):
        Releases(root).propose(FLOW, "9", "live", "olga")


def test_decide_applies_routing_and_records_every_step(tmp_path: Path) -> None:
    """An approval rewrites routing.yaml (4 live, the challenger of 4 dropped) and the log holds proposed, approved, applied, reload."""
    root = _root(tmp_path)
    _approve(root, "3")
    releases = Releases(root, reload=lambda: ["fake: OK"])
    p = releases.propose(FLOW, "4", "live", "olga", note="promote")
    decided, outcome = releases.decide(p.id, "abe", "approved")
    assert decided.state == "approved" and outcome == ["fake: OK"]
    routing = (root / "policies" / FLOW / "routing.yaml").read_text()
    assert 'live: "4"' in routing or "live: '4'" in routing
    assert "challenger" not in routing.split("\n", 2)[2]
    events = [e["event"] for e in releases.log.events() if e["proposal"] == p.id]
    assert events == ["proposed", "approved", "applied", "reload"]
    assert _codes(root) == []
    result = load(root)
    assert result.flows[FLOW].live == "4"


def test_a_rejected_proposal_changes_nothing(tmp_path: Path) -> None:
    """Rejecting leaves routing.yaml as it was."""
    root = _root(tmp_path)
    before = (root / "policies" / FLOW / "routing.yaml").read_text()
    releases = Releases(root)
    p = releases.propose(FLOW, "4", "live", "olga")
    assert releases.decide(p.id, "abe", "rejected")[0].state == "rejected"
    assert (root / "policies" / FLOW / "routing.yaml").read_text() == before


def test_an_edited_log_breaks_the_chain_and_holds_every_flow_back(tmp_path: Path) -> None:
    """Changing one byte of approvals/audit.log is detected (chain broken) and the loader refuses, naming the log."""
    root = _root(tmp_path)
    _approve(root, "3")
    path = root / LOG_PATH
    text = path.read_text()
    path.write_text(text.replace('"by":"abe"', '"by":"eve"', 1))
    with pytest.raises(ApprovalError, match="hash chain is broken"):
        ApprovalLog(root).events()
    assert any(c == "approvals_log_invalid" for c, _ in _codes(root))


def test_a_bad_switch_fails_closed_with_a_clear_problem(tmp_path: Path) -> None:
    """approvals.yaml with an unknown value is an error naming the expected values (approvals stay required)."""
    root = _root(tmp_path)
    (root / "approvals.yaml").write_text("approvals: yes please\n")
    required, problems = approvals_required(root)
    assert required and problems[0].code == "approvals_settings_invalid" and "approvals: required" in problems[0].message


def test_apply_routing_sets_a_challenger_and_keeps_shadows(tmp_path: Path) -> None:
    """A challenger proposal writes version, share and key and keeps the live version and other shadows."""
    root = _root(tmp_path, required=False)
    releases = Releases(root)
    p = releases.propose(FLOW, "2", "challenger", "olga", share=0.2, key="customer_id")
    releases.log.decide(p.id, "abe", "approved", current_revision(root, FLOW, "2"))
    apply_routing(root, releases.log.proposals()[p.id])
    result = load(root)
    serving = result.flows[FLOW]
    assert serving.live == "3" and serving.challenger is not None
    assert (serving.challenger.version, serving.challenger.share, serving.challenger.key) == ("2", 0.2, "customer_id")
    assert serving.shadow == ("4",)


def test_the_servers_reload_refuses_a_hand_edited_unapproved_routing_and_keeps_serving(tmp_path: Path) -> None:
    """A running server's reload refuses routing.yaml edited by hand to an unapproved version, naming it; the approved routing keeps serving."""
    from engine.runtime.reload import Reloader
    from engine.runtime.service import load_decider

    root = _root(tmp_path)
    for flow in sorted(d.name for d in (root / "policies").iterdir() if d.is_dir() and d.name != FLOW):
        version = yaml.safe_load((root / "policies" / flow / "routing.yaml").read_text())["live"]  # every other flow's live version
        releases = Releases(root)
        p = releases.propose(flow, version, "live", "olga")
        releases.log.decide(p.id, "abe", "approved", current_revision(root, flow, version))
    _approve(root, "3")
    _approve(root, "4", "challenger", share=0.1, key="customer_id")
    decider = load_decider(root)
    reloader = Reloader(root, decider)
    (root / "policies" / FLOW / "routing.yaml").write_text('live: "4"\n')  # 4 is approved for a 10% share only
    status = reloader.reload()
    assert not status.ok
    assert any(p.code == "routing_not_approved" and "live traffic to credit_application version 4" in p.message for p in status.problems)
    assert decider.policies.flows[FLOW].live == "3"
    _approve(root, "4")
    assert reloader.reload().ok and decider.policies.flows[FLOW].live == "4"
