"""Maker–checker releases: a routing change serves only after a second person approved it.

A policy owner *proposes* a flow version for live traffic or for a challenger share; a different
user with the approver role *approves* it; only then may routing send traffic to it. Every step is
an event in ``<root>/approvals/audit.log``, append-only and hash-chained like the decision log
(``engine.audit.record``: each line seals ``seq``, the previous line's hash and its own sha256), so
an edited, reordered or truncated history fails ``verify``.

An approval binds to the content *revision* of the version as proposed (the sha256 the loader
computes over its flow file, rule files, models and lists: ``engine.policy.loader``): a later edit of any
of those files gives the version a new revision and voids the approval.

Enforcement: when the root's ``approvals.yaml`` says ``approvals: required``, the loader refuses
(``routing_not_approved``, naming the flow, version and what is missing) a ``routing.yaml`` that
sends traffic — the live version, or a challenger with ``share`` > 0 — to a version without a
valid approval. The same rule holds for a file edited by hand and for the console, and the server's
reload keeps serving its last good routing (``engine.policy.activation``). Shadow versions decide nothing
and need no approval. Without the file (or with ``approvals: optional``) nothing is enforced, and
the log is only a record.

A valid approval for traffic ``(flow, version, revision, route, share)``: an ``approved`` event for
a proposal of that flow and version whose recorded revision equals the current one, whose target
is ``live`` (which also covers any challenger share), or ``challenger`` with an approved share at
least the routed share; not followed by a ``revoked`` event for it. Pure apart from reading and
appending the log file.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.audit.record import GENESIS, Chain, iso_time, payload, unseal
from engine.errors import Problem
from engine.policy.yamlio import YamlSyntaxError, load_yaml

__all__ = [
    "ApprovalError", "ApprovalLog", "Proposal", "SETTINGS_NAME", "approvals_required", "routing_problems", "LOG_PATH",
]

SETTINGS_NAME = "approvals.yaml"
LOG_PATH = "approvals/audit.log"
TARGETS = ("live", "challenger")
_write_lock = threading.Lock()


class ApprovalError(ValueError):
    """A proposal or approval that the rules refuse; the message says which rule."""

    code = "approval_refused"


@dataclass
class Proposal:
    """One proposed routing change and what became of it (folded from the log's events)."""

    id: str
    flow: str
    version: str
    revision: str  # the version's content revision when proposed; the approval binds to it
    target: str  # "live" or "challenger"
    share: float  # the challenger's share (1.0 for live)
    key: str  # the challenger's routing key ("" for live)
    proposed_by: str
    proposed_at: str
    note: str = ""
    state: str = "proposed"  # proposed, approved, rejected, revoked
    decided_by: str = ""
    decided_at: str = ""
    applied_at: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)

    def covers(self, revision: str, route: str, share: float) -> bool:
        """Whether this approved proposal allows `route` traffic at `share` to the version at `revision`."""
        if self.state != "approved" or self.revision != revision:
            return False
        return self.target == "live" or (route == "challenger" and share <= self.share + 1e-12)


def approvals_required(root: Path) -> tuple[bool, list[Problem]]:
    """Whether ``<root>/approvals.yaml`` switches approvals on (``approvals: required``), and its problems."""
    path = Path(root) / SETTINGS_NAME
    if not path.is_file():
        return False, []
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, YamlSyntaxError) as exc:
        return True, [Problem(SETTINGS_NAME, f"cannot read the approvals settings: {exc}", "approvals_settings_invalid")]
    data = doc.data
    value = data.get("approvals") if isinstance(data, dict) else None
    extra = sorted(set(data) - {"approvals"}) if isinstance(data, dict) else []
    if value not in ("required", "optional") or extra:
        what = f"unknown keys {', '.join(map(str, extra))}" if extra else f"approvals is {value!r}"
        # a broken switch fails closed: approvals stay required until the file says otherwise
        return True, [Problem(SETTINGS_NAME, f"{what}; expected only `approvals: required` or `approvals: optional`",
                              "approvals_settings_invalid", hint="see docs/console.md, 'Maker-checker releases'")]
    return value == "required", []


