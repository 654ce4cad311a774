"""The custom lists' store: entries and their audit trail in one SQLite file, and the snapshot of them.

``DIR/custom_lists.sqlite`` (``DIR`` is the lists directory, by default the decision log's, whose
``hash.key`` also fingerprints card numbers). SQLite in WAL mode with ``synchronous=FULL``: a change
is on disk when ``add``/``remove``/``import_entries`` returns, and survives a ``kill -9`` or a power
loss (sqlite.org/wal.html). Several processes (``verdict serve --workers N``, the CLI) share the
file; writers take SQLite's write lock (``BEGIN IMMEDIATE``, 5 s busy timeout), readers never block.

Tables:

- ``entries (list, key, shown, expires_at, note, added_at, added_by)``: the members. ``key`` is the
  normal form (``engine.custom_lists.kinds``; a card's keyed fingerprint), ``shown`` what may be
  displayed (a card masked to first 6 / last 4). A card number is never written.
- ``changes (seq, record)``: the append-only audit trail, one sealed record per change with who
  (``actor``), when (``at``, ISO-8601 UTC), why (``reason``), the list, the action and the entry
  before and after, hash-chained exactly as the decision log (``engine.audit.record.Chain``: each
  record's ``hash`` covers its bytes and ``prev`` the record before). SQLite triggers refuse an
  UPDATE or DELETE of a change; an edit of the file by other means is found by ``verify``.
- ``meta (name, value)``: ``generation``, incremented by every change, which a server polls to know
  when to rebuild its snapshot (``engine.custom_lists.refresh``).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.audit.record import GENESIS, Chain, iso_time, payload, unseal
from engine.custom_lists.declarations import ListDeclaration
from engine.custom_lists.kinds import MAX_VALUE_CHARS, ListKind, entry_key, shown
from engine.custom_lists.snapshot import Entry, ListSnapshot
from engine.errors import FieldError, InvalidInput
from engine.runtime.privacy import HashKey, scrub_text, scrub_value
from engine.sqlite_wal import connect_wal

__all__ = ["DB_FILE", "MAX_IMPORT_ENTRIES", "Change", "ListStore", "StoredEntry"]

DB_FILE = "custom_lists.sqlite"
MAX_IMPORT_ENTRIES = 1_000_000
MAX_NOTE_CHARS = 1000
MAX_REASON_CHARS = 1000
MAX_ACTOR_CHARS = 256
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    list TEXT NOT NULL, key TEXT NOT NULL, shown TEXT NOT NULL, expires_at REAL,
    note TEXT NOT NULL, added_at REAL NOT NULL, added_by TEXT NOT NULL, PRIMARY KEY (list, key));
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('generation', 0);
CREATE TRIGGER IF NOT EXISTS changes_append_only_u BEFORE UPDATE ON changes
    BEGIN SELECT RAISE(ABORT, 'the change history is append-only'); END;
CREATE TRIGGER IF NOT EXISTS changes_append_only_d BEFORE DELETE ON changes
    BEGIN SELECT RAISE(ABORT, 'the change history is append-only'); END;
"""


