"""Where cases, dispositions and outcome labels live: SQLite by default, PostgreSQL for replicas.

``CaseStore`` is the API the server, the CLI, the gRPC ``CaseService`` and the console use;
``open_store(location)`` opens a SQLite file (a path) or PostgreSQL (a ``postgresql://`` DSN).
Both run the same SQL: its tables, the dialects and the connections are ``engine.cases.sql``.

Transitions are checked inside the write transaction (state read and changed under the lock), so
two analysts, two CLI runs or ``verdict serve --workers N`` cannot both decide one case.
SQLite runs in WAL mode with ``synchronous=FULL``: a committed step survives ``kill -9`` and power
loss (https://www.sqlite.org/wal.html, https://www.sqlite.org/pragma.html#pragma_synchronous).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from engine.cases.errors import CaseNotFound, CaseStoreError, IllegalTransition
from engine.cases.model import Case, CaseEvent, CaseQuery, CaseState, Disposition, OutcomeKind, OutcomeLabel, Priority
from engine.cases.sql import CASE_COLUMNS, PG_LOCK, SCHEMA, Dialect, connect_postgres, connect_sqlite, db_errors

__all__ = ["MAX_PAGE", "CaseStore", "SqlCaseStore", "as_mapping", "open_store"]

MAX_PAGE = 1000  # the most rows one list call returns (bounded cost per call)
_DSN_RE = re.compile(r"^postgres(ql)?://", re.IGNORECASE)


class CaseStore(Protocol):
    """The review queue's store. Every method raises ``CaseStoreError`` when the store fails.

    Times are epoch seconds (UTC); ``actor`` is who acts (an analyst's name, a gRPC caller).
    """

    location: str

    def open_cases(self, cases: Sequence[Case], *, chain: str = "", seq: int | None = None) -> int:
        """Insert the cases not yet there (by id) and, when given, move ``chain``'s catch-up cursor to
        ``seq`` in the same transaction; returns how many were new."""
        ...

    def cursor(self, chain: str) -> int | None:
        """The last decision-log seq of ``chain`` whose REVIEW decisions have cases (None: none yet)."""
        ...

    def get(self, case_id: str) -> Case:
        """The case with its linked earlier cases and steps; raises ``CaseNotFound``."""
        ...

    def steps(self, case_id: str) -> list[dict[str, Any]]:
        """The case's history: ``{"at", "step", "actor", "detail"}`` oldest first."""
        ...

    def list_cases(self, query: CaseQuery | None = None) -> list[Case]:
        """Cases matching every filter of ``query``, in queue order: priority, then due time, then id."""
        ...

    def claim(self, case_id: str, actor: str, *, now: float) -> Case:
        """``actor`` takes an open case (open → assigned); claiming one's own is a no-op.
        Raises ``IllegalTransition`` when decided or assigned to someone else."""
        ...

    def assign(self, case_id: str, assignee: str, actor: str, *, now: float) -> Case:
        """Give an open or assigned case to ``assignee``; raises ``IllegalTransition`` when decided."""
        ...

    def decide(self, case_id: str, disposition: Disposition, note: str, actor: str, *, now: float) -> Case:
        """Final answer (open or assigned → decided), appended to the disposition stream.
        Raises ``IllegalTransition`` when already decided, or assigned to someone other than ``actor``."""
        ...

    def add_note(self, case_id: str, text: str, actor: str, *, now: float) -> Case:
        """Append a ``note`` step (``text`` as its detail) to the case's history, in any state
        (a decided case takes follow-up notes); the case itself is unchanged. Raises ``CaseNotFound``."""
        ...

    def dispositions(self, since: int = 0, limit: int = 100, *, flow: str | None = None) -> list[CaseEvent]:
        """Dispositions with ``seq > since`` (oldest first, at most ``limit``)."""
        ...

    def unlogged(self, limit: int = 100, *, now: float, lease: float = 60.0) -> list[CaseEvent]:
        """Claim dispositions not yet written to the decision log (oldest first) for ``lease`` seconds:
        another relay (a replica) skips them until the lease runs out (its holder died)."""
        ...

    def mark_logged(self, seqs: Iterable[int]) -> None:
        """Record that these dispositions are in the decision log."""
        ...

    def add_outcomes(self, labels: Sequence[OutcomeLabel]) -> tuple[int, int]:
        """Store labels; ``(added, already there)``: one label per (decision id, kind), the first kept."""
        ...

    def outcomes(self, decision_ids: Iterable[str] | None = None) -> dict[str, list[OutcomeLabel]]:
        """Labels by decision id (every label when ``decision_ids`` is None)."""
        ...

    def close(self) -> None: ...


class SqlCaseStore:
    """``CaseStore`` over one SQLite or PostgreSQL connection (thread-safe: one lock per store)."""

    def __init__(self, conn: Any, dialect: str, location: str) -> None:
        self._conn = conn
        self._d = Dialect(dialect)
        self._lock = threading.RLock()
        self._errors = db_errors()
        self.location = location
        with self._write():
            for statement in SCHEMA:
                self._conn.execute(statement.replace("{serial}", self._d.serial))

    # -- plumbing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction (serialised across processes; see the module docstring)."""
        with self._lock:
            try:
                self._conn.execute("BEGIN IMMEDIATE" if self._d.name == "sqlite" else "BEGIN")
                if self._d.name != "sqlite":
                    self._conn.execute("SELECT pg_advisory_xact_lock(%s)", (PG_LOCK,))
            except self._errors as exc:
                raise CaseStoreError(f"the case store {self.location} cannot start a transaction: {exc}") from None
            try:
                yield
            except BaseException:
                with contextlib.suppress(*self._errors):
                    self._conn.execute("ROLLBACK")
                raise
            try:
                self._conn.execute("COMMIT")
            except self._errors as exc:
                raise CaseStoreError(f"the case store {self.location} could not commit: {exc}") from None

    def _rows(self, sql: str, args: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return list(self._conn.execute(self._d.sql(sql), tuple(args)).fetchall())
            except self._errors as exc:
                raise CaseStoreError(f"the case store {self.location} failed: {exc}") from None

    def _exec(self, sql: str, args: Sequence[Any] = ()) -> int:
        """Run one statement inside ``_write``; the number of rows it changed."""
        try:
            cur = self._conn.execute(self._d.sql(sql), tuple(args))
        except self._errors as exc:
            raise CaseStoreError(f"the case store {self.location} failed: {exc}") from None
        return int(cur.rowcount)

    # -- opening ---------------------------------------------------------------------------------

    def open_cases(self, cases: Sequence[Case], *, chain: str = "", seq: int | None = None) -> int:
        added = 0
        with self._write():
            for case in cases:
                added += self._exec(
                    f"INSERT INTO verdict_case ({CASE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (case_id) DO NOTHING",
                    (
                        case.case_id, case.request_id, case.flow, case.version, case.route, case.queue,
                        case.priority.rank, case.state.value, case.opened_at, case.due_at, case.assignee,
                        None, "", "", None, json.dumps(case.record, ensure_ascii=False, default=str),
                        json.dumps(case.links, ensure_ascii=False),
                    ),
                )
                for name, value in case.links.items():
                    self._exec(
                        "INSERT INTO verdict_case_link (field, value, case_id, opened_at) VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                        (name, value, case.case_id, case.opened_at),
                    )
                self._exec(
                    "INSERT INTO verdict_case_step (case_id, at, step, actor, detail) "
                    "SELECT ?, ?, 'opened', 'verdict', ? WHERE NOT EXISTS "
                    "(SELECT 1 FROM verdict_case_step WHERE case_id = ? AND step = 'opened')",
                    (case.case_id, case.opened_at, f"{case.queue} / {case.priority.value}", case.case_id),
                )
            if chain and seq is not None:
                self._exec(
                    "INSERT INTO verdict_case_cursor (chain, seq) VALUES (?, ?) "
                    "ON CONFLICT (chain) DO UPDATE SET seq = CASE WHEN excluded.seq > verdict_case_cursor.seq "
                    "THEN excluded.seq ELSE verdict_case_cursor.seq END",
                    (chain, seq),
                )
        return added

    def cursor(self, chain: str) -> int | None:
        rows = self._rows("SELECT seq FROM verdict_case_cursor WHERE chain = ?", (chain,))
        return int(rows[0][0]) if rows else None

    # -- reading ---------------------------------------------------------------------------------

    def _case(self, row: Sequence[Any], linked: tuple[str, ...] = (), seq: int | None = None) -> Case:
        return Case(
            case_id=row[0], decision_id=row[0], request_id=row[1], flow=row[2], version=row[3], route=row[4],
            queue=row[5], priority=list(Priority)[int(row[6])], state=CaseState(row[7]), opened_at=float(row[8]),
            due_at=float(row[9]), assignee=row[10], disposition=Disposition(row[11]) if row[11] else None,
            note=row[12], decided_by=row[13], decided_at=float(row[14]) if row[14] is not None else None,
            decided_seq=seq, record=json.loads(row[15]), links=json.loads(row[16]), linked=linked,
        )

    def get(self, case_id: str) -> Case:
        rows = self._rows(f"SELECT {CASE_COLUMNS} FROM verdict_case WHERE case_id = ?", (case_id,))
        if not rows:
            raise CaseNotFound(case_id)
        row = rows[0]
        linked = self._rows(
            "SELECT DISTINCT other.case_id, other.opened_at FROM verdict_case_link mine "
            "JOIN verdict_case_link other ON other.field = mine.field AND other.value = mine.value "
            "WHERE mine.case_id = ? AND other.case_id <> mine.case_id AND other.opened_at <= ? "
            "ORDER BY other.opened_at DESC, other.case_id LIMIT 50",
            (case_id, row[8]),
        )
        seq = self._rows("SELECT seq FROM verdict_disposition WHERE case_id = ?", (case_id,))
        return self._case(row, tuple(r[0] for r in linked), int(seq[0][0]) if seq else None)

    def steps(self, case_id: str) -> list[dict[str, Any]]:
        rows = self._rows("SELECT at, step, actor, detail FROM verdict_case_step WHERE case_id = ? ORDER BY at, step", (case_id,))
        return [{"at": float(r[0]), "step": r[1], "actor": r[2], "detail": r[3]} for r in rows]

    def list_cases(self, query: CaseQuery | None = None) -> list[Case]:
        q = query or CaseQuery()
        where: list[str] = []
        args: list[Any] = []
        for column, value in (
            ("state", q.state.value if q.state else None), ("flow", q.flow), ("queue", q.queue),
            ("priority", q.priority.rank if q.priority else None), ("assignee", q.assignee), ("request_id", q.request_id),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        sql = f"SELECT {CASE_COLUMNS} FROM verdict_case"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY priority, due_at, case_id LIMIT ? OFFSET ?"
        args += [max(0, min(int(q.limit), MAX_PAGE)), max(0, int(q.offset))]
        return [self._case(r) for r in self._rows(sql, args)]

    # -- transitions -----------------------------------------------------------------------------

    def _state(self, case_id: str) -> tuple[CaseState, str]:
        rows = self._rows("SELECT state, assignee FROM verdict_case WHERE case_id = ?", (case_id,))
        if not rows:
            raise CaseNotFound(case_id)
        return CaseState(rows[0][0]), str(rows[0][1])

    def _step(self, case_id: str, now: float, step: str, actor: str, detail: str = "") -> None:
        self._exec(
            "INSERT INTO verdict_case_step (case_id, at, step, actor, detail) VALUES (?, ?, ?, ?, ?)",
            (case_id, now, step, actor, detail),
        )

    def claim(self, case_id: str, actor: str, *, now: float) -> Case:
        with self._write():
            state, assignee = self._state(case_id)
            if state is CaseState.DECIDED:
                raise IllegalTransition(case_id, state.value, "claim")
            if state is CaseState.ASSIGNED and assignee != actor:
                raise IllegalTransition(case_id, state.value, "claim", f"assigned to {assignee!r}; reassign it first")
            if assignee != actor:
                self._exec("UPDATE verdict_case SET state = 'assigned', assignee = ? WHERE case_id = ?", (actor, case_id))
                self._step(case_id, now, "claimed", actor)
        return self.get(case_id)

    def assign(self, case_id: str, assignee: str, actor: str, *, now: float) -> Case:
        with self._write():
            state, _ = self._state(case_id)
            if state is CaseState.DECIDED:
                raise IllegalTransition(case_id, state.value, "assign")
            self._exec("UPDATE verdict_case SET state = 'assigned', assignee = ? WHERE case_id = ?", (assignee, case_id))
            self._step(case_id, now, "assigned", actor, assignee)
        return self.get(case_id)

    def decide(self, case_id: str, disposition: Disposition, note: str, actor: str, *, now: float) -> Case:
        with self._write():
            state, assignee = self._state(case_id)
            if state is CaseState.DECIDED:
                raise IllegalTransition(case_id, state.value, "decide", "a disposition is final")
            if state is CaseState.ASSIGNED and assignee != actor:
                raise IllegalTransition(case_id, state.value, "decide", f"assigned to {assignee!r}; reassign it first")
            self._exec(
                "UPDATE verdict_case SET state = 'decided', disposition = ?, note = ?, decided_by = ?, decided_at = ?, "
                "assignee = CASE WHEN assignee = '' THEN ? ELSE assignee END WHERE case_id = ?",
                (disposition.value, note, actor, now, actor, case_id),
            )
            self._exec(
                "INSERT INTO verdict_disposition (case_id, disposition, note, actor, decided_at) VALUES (?, ?, ?, ?, ?)",
                (case_id, disposition.value, note, actor, now),
            )
            self._step(case_id, now, "decided", actor, disposition.value)
        return self.get(case_id)

    def add_note(self, case_id: str, text: str, actor: str, *, now: float) -> Case:
        with self._write():
            self._state(case_id)  # CaseNotFound before anything is written
            self._step(case_id, now, "note", actor, text)
        return self.get(case_id)

    # -- the disposition stream ------------------------------------------------------------------

    _EVENT_SQL = (
        "SELECT d.seq, d.case_id, c.request_id, c.flow, c.version, d.disposition, d.note, d.actor, d.decided_at "
        "FROM verdict_disposition d JOIN verdict_case c ON c.case_id = d.case_id"
    )

    @staticmethod
    def _event(row: Sequence[Any]) -> CaseEvent:
        return CaseEvent(
            seq=int(row[0]), case_id=row[1], decision_id=row[1], request_id=row[2], flow=row[3], version=row[4],
            disposition=Disposition(row[5]), note=row[6], actor=row[7], decided_at=float(row[8]),
        )

    def dispositions(self, since: int = 0, limit: int = 100, *, flow: str | None = None) -> list[CaseEvent]:
        sql = self._EVENT_SQL + " WHERE d.seq > ?"
        args: list[Any] = [int(since)]
        if flow is not None:
            sql += " AND c.flow = ?"
            args.append(flow)
        sql += " ORDER BY d.seq LIMIT ?"
        args.append(max(0, min(int(limit), MAX_PAGE)))
        return [self._event(r) for r in self._rows(sql, args)]

    def unlogged(self, limit: int = 100, *, now: float, lease: float = 60.0) -> list[CaseEvent]:
        with self._write():
            rows = self._rows(
                self._EVENT_SQL + " WHERE d.logged = 0 AND (d.claimed_at IS NULL OR d.claimed_at < ?) ORDER BY d.seq LIMIT ?",
                (now - lease, max(0, min(limit, MAX_PAGE))),
            )
            for row in rows:
                self._exec("UPDATE verdict_disposition SET claimed_at = ? WHERE seq = ?", (now, int(row[0])))
        return [self._event(r) for r in rows]

    def mark_logged(self, seqs: Iterable[int]) -> None:
        with self._write():
            for seq in seqs:
                self._exec("UPDATE verdict_disposition SET logged = 1 WHERE seq = ?", (int(seq),))

    # -- outcomes --------------------------------------------------------------------------------

    def add_outcomes(self, labels: Sequence[OutcomeLabel]) -> tuple[int, int]:
        added = 0
        with self._write():
            for label in labels:
                added += self._exec(
                    "INSERT INTO verdict_outcome (decision_id, kind, occurred, source, request_id) VALUES (?, ?, ?, ?, ?) "
                    "ON CONFLICT (decision_id, kind) DO NOTHING",
                    (label.decision_id, label.kind.value, label.occurred, label.source, label.request_id),
                )
        return added, len(labels) - added

    def outcomes(self, decision_ids: Iterable[str] | None = None) -> dict[str, list[OutcomeLabel]]:
        sql = "SELECT decision_id, kind, occurred, source, request_id FROM verdict_outcome"
        rows: list[tuple[Any, ...]] = []
        if decision_ids is None:
            rows = self._rows(sql + " ORDER BY decision_id, occurred, kind")
        else:
            ids = list(dict.fromkeys(decision_ids))
            for start in range(0, len(ids), 500):  # bounded statement size
                chunk = ids[start : start + 500]
                rows += self._rows(sql + f" WHERE decision_id IN ({', '.join('?' * len(chunk))})", chunk)
        out: dict[str, list[OutcomeLabel]] = {}
        for r in rows:
            out.setdefault(r[0], []).append(OutcomeLabel(r[0], OutcomeKind(r[1]), r[2], r[3], r[4]))
        for labels in out.values():
            labels.sort(key=lambda label: (label.occurred, label.kind.value))
        return out

    def close(self) -> None:
        with self._lock, contextlib.suppress(*self._errors):
            self._conn.close()


def open_store(location: str | Path) -> SqlCaseStore:
    """The case store at ``location``: a PostgreSQL DSN, else a SQLite file path (created when
    missing, with its directory); raises ``CaseStoreError``."""
    text = str(location)
    if _DSN_RE.match(text):
        from engine.audit.postgres import redact_dsn

        return SqlCaseStore(connect_postgres(text), "postgres", redact_dsn(text))
    return SqlCaseStore(connect_sqlite(Path(text)), "sqlite", text)


def as_mapping(case: Case) -> Mapping[str, Any]:
    """A case as plain JSON-ready data (for ``verdict cases show --json`` and the console)."""
    return {
        "case_id": case.case_id, "decision_id": case.decision_id, "request_id": case.request_id, "flow": case.flow,
        "version": case.version, "route": case.route, "queue": case.queue, "priority": case.priority.value,
        "state": case.state.value, "opened_at": case.opened_at, "due_at": case.due_at, "assignee": case.assignee,
        "disposition": case.disposition.value if case.disposition else None, "note": case.note,
        "decided_by": case.decided_by, "decided_at": case.decided_at, "decided_seq": case.decided_seq,
        "links": case.links, "linked": list(case.linked), "record": case.record,
    }
