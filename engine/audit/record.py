"""The record format of the decision log and its hash chain.

A record is one line of JSON (UTF-8). The writer seals a *payload* (a JSON object without
``seq``, ``prev`` and ``hash``) into a line::

    body = {"seq":N,"prev":"<hash of record N-1>",<payload members>}
    line = body without its final "}" + ,"hash":"<sha256 hex of body>"}

so ``hash`` covers every byte of the record before it, ``prev`` links it to the one before, and
``seq`` counts records from 0 along one chain. Parsing needs no canonical re-serialisation: the
hash is checked over the exact bytes. Every line is still plain JSON.

Payload kinds: ``segment`` (a segment file's header), ``chain`` (the first record of a
PostgreSQL writer's chain), ``decision`` and ``disposition`` (a review case's final answer,
``disposition_payload``). Readers of decisions skip every other kind; ``verify`` checks them all.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.runtime.privacy import scrub_text
from engine.types import Action, Decision, FallbackTaken, FiredRule, Outcome, Reason

__all__ = [
    "FORMAT",
    "GENESIS",
    "Chain",
    "Sealed",
    "decision_from_record",
    "decision_payload",
    "disposition_payload",
    "iso_time",
    "parse_time",
    "payload",
    "peek_decision",
    "unseal",
]

FORMAT = "verdict-decision-log/1"
GENESIS = "0" * 64  # the "previous hash" of the first record of a chain
_HASH_KEY = b',"hash":"'
_SUFFIX_LEN = len(_HASH_KEY) + 64 + 2  # ,"hash":"<64 hex>"}
_HEX = frozenset(b"0123456789abcdef")
# default=str: a value JSON has no type for (only possible in-process) is logged as its text, never an error
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode
_second: tuple[int, str] = (-1, "")


def iso_time(epoch_seconds: float) -> str:
    """UTC ISO-8601 with microseconds, e.g. 2024-05-01T12:00:00.000001Z."""
    global _second
    whole = int(epoch_seconds)
    micros = round((epoch_seconds - whole) * 1_000_000)
    if micros >= 1_000_000:
        whole, micros = whole + 1, micros - 1_000_000
    cached = _second
    if cached[0] != whole:  # the formatted second is reused for every record within it
        cached = (whole, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)))
        _second = cached
    return f"{cached[1]}.{micros:06d}Z"


def parse_time(text: str) -> float:
    """Epoch seconds of an ``iso_time`` string."""
    return datetime.fromisoformat(text).timestamp()


def payload(data: Mapping[str, Any]) -> bytes:
    """A payload object as compact UTF-8 JSON."""
    return _encode(data).encode("utf-8")


@dataclass
class Chain:
    """The tail of one hash chain: the next sequence number and the last record's hash."""

    seq: int = 0
    prev: str = GENESIS

    def seal(self, body_payload: bytes) -> bytes:
        """The record line (without newline) for ``body_payload``; advances the chain."""
        if body_payload[:1] != b"{" or body_payload[-1:] != b"}" or len(body_payload) < 3:
            raise ValueError("a payload is a non-empty JSON object")
        body = b'{"seq":%d,"prev":"%s",' % (self.seq, self.prev.encode()) + body_payload[1:]
        digest = hashlib.sha256(body).hexdigest()
        self.seq += 1
        self.prev = digest
        return body[:-1] + _HASH_KEY + digest.encode() + b'"}'

    def copy(self) -> Chain:
        return Chain(self.seq, self.prev)


@dataclass(frozen=True)
class Sealed:
    """A parsed record line: its fields, its hash, and whether the hash matches its bytes."""

    data: dict[str, Any]
    hash: str
    hash_ok: bool

    @property
    def seq(self) -> Any:
        return self.data.get("seq")

    @property
    def prev(self) -> Any:
        return self.data.get("prev")

    @property
    def kind(self) -> str:
        return str(self.data.get("kind", ""))