@dataclass(frozen=True)
class StoredEntry:
    """An entry as ``verdict lists show`` prints it (no card number: ``shown`` is masked)."""

    list: str
    shown: str
    key: str
    expires_at: float | None
    note: str
    added_at: float
    added_by: str

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO-8601 UTC."""
        return {
            "list": self.list, "entry": self.shown, "key": self.key, "note": self.note, "added_by": self.added_by,
            "added_at": iso_time(self.added_at), "expires_at": iso_time(self.expires_at) if self.expires_at else None,
        }


@dataclass(frozen=True)
class Change:
    """One audited change: its sequence number and record (who, when, why, list, action, before, after)."""

    seq: int
    record: dict[str, Any]


def _field_errors(**checks: str | None) -> list[FieldError]:
    return [FieldError(name, message, "invalid") for name, message in checks.items() if message]


def _text_problem(value: str, limit: int, what: str, *, required: bool) -> str | None:
    if required and not value.strip():
        return f"{what} is required"
    if len(value) > limit:
        return f"{what} may have at most {limit} characters"
    return None


class ListStore:
    """The lists of one policy root in one SQLite file; every method is one transaction.

    ``declarations()`` gives the declared lists and their kinds (read at each call: a server's
    reload may declare more; a list not declared is refused, with the declared names); ``key`` fingerprints card numbers; ``clock`` gives Unix seconds.
    Raises ``InvalidInput`` (naming every bad field) for a bad request, ``sqlite3.Error`` when the
    file cannot be used.
    """

    def __init__(
        self, directory: Path, declarations: Callable[[], Mapping[str, ListDeclaration]], key: HashKey,
        clock: Callable[[], float] = time.time,
    ) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / DB_FILE
        self.declarations = declarations
        self.key = key
        self._clock = clock
        self._lock = threading.RLock()  # one connection, shared by the server's threads: one statement run at a time
        self._db = connect_wal(self.path, timeout=5.0, synchronous="FULL")
        os.chmod(self.path, 0o600)  # fingerprints and notes: the server's user only (as the decision log)
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        """Close the connection."""
        self._db.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("UPDATE meta SET value = value + 1 WHERE name = 'generation'")
            db.execute("COMMIT")

    def _rows(self, query: str, args: tuple[object, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(query, args).fetchall()

    def kind_of(self, name: str) -> ListKind:
        """The kind of declared list ``name``; raises InvalidInput (field ``list``) naming the declared ones."""
        declared = self.declarations()
        decl = declared.get(name)
        if decl is None:
            from engine.suggest import did_you_mean

            known = ", ".join(sorted(declared)) or "none (declare them in policies/custom_lists.yaml)"
            hint = did_you_mean(name[:MAX_VALUE_CHARS], sorted(declared))
            raise InvalidInput([FieldError("list", f"unknown list {scrub_text(name[:80])!r}; {hint or 'declared: ' + known}", "unknown_list")])
        return decl.kind

    def _check_change(
        self, name: str, value: str | None, actor: str, reason: str, note: str = "", expires_at: float | None = None,
    ) -> tuple[ListKind, str]:
        """The list's kind and the entry's key; InvalidInput naming every bad field at once."""
        problems = _field_errors(
            actor=_text_problem(actor, MAX_ACTOR_CHARS, "actor (who makes the change)", required=True),
            reason=_text_problem(reason, MAX_REASON_CHARS, "reason (why)", required=True),
            note=_text_problem(note, MAX_NOTE_CHARS, "note", required=False),
            expires_at=("expires_at must be a finite time after now"
                        if expires_at is not None and not (math.isfinite(expires_at) and expires_at > self._clock()) else None),
        )
        kind: ListKind | None = None
        try:
            kind = self.kind_of(name)
        except InvalidInput as exc:
            problems = list(exc.errors) + problems
        key = ""
        if value is not None:
            try:
                key = entry_key(kind or ListKind.DEVICE, value, self.key)
            except ValueError as exc:
                problems.append(FieldError("value", f"{exc}" + (f" for a {kind.value} list" if kind else ""), "invalid_entry"))
        if problems or kind is None:
            raise InvalidInput(problems)
        return kind, key

    def _row(self, db: sqlite3.Connection, name: str, key: str) -> dict[str, Any] | None:
        row = db.execute(
            "SELECT shown, expires_at, note, added_at, added_by FROM entries WHERE list = ? AND key = ?", (name, key)
        ).fetchone()
        if row is None:
            return None
        return {"entry": row[0], "expires_at": iso_time(row[1]) if row[1] else None, "note": row[2], "added_by": row[4]}

    def _audit(self, db: sqlite3.Connection, body: dict[str, Any]) -> Change:
        last = db.execute("SELECT seq, record FROM changes ORDER BY seq DESC LIMIT 1").fetchone()
        chain = Chain(0, GENESIS) if last is None else Chain(last[0] + 1, unseal(last[1].encode()).hash)
        line = chain.seal(payload(scrub_value(body)))  # a card number typed into a reason or note is masked
        db.execute("INSERT INTO changes (seq, record) VALUES (?, ?)", (chain.seq - 1, line.decode("utf-8")))
        return Change(chain.seq - 1, json.loads(line))

    def add(
        self, name: str, value: str, *, actor: str, reason: str, expires_at: float | None = None, note: str = "", via: str = "",
    ) -> Change:
        """Add (or update the expiry and note of) ``value`` in list ``name``; the audited change.

        ``via`` names how the change came (the authenticated gRPC caller, or "cli"); it is audited too.
        """
        kind, key = self._check_change(name, value, actor, reason, note, expires_at)
        with self._write() as db:
            return self._put(db, name, kind, key, value, actor=actor, reason=reason, expires_at=expires_at, note=note, via=via)

    def _put(
        self, db: sqlite3.Connection, name: str, kind: ListKind, key: str, value: str, *,
        actor: str, reason: str, expires_at: float | None, note: str, action: str = "add", via: str = "",
    ) -> Change:
        now = self._clock()
        before = self._row(db, name, key)
        db.execute(
            "INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (list, key) DO UPDATE SET "
            "expires_at = excluded.expires_at, note = excluded.note, added_at = excluded.added_at, added_by = excluded.added_by",
            (name, key, scrub_text(shown(kind, value)), expires_at, scrub_text(note), now, scrub_text(actor)),
        )
        return self._audit(db, {
            "kind": "list_change", "at": iso_time(now), "actor": actor, "via": via, "reason": reason, "list": name,
            "action": action, "key": key, "before": before, "after": self._row(db, name, key),
        })

    def remove(self, name: str, value: str, *, actor: str, reason: str, via: str = "") -> Change:
        """Remove ``value`` from list ``name``; InvalidInput (field ``value``) when it is not there."""
        _kind, key = self._check_change(name, value, actor, reason)
        with self._write() as db:
            before = self._row(db, name, key)
            if before is None:
                raise InvalidInput([FieldError("value", f"not in list {name!r}", "not_in_list")])
            db.execute("DELETE FROM entries WHERE list = ? AND key = ?", (name, key))
            return self._audit(db, {
                "kind": "list_change", "at": iso_time(self._clock()), "actor": actor, "via": via, "reason": reason,
                "list": name, "action": "remove", "key": key, "before": before, "after": None,
            })

    def import_entries(
        self, name: str, values: Iterable[tuple[str, float | None, str]], *, actor: str, reason: str, via: str = "",
    ) -> list[Change]:
        """Add every (value, expires_at, note) in one transaction: all or none (every bad one named)."""
        kind, _ = self._check_change(name, None, actor, reason)
        rows: list[tuple[str, str, float | None, str]] = []
        problems: list[FieldError] = []
        now = self._clock()
        for i, (value, expires_at, note) in enumerate(values):
            if i >= MAX_IMPORT_ENTRIES:
                problems.append(FieldError("entries", f"more than {MAX_IMPORT_ENTRIES} entries", "too_many"))
                break
            try:
                rows.append((entry_key(kind, value, self.key), value, expires_at, note))
            except ValueError as exc:
                problems.append(FieldError(f"entries[{i}]", str(exc), "invalid_entry"))
            if expires_at is not None and not (math.isfinite(expires_at) and expires_at > now):
                problems.append(FieldError(f"entries[{i}].expires_at", "must be a finite time after now", "invalid"))
            if len(note) > MAX_NOTE_CHARS:
                problems.append(FieldError(f"entries[{i}].note", f"at most {MAX_NOTE_CHARS} characters", "invalid"))
        if problems:
            raise InvalidInput(problems[:50], omitted=max(0, len(problems) - 50))
        with self._write() as db:
            return [self._put(db, name, kind, key, value, actor=actor, reason=reason, expires_at=exp, note=note, action="import",
                              via=via) for key, value, exp, note in rows]

    def entries(self, name: str | None = None) -> list[StoredEntry]:
        """The entries of one list (or of all), expired ones included, oldest first."""
        query = "SELECT list, shown, key, expires_at, note, added_at, added_by FROM entries"
        args: tuple[str, ...] = ()
        if name is not None:
            self.kind_of(name)
            query, args = query + " WHERE list = ?", (name,)
        return [StoredEntry(*row) for row in self._rows(query + " ORDER BY added_at, key", args)]

    def history(self, name: str | None = None) -> list[Change]:
        """The audited changes (of one list, or all), oldest first."""
        out = []
        for seq, record in self._rows("SELECT seq, record FROM changes ORDER BY seq"):
            data = json.loads(record)
            if name is None or data.get("list") == name:
                out.append(Change(seq, data))
        return out

    def verify(self) -> list[str]:
        """Problems of the audit trail's hash chain ([] when intact): a record edited, removed or reordered."""
        problems: list[str] = []
        prev, expected = GENESIS, 0
        for seq, record in self._rows("SELECT seq, record FROM changes ORDER BY seq"):
            try:
                sealed = unseal(record.encode("utf-8"))
            except ValueError as exc:
                problems.append(f"change {seq}: {exc}")
                continue
            if not sealed.hash_ok:
                problems.append(f"change {seq}: its hash does not match its content (edited)")
            if sealed.seq != seq or seq != expected:
                problems.append(f"change {seq}: expected sequence number {expected} (a change was removed or reordered)")
            if sealed.prev != prev:
                problems.append(f"change {seq}: does not follow the change before it (prev hash differs)")
            prev, expected = sealed.hash, seq + 1
        return problems

    def generation(self) -> int:
        """The store's change counter (every change adds one)."""
        rows = self._rows("SELECT value FROM meta WHERE name = 'generation'")
        return int(rows[0][0]) if rows else 0

    def snapshot(self) -> ListSnapshot:
        """Every entry that has not expired, as an immutable snapshot at the current generation."""
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN")  # one read transaction: the generation and the rows agree
            try:
                generation = self.generation()
                rows = self._rows("SELECT list, key, expires_at FROM entries WHERE expires_at IS NULL OR expires_at > ?", (now,))
            finally:
                self._db.execute("COMMIT")
        kinds = {n: d.kind for n, d in self.declarations().items()}
        return ListSnapshot((Entry(r[0], r[1], r[2] if r[2] is not None else math.inf) for r in rows), kinds, generation)
