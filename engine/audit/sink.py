"""The decision log as the Decider's ``DecisionSink``: mask the input, encode, append durably.

``AuditSink.record(decision, raw_input)`` runs on the request thread: it masks the input with the
flow version's ``Masker``, encodes the record and blocks until the writer thread has made it
durable. Maskers are built once per flow revision from the loaded policies; a decision whose
revision is no longer loaded (a reload raced it) is masked conservatively: every field is treated
as undeclared, so any card number in it is masked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from engine.audit.record import decision_payload
from engine.audit.writer import GroupCommitWriter, Meta
from engine.runtime.idempotency import Fingerprinter
from engine.runtime.privacy import HashKey, Masker, scrub_text
from engine.types import Decision

if TYPE_CHECKING:
    from engine.policy.loader import PolicySet

__all__ = ["AuditSink", "MaskRegistry"]


class MaskRegistry:
    """Maskers by (flow, version, revision), built from the policies the service has loaded."""

    def __init__(self, key: HashKey, policies: Callable[[], PolicySet] | None = None) -> None:
        self.key = key
        self._policies = policies
        self._maskers: dict[tuple[str, str, str], Masker] = {}
        self._fallback = Masker(None, key)

    def bind(self, policies: Callable[[], PolicySet]) -> None:
        """Where to find the loaded flows (e.g. ``lambda: decider.policies``)."""
        self._policies = policies

    def masker(self, flow: str, version: str, revision: str) -> Masker:
        key = (flow, version, revision)
        found = self._maskers.get(key)
        if found is not None:
            return found
        masker = self._build(flow, version, revision)
        if masker is not self._fallback:
            self._maskers[key] = masker
        return masker

    def _build(self, flow: str, version: str, revision: str) -> Masker:
        if self._policies is None:
            return self._fallback
        try:
            compiled = self._policies().flows[flow].versions[version]
        except (KeyError, LookupError):
            return self._fallback
        if compiled.revision != revision:
            return self._fallback
        return Masker(compiled.validator.fields, self.key)


class AuditSink:
    """Writes every decision to the log before it is returned (implements ``DecisionSink``)."""

    def __init__(
        self,
        writer: GroupCommitWriter,
        masks: MaskRegistry,
        fingerprint: Fingerprinter | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.masks = masks
        self._fingerprint = fingerprint
        self._clock = clock

    def record(self, decision: Decision, raw_input: Mapping[str, Any], *, delivery: str = "") -> None:
        """Append the decision with its masked input; returns once it is durable.

        ``delivery="unknown"``: finished after the caller's deadline (the record says so).
        """
        masked, fields = self.masks.masker(decision.flow, decision.version, decision.revision)(raw_input)
        fp = ""
        key_id = ""
        if self._fingerprint is not None and decision.request_id and decision.route != "shadow":
            requested = decision.version if decision.route == "pinned" else ""
            fp = self._fingerprint(decision.flow, requested, raw_input)
            key_id = self._fingerprint.key_id
        ts = self._clock()
        body = decision_payload(decision, masked, fields, ts=ts, fingerprint=fp, key_id=key_id, delivery=delivery)
        self.writer.append(body, Meta(ts, decision.flow, decision.decision_id, scrub_text(decision.request_id)))

    def close(self) -> None:
        self.writer.close()
