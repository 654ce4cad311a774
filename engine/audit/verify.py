"""Checking one hash chain record by record, wherever its lines come from.

``ChainVerifier.feed`` takes the chain's lines in order and returns the first problem: a line cut
short (truncated mid-record), a line that is not a sealed record, a hash that does not match the
record's bytes (edited), a sequence number out of order (removed, inserted or reordered) or a
``prev`` that is not the hash of the record before (removed, edited or reordered).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.audit.record import GENESIS, Sealed, peek_decision, unseal

__all__ = ["BadRecord", "ChainReport", "ChainVerifier", "VerifyReport"]


@dataclass(frozen=True)
class BadRecord:
    """The first bad record of a chain: where it is and what is wrong."""

    where: str
    problem: str
    seq: int | None = None
    decision_id: str = ""

    def __str__(self) -> str:
        who = []
        if self.seq is not None:
            who.append(f"seq {self.seq}")
        if self.decision_id:
            who.append(f"decision {self.decision_id}")
        return f"{self.where}" + (f" ({', '.join(who)})" if who else "") + f": {self.problem}"


@dataclass
class ChainReport:
    """What verifying one chain found."""

    name: str
    records: int = 0  # every record, headers included
    decisions: int = 0
    segments: int = 0
    last_seq: int = -1
    last_hash: str = GENESIS
    bad: BadRecord | None = None


@dataclass
class VerifyReport:
    """The result for a whole log (one chain per writer)."""

    location: str
    chains: list[ChainReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.chains) and all(c.bad is None for c in self.chains)

    @property
    def decisions(self) -> int:
        return sum(c.decisions for c in self.chains)

    @property
    def records(self) -> int:
        return sum(c.records for c in self.chains)

    def first_bad(self) -> BadRecord | None:
        return next((c.bad for c in self.chains if c.bad is not None), None)


class ChainVerifier:
    """Feeds one chain's lines in order; stops at the first bad one."""

    def __init__(self, report: ChainReport, start: tuple[int, str] = (0, GENESIS)) -> None:
        self.report = report
        self._seq, self._prev = start  # where the chain stands before the first line fed

    def feed(self, where: str, raw: bytes, complete: bool = True) -> Sealed | None:
        """Check the next line; returns it parsed, or None after recording the problem."""
        r = self.report
        if r.bad is not None:
            return None
        if not complete:
            r.bad = BadRecord(where, f"truncated mid-record ({len(raw)} bytes without an end of line)")
            return None
        fast = peek_decision(raw)
        if fast is not None and fast.data["seq"] == self._seq and fast.data["prev"] == self._prev:
            self._seq += 1
            self._prev = fast.hash
            r.records += 1
            r.last_seq = fast.data["seq"]
            r.last_hash = fast.hash
            r.decisions += 1
            return fast
        try:
            rec = unseal(raw)
        except ValueError as exc:
            r.bad = BadRecord(where, f"not a valid record: {exc}")
            return None
        seq = rec.seq if isinstance(rec.seq, int) else None
        did = str(rec.data.get("decision_id", ""))
        if not rec.hash_ok:
            r.bad = BadRecord(where, "hash mismatch: the record was edited", seq, did)
            return None
        if rec.seq != self._seq:
            r.bad = BadRecord(
                where,
                f"sequence {rec.seq} where {self._seq} was expected: a record was removed, inserted or reordered",
                seq,
                did,
            )
            return None
        if rec.prev != self._prev:
            r.bad = BadRecord(where, "previous-hash mismatch: the record before it was removed, edited or reordered", seq, did)
            return None
        self._seq += 1
        self._prev = rec.hash
        r.records += 1
        r.last_seq = rec.seq
        r.last_hash = rec.hash
        if rec.kind == "decision":
            r.decisions += 1
        return rec

    def fail(self, where: str, problem: str) -> None:
        """Record a problem found outside the line itself (layout, anchor)."""
        if self.report.bad is None:
            self.report.bad = BadRecord(where, problem)
