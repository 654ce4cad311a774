"""Releases through the console: propose, approve (maker–checker), then change routing and reload.

The rules live in ``engine.policy.approvals`` (and the loader enforces them on every load and reload);
this module is the console's side: it reads a version's current content revision by loading the
root, writes ``policies/<flow>/routing.yaml`` once a proposal is approved, and asks running servers
to reload through the ``Reload`` RPC when the console was given ``--reload-target``. Every step is
an event in the approvals log.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from engine.policy.approvals import ApprovalError, ApprovalLog, Proposal

__all__ = ["Releases", "apply_routing", "current_revision"]


def current_revision(root: Path, flow: str, version: str) -> str:
    """The content revision of `flow` `version` as the loader computes it now ("" when it does not load)."""
    from engine.policy.loader import load

    content = load(root).contents.get((flow, version))
    return content.revision if content is not None else ""


def apply_routing(root: Path, proposal: Proposal) -> Path:
    """Rewrite ``policies/<flow>/routing.yaml`` so the approved proposal's version serves as proposed.

    ``live``: it becomes live (a challenger of the same version is dropped; shadows stay, less
    itself). ``challenger``: it becomes the challenger with the approved share and key.
    """
    path = Path(root) / "policies" / proposal.flow / "routing.yaml"
    current: dict[str, Any] = {}
    if path.is_file():
        loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        current = loaded if isinstance(loaded, dict) else {}
    if proposal.target == "live":
        current["live"] = proposal.version
        if isinstance(current.get("challenger"), dict) and str(current["challenger"].get("version")) == proposal.version:
            current.pop("challenger")
    else:
        current["challenger"] = {"version": proposal.version, "share": proposal.share, "key": proposal.key}
    shadow = [str(v) for v in current.get("shadow", []) if str(v) not in (current.get("live"), proposal.version)]
    if shadow:
        current["shadow"] = shadow
    else:
        current.pop("shadow", None)
    header = (f"# Which version of {proposal.flow} decides each request (docs/versions-and-routing.md).\n"
              f"# Written by the console for approved proposal {proposal.id} ({proposal.target} {proposal.version}, "
              f"proposed by {proposal.proposed_by}, approved by {proposal.decided_by}); see approvals/audit.log.\n")
    tmp = path.with_suffix(".tmp")
    tmp.write_text(header + yaml.safe_dump(current, sort_keys=False, default_style=None), encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass
class Releases:
    """The console's release actions over one root; `reload` asks the servers to reload (None: they poll)."""

    root: Path
    reload: Callable[[], list[str]] | None = None

    @property
    def log(self) -> ApprovalLog:
        return ApprovalLog(self.root)

    def propose(self, flow: str, version: str, target: str, by: str, *, share: float = 1.0, key: str = "", note: str = "") -> Proposal:
        """Record a proposal of `flow` `version` at its current revision; ApprovalError when it cannot be."""
        revision = current_revision(self.root, flow, version)
        if not revision:
            raise ApprovalError(f"{flow} version {version} does not exist or does not load: fix it before proposing it")
        return self.log.propose(flow, version, revision, target, by, share=share, key=key, note=note)

    def decide(self, pid: str, by: str, verdict: str, *, note: str = "") -> tuple[Proposal, list[str]]:
        """Approve or reject; an approval rewrites routing and triggers reloads. Returns the proposal and what happened."""
        log = self.log
        proposal = log.proposals().get(pid)
        if proposal is None:
            raise ApprovalError(f"no proposal {pid!r}")
        proposal = log.decide(pid, by, verdict, current_revision(self.root, proposal.flow, proposal.version), note=note)
        if proposal.state != "approved":
            return proposal, []
        path = apply_routing(self.root, proposal)
        log.record(pid, "applied", by, routing=str(path.relative_to(self.root)))
        outcome = self.reload() if self.reload is not None else ["servers pick the change up on their next reload (file watch or SIGHUP)"]
        log.record(pid, "reload", by, outcome=outcome)
        return proposal, outcome


def reload_servers(args: argparse.Namespace, targets: Sequence[str]) -> Callable[[], list[str]]:
    """A function calling ``PolicyService.Reload`` on each of `targets` with the console's connection flags."""
    from engine.commands._channel import CallFailed, call_policy_service
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

    def run() -> list[str]:
        out = []
        for target in targets:
            call = argparse.Namespace(**{**vars(args), "target": target, "timeout": 60.0})
            try:
                result = call_policy_service(call, "Reload", pb.ReloadRequest())
            except CallFailed:
                out.append(f"{target}: the Reload call failed (see the console's log)")
                continue
            out.append(f"{target}: {'OK' if result.ok else 'REFUSED'}: {result.message}")
        return out

    return run