def unseal(line: bytes) -> Sealed:
    """Parse one record line (without newline); raises ValueError when it is not a record."""
    n = len(line)
    if n < _SUFFIX_LEN + 2 or line[-2:] != b'"}' or line[n - _SUFFIX_LEN : n - _SUFFIX_LEN + len(_HASH_KEY)] != _HASH_KEY:
        raise ValueError("not a sealed record (no trailing hash)")
    digest = line[n - 66 : n - 2]
    if not _HEX.issuperset(digest):
        raise ValueError("the record's hash is not 64 lowercase hex digits")
    body = line[: n - _SUFFIX_LEN] + b"}"
    try:
        data = json.loads(line)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    actual = hashlib.sha256(body).hexdigest()
    return Sealed(data, digest.decode(), actual == digest.decode())


_DECISION_PREFIX = re.compile(rb'\{"seq":(0|[1-9][0-9]{0,18}),"prev":"([0-9a-f]{64})","kind":"decision",')


def peek_decision(line: bytes) -> Sealed | None:
    """A decision record line whose hash matches, checked without parsing its JSON; else None.

    The chain needs only ``seq``, ``prev`` and the hash, which sit at fixed places in a record
    as the writer seals it, so verifying a large log skips ``json.loads`` (about 6x faster; see
    docs/decision-log.md). Anything else — another kind, another layout, a hash mismatch —
    returns None, and the caller parses the line with ``unseal`` for the full diagnosis.
    The returned ``data`` holds only ``seq``, ``prev`` and ``kind``.
    """
    m = _DECISION_PREFIX.match(line)
    n = len(line)
    if m is None or line[-2:] != b'"}' or line[n - _SUFFIX_LEN : n - _SUFFIX_LEN + len(_HASH_KEY)] != _HASH_KEY:
        return None
    digest = line[n - 66 : n - 2]
    if hashlib.sha256(line[: n - _SUFFIX_LEN] + b"}").hexdigest().encode() != digest:
        return None
    return Sealed({"seq": int(m.group(1)), "prev": m.group(2).decode(), "kind": "decision"}, digest.decode(), True)


def _reason(r: Reason) -> dict[str, Any]:
    out: dict[str, Any] = {"code": r.code, "message": r.message, "source": r.source}
    if r.rule_id:
        out["rule_id"] = r.rule_id
    if r.feature:
        out["feature"] = r.feature
        out["contribution"] = r.contribution
    return out


def _fired(f: FiredRule) -> dict[str, Any]:
    return {
        "id": f.id,
        "ruleset": f.ruleset,
        "action": f.action.name,
        "reason_code": f.reason_code,
        "priority": f.priority,
        "uses_model": f.uses_model,
    }