class ApprovalLog:
    """The append-only, hash-chained log of proposals, approvals and applications under a root."""

    def __init__(self, root: Path, *, clock: Any = time.time) -> None:
        self.root = Path(root)
        self.path = self.root / LOG_PATH
        self._clock = clock

    # -- reading --------------------------------------------------------------------------------
    def events(self) -> list[dict[str, Any]]:
        """Every event in order, chain verified; raises ApprovalError naming the first broken line."""
        if not self.path.is_file():
            return []
        out = []
        chain = Chain()
        with self.path.open("rb") as fh:
            for number, raw in enumerate(fh, start=1):
                line = raw.rstrip(b"\n")
                try:
                    sealed = unseal(line)
                except ValueError as exc:
                    raise ApprovalError(f"{LOG_PATH}:{number}: not a sealed record ({exc})") from None
                if not sealed.hash_ok or sealed.seq != chain.seq or sealed.prev != chain.prev:
                    raise ApprovalError(f"{LOG_PATH}:{number}: the hash chain is broken (edited, reordered or truncated)")
                chain.seq, chain.prev = chain.seq + 1, sealed.hash
                out.append(sealed.data)
        return out

    def proposals(self) -> dict[str, Proposal]:
        """Proposal id -> its current state, in the order proposed."""
        return fold(self.events())

    # -- writing --------------------------------------------------------------------------------
    def _append(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """Seal and append one event under a process and file lock; returns it as recorded."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _write_lock, self.path.open("ab") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                chain = _tail(self.path)
                body = {"kind": "approval", "ts": iso_time(self._clock()), **event}
                line = chain.seal(payload(body))
                fh.write(line + b"\n")
                fh.flush()
                os.fsync(fh.fileno())
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)
        return {"seq": chain.seq - 1, **body}

    def propose(self, flow: str, version: str, revision: str, target: str, by: str, *,
                share: float = 1.0, key: str = "", note: str = "") -> Proposal:
        """Record a proposal; raises ApprovalError for a bad target or share."""
        problems = []
        if target not in TARGETS:
            problems.append(f"target must be one of {', '.join(TARGETS)}, not {target!r}")
        if target == "challenger" and not (0.0 < share < 1.0):
            problems.append(f"a challenger share is a number above 0 and below 1, not {share!r}")
        if target == "challenger" and not key:
            problems.append("a challenger needs a routing key (an input field, e.g. customer_id)")
        if not revision:
            problems.append(f"{flow} {version} has no content revision (does it load?)")
        if problems:
            raise ApprovalError("; ".join(problems))
        pid = uuid.uuid4().hex[:12]
        self._append({"event": "proposed", "proposal": pid, "flow": flow, "version": version, "revision": revision,
                      "target": target, "share": 1.0 if target == "live" else share, "key": key if target == "challenger" else "",
                      "by": by, "note": note})
        return self.proposals()[pid]

    def decide(self, pid: str, by: str, verdict: str, current_revision: str, *, note: str = "") -> Proposal:
        """Approve or reject proposal `pid` as `by`; raises ApprovalError when the rules refuse.

        Refused: an unknown or already decided proposal, the proposer deciding their own, and
        approving when the version's revision is no longer the proposed one (it was edited).
        """
        proposal = self.proposals().get(pid)
        if proposal is None:
            raise ApprovalError(f"no proposal {pid!r}")
        if proposal.state != "proposed":
            raise ApprovalError(f"proposal {pid} is already {proposal.state}")
        if verdict not in ("approved", "rejected"):
            raise ApprovalError(f"a decision is approved or rejected, not {verdict!r}")
        if by == proposal.proposed_by:
            raise ApprovalError(f"{by} proposed {pid} and cannot decide it: a different approver must (maker-checker)")
        if verdict == "approved" and current_revision != proposal.revision:
            raise ApprovalError(
                f"{proposal.flow} {proposal.version} changed since it was proposed (revision {proposal.revision[:12]} -> "
                f"{(current_revision or '-')[:12]}): the proposal is void; propose the new content"
            )
        self._append({"event": verdict, "proposal": pid, "by": by, "note": note})
        return self.proposals()[pid]

    def record(self, pid: str, event: str, by: str, **details: Any) -> None:
        """Record a further step of proposal `pid` (``applied``, ``reload``, ``revoked``)."""
        self._append({"event": event, "proposal": pid, "by": by, **details})


def _tail(path: Path) -> Chain:
    """The chain state after the last line of `path` (read under the writer's lock)."""
    last = b""
    count = 0
    with path.open("rb") as fh:
        for raw in fh:
            if raw.strip():
                last, count = raw.rstrip(b"\n"), count + 1
    if not count:
        return Chain(0, GENESIS)
    sealed = unseal(last)
    return Chain(int(sealed.seq) + 1, sealed.hash)


def fold(events: Iterable[Mapping[str, Any]]) -> dict[str, Proposal]:
    """Proposal id -> its state after `events` (in log order)."""
    out: dict[str, Proposal] = {}
    for e in events:
        pid = str(e.get("proposal", ""))
        if e.get("event") == "proposed":
            out[pid] = Proposal(pid, e["flow"], e["version"], e["revision"], e["target"], float(e["share"]), e.get("key", ""),
                                e["by"], e["ts"], e.get("note", ""), events=[dict(e)])
            continue
        p = out.get(pid)
        if p is None:
            continue
        p.events.append(dict(e))
        if e.get("event") in ("approved", "rejected", "revoked"):
            p.state, p.decided_by, p.decided_at = str(e["event"]), str(e.get("by", "")), str(e.get("ts", ""))
        elif e.get("event") == "applied":
            p.applied_at = str(e.get("ts", ""))
    return out


def _approved(proposals: Mapping[str, Proposal], flow: str, version: str) -> Iterator[Proposal]:
    return (p for p in proposals.values() if p.flow == flow and p.version == version and p.state == "approved")


def routing_problems(
    root: Path, flow: str, routed: Iterable[tuple[str, str, float]], revisions: Mapping[str, str], rel: str,
    *, required: bool | None = None, proposals: Mapping[str, Proposal] | None = None,
) -> list[Problem]:
    """Problems for each routed version without a valid approval (nothing when approvals are off).

    ``routed``: (version, route, share) for the live version (share 1) and a challenger with a
    share above 0; ``revisions``: version -> its current content revision; ``rel``: the routing
    file's path for the problems. ``required``/``proposals`` default to the root's settings and log.
    """
    if required is None:
        required, problems = approvals_required(root)
        if problems:
            return [*problems]
    if not required:
        return []
    if proposals is None:
        try:
            proposals = ApprovalLog(root).proposals()
        except ApprovalError as exc:
            return [Problem(LOG_PATH, str(exc), "approvals_log_invalid", flow=flow)]
    out = []
    for version, route, share in routed:
        revision = revisions.get(version, "")
        if not revision or any(p.covers(revision, route, share) for p in _approved(proposals, flow, version)):
            continue  # a version that does not load is reported by the loader already
        stale = [p for p in _approved(proposals, flow, version) if p.revision != revision]
        why = (f"its approval {stale[-1].id} was for revision {stale[-1].revision[:12]}, the version is now {revision[:12]}"
               if stale else "no approver approved it")
        out.append(Problem(
            rel, f"routing sends {route} traffic{'' if route == 'live' else f' (share {share:g})'} to {flow} version "
            f"{version}, which has no valid approval: {why}", "routing_not_approved", flow=flow,
            hint="propose it in the console (Releases) and have a different user with the approver role approve it "
                 "(docs/console.md); approvals are required by approvals.yaml",
        ))
    return out


def describe(event: Mapping[str, Any]) -> str:
    """One line for an event, for the console's audit view."""
    rest = {k: v for k, v in event.items() if k not in ("seq", "prev", "hash", "kind", "ts", "event", "by", "proposal")}
    return f"{event.get('ts', '')} {event.get('event', '')} {event.get('proposal', '')} by {event.get('by', '')} {json.dumps(rest, sort_keys=True)}"
