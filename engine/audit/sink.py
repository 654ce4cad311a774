"""The decision log as the Decider's ``DecisionSink``: mask the input, encode, append durably.

``AuditSink.record(decision, raw_input, masker=...)`` runs on the request thread: it masks the input
with the flow version's ``Masker``, which the compiler built into the flow (``CompiledFlow.masker``)
and the service hands over with the decision, under the log's hash key; encodes the record and
blocks until the writer thread has made it durable. The sink never looks a flow up. A record given
``Masker(None)`` masks an input whose schema is not known conservatively: every field is treated
as undeclared, so any card number in it is masked.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from engine.audit.record import decision_payload
from engine.audit.writer import GroupCommitWriter, Meta
from engine.runtime.idempotency import Fingerprinter
from engine.runtime.privacy import HashKey, Masker, scrub_text
from engine.types import Decision

__all__ = ["AuditSink"]

class AuditSink:
    """Writes every decision to the log before it is returned (implements ``DecisionSink``)."""

    def __init__(
        self,
        writer: GroupCommitWriter,
        key: HashKey,
        fingerprint: Fingerprinter | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.writer = writer
        self.key = key  # the log's hash key: ``sensitive: hash`` fields are HMAC-SHA256 under it
        self._fingerprint = fingerprint
        self._clock = clock

    def record(self, decision: Decision, raw_input: Mapping[str, Any], *, masker: Masker, delivery: str = "") -> None:
        """Append the decision with its input masked by ``masker`` (the deciding flow's
        ``CompiledFlow.masker``); returns once it is durable.

        ``delivery="unknown"``: finished after the caller's deadline (the record says so).
        """
        masked, fields = masker(raw_input, self.key)
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