def decision_payload(
    decision: Decision,
    masked_input: Mapping[str, Any],
    masked_fields: list[str],
    *,
    ts: float,
    fingerprint: str = "",
    key_id: str = "",
    delivery: str = "",
) -> bytes:
    """The payload of a decision record: everything needed to explain and replay it.

    ``masked_input`` is the input as the flow's ``Masker`` left it (card numbers already masked,
    sensitive fields masked or hashed); the request id, the one other string a caller chooses,
    passes the card-number scanner here. The rest of a record is the engine's (ids, hashes,
    times, numbers) or the loaded policy's (flow, version, reason texts and codes, rule ids):
    scanning those on every record would cost more than the rest of the record (see
    benchmarks/privacy_cost.py) and find nothing a caller sent.
    """
    outcome = decision.outcome
    data: dict[str, Any] = {
        "kind": "decision",
        "ts": iso_time(ts),
        "decision_id": decision.decision_id,
        "request_id": scrub_text(decision.request_id),
        "flow": decision.flow,
        "version": decision.version,
        "revision": decision.revision,
        "route": decision.route,
        "action": outcome.action.name,
        "reasons": [_reason(r) for r in outcome.reasons],
        "fired": [_fired(f) for f in outcome.fired],
        "scores": dict(outcome.scores),
        "models": dict(decision.models),
        "timings": {"eval_us": decision.eval_us},
        "input": dict(masked_input),
        "masked": masked_fields,
    }
    if decision.caller:  # who asked (authenticated servers only); scopes request ids on preload
        data["caller"] = decision.caller
    if fingerprint:
        data["fp"] = fingerprint
        data["key_id"] = key_id
    if delivery:  # "unknown": decided after the caller's deadline; absent: answered in time
        data["delivery"] = delivery
    if outcome.fallbacks:  # declared fallbacks taken (engine.runtime.fallback); absent: none
        data["fallback"] = [{"step": f.step, "reason": f.reason, "mode": f.mode} for f in outcome.fallbacks]
    if decision.event_time is not None:  # a flow with stateful features: what it read, as of when (engine.state)
        data["event_time"] = decision.event_time
        data["state"] = dict(decision.state)
    if decision.lists:  # the custom lists it read: name -> answers in the order asked (never the value)
        data["lists"] = {name: list(answers) for name, answers in decision.lists.items()}
    return payload(data)


def disposition_payload(
    *,
    case_seq: int,
    decision_id: str,
    request_id: str,
    flow: str,
    version: str,
    disposition: str,
    note: str,
    actor: str,
    decided_at: float,
    ts: float,
) -> bytes:
    """The payload of a disposition record: an analyst's final answer to a REVIEW decision.

    ``case_seq`` is the disposition's place in the case store's stream (its cursor), so a reader
    can match the record to ``ListCaseDecisions``; the note (free text an analyst typed) passes the
    card-number scanner. Written at least once per disposition (engine.cases.relay): a reader
    takes the first record of a ``decision_id``.
    """
    return payload(
        {
            "kind": "disposition",
            "ts": iso_time(ts),
            "case_seq": case_seq,
            "decision_id": decision_id,
            "request_id": scrub_text(request_id),
            "flow": flow,
            "version": version,
            "disposition": disposition,
            "note": scrub_text(note),
            "actor": scrub_text(actor),
            "decided_at": iso_time(decided_at),
        }
    )


def decision_from_record(data: Mapping[str, Any]) -> Decision:
    """The Decision a decision record describes (without the evaluation's feature values).

    ``state``, ``event_time`` and ``lists`` (what the decision read) are left out on purpose: its
    users answer a retry again (engine.audit.wiring's idempotency preload, whose cache drops the
    list answers and whose ``entry_bytes`` estimate counts neither) or explain the decision
    (``verdict notice``); a replay reads them from the record itself (engine.audit.replay).
    Raises KeyError / ValueError on a record that lacks a field or names an unknown action.
    """
    outcome = Outcome(
        action=Action[data["action"]],
        reasons=tuple(
            Reason(
                r["code"],
                r["message"],
                r["source"],
                r.get("rule_id", ""),
                r.get("feature", ""),
                float(r.get("contribution", 0.0)),
            )
            for r in data["reasons"]
        ),
        fired=tuple(
            FiredRule(f["id"], f["ruleset"], Action[f["action"]], f["reason_code"], int(f["priority"]), bool(f["uses_model"]))
            for f in data["fired"]
        ),
        scores={str(k): float(v) for k, v in data["scores"].items()},
        features={},
        fallbacks=tuple(FallbackTaken(str(f["step"]), str(f["reason"]), str(f["mode"])) for f in data.get("fallback", ())),
    )
    return Decision(
        decision_id=data["decision_id"],
        request_id=data["request_id"],
        flow=data["flow"],
        version=data["version"],
        revision=data["revision"],
        outcome=outcome,
        models=dict(data["models"]),
        eval_us=float(data["timings"]["eval_us"]),
        route=data["route"],
        caller=str(data.get("caller", "")),
    )
