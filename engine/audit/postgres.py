"""The decision log in PostgreSQL, for deployments with several replicas.

Same records, same hash chains as the segment files: each writer (one server process) appends its
own chain, starting with a ``chain`` record at seq 0. Two tables (created when missing, in the
connection's ``search_path``):

- ``verdict_audit_chain(writer, created, next_seq, last_hash)``: one row per chain; updated in the
  same transaction as every batch, so it anchors the chain's end (removing the last records of a
  chain is detected unless this row is rewritten too).
- ``verdict_audit_record(writer, seq, kind, ts, flow, decision_id, request_id, line)``: the exact
  record line, plus columns to find records by.

A batch is one transaction (``COPY`` then the chain row update) committed with PostgreSQL's
default ``synchronous_commit``: durable once ``commit`` returns. After a failed batch the store
starts a new chain under a new writer id, so an in-doubt commit can never fork a chain.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import structlog

from engine.audit.errors import AuditError
from engine.audit.follow import Gap, note_gap, seq_gaps
from engine.audit.record import FORMAT, Chain, iso_time, payload
from engine.audit.verify import ChainReport, ChainVerifier, VerifyReport
from engine.audit.writer import Meta

__all__ = ["PgSource", "PgStore", "ensure_schema", "redact_dsn"]

_log = structlog.get_logger("verdict.audit")
_LOCK_ID = 0x7665726469637421  # pg_advisory_xact_lock key serialising schema creation

SCHEMA = """
CREATE TABLE IF NOT EXISTS verdict_audit_chain (
    writer    text PRIMARY KEY,
    created   timestamptz NOT NULL DEFAULT now(),
    next_seq  bigint NOT NULL,
    last_hash text NOT NULL
);
CREATE TABLE IF NOT EXISTS verdict_audit_record (
    writer      text NOT NULL REFERENCES verdict_audit_chain (writer),
    seq         bigint NOT NULL,
    kind        text NOT NULL,
    ts          timestamptz,
    flow        text,
    decision_id text,
    request_id  text,
    line        text NOT NULL,
    PRIMARY KEY (writer, seq)
);
CREATE INDEX IF NOT EXISTS verdict_audit_record_decision ON verdict_audit_record (decision_id);
CREATE INDEX IF NOT EXISTS verdict_audit_record_flow_ts ON verdict_audit_record (flow, ts);
CREATE INDEX IF NOT EXISTS verdict_audit_record_ts ON verdict_audit_record (ts);
"""


def redact_dsn(dsn: str) -> str:
    """The DSN without its password, for messages and logs."""
    try:
        info = psycopg.conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "postgresql://…"
    host = info.get("host", "")
    return f"postgresql://{info.get('user', '')}@{host}:{info.get('port', '')}/{info.get('dbname', '')}"


def _connect(dsn: str, *, autocommit: bool = False) -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(dsn, autocommit=autocommit, connect_timeout=10)
    except psycopg.Error as exc:
        raise AuditError(f"cannot connect to {redact_dsn(dsn)}: {exc}") from None


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    """Create the log's tables if missing (safe when several replicas start at once)."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        conn.execute(SCHEMA)


def _new_writer_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def _when(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, UTC)


class PgStore:
    """Appends one writer's chain to PostgreSQL."""

    retryable = True

    def __init__(self, dsn: str, *, writer: str | None = None) -> None:
        self.dsn = dsn
        self.writer = writer or _new_writer_id()
        self._conn: psycopg.Connection[Any] | None = None
        self._next_seq = 0

    def describe(self) -> str:
        return f"{redact_dsn(self.dsn)} (writer {self.writer})"

    def open(self) -> Chain:
        """Connect, create the tables if needed and start this writer's chain."""
        conn = _connect(self.dsn)
        try:
            ensure_schema(conn)
            chain = Chain()
            created = time.time()
            header = chain.seal(
                payload({"kind": "chain", "format": FORMAT, "writer": self.writer, "created": iso_time(created)})
            )
            with conn.transaction():
                conn.execute(
                    "INSERT INTO verdict_audit_chain (writer, next_seq, last_hash) VALUES (%s, %s, %s)",
                    (self.writer, chain.seq, chain.prev),
                )
                conn.execute(
                    "INSERT INTO verdict_audit_record (writer, seq, kind, ts, line) VALUES (%s, 0, 'chain', %s, %s)",
                    (self.writer, _when(created), header.decode("utf-8")),
                )
        except psycopg.Error as exc:
            conn.close()
            raise AuditError(f"cannot start a decision log chain in {redact_dsn(self.dsn)}: {exc}") from None
        self._conn = conn
        self._next_seq = chain.seq
        return chain

    def reopen(self) -> Chain:
        """A new chain under a new writer id (after a failed batch)."""
        self.close()
        old = self.writer
        self.writer = _new_writer_id()
        chain = self.open()
        _log.warning("audit_chain_restarted", previous_writer=old, writer=self.writer)
        return chain

    def append(self, lines: Sequence[bytes], metas: Sequence[Meta | None]) -> None:
        """Insert the lines and move the chain row, in one committed transaction."""
        conn = self._conn
        if conn is None:
            raise AuditError("the PostgreSQL decision log is not open")
        first = self._next_seq
        last_hash = lines[-1][-66:-2].decode("ascii")
        with conn.transaction(), conn.cursor() as cur:
            cur.execute("SELECT next_seq FROM verdict_audit_chain WHERE writer = %s FOR UPDATE", (self.writer,))
            row = cur.fetchone()
            if row is None or row[0] != first:
                raise AuditError(f"chain {self.writer} was changed by someone else (next seq {row and row[0]}, expected {first})")
            with cur.copy(
                "COPY verdict_audit_record (writer, seq, kind, ts, flow, decision_id, request_id, line) FROM STDIN"
            ) as copy:
                for i, (line, meta) in enumerate(zip(lines, metas, strict=True)):
                    if meta is None:
                        copy.write_row((self.writer, first + i, "other", None, None, None, None, line.decode("utf-8")))
                    else:
                        copy.write_row(
                            (
                                self.writer,
                                first + i,
                                meta.kind,
                                _when(meta.ts),
                                meta.flow,
                                meta.decision_id,
                                meta.request_id,
                                line.decode("utf-8"),
                            )
                        )
            cur.execute(
                "UPDATE verdict_audit_chain SET next_seq = %s, last_hash = %s WHERE writer = %s",
                (first + len(lines), last_hash, self.writer),
            )
        self._next_seq = first + len(lines)

    def should_rotate(self) -> bool:
        return False

    def rotate(self, chain: Chain) -> None:
        return None

    def close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


class PgSource:
    """Reads and verifies the decision log in PostgreSQL."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self._conn = _connect(dsn, autocommit=True)
        try:
            exists = self._conn.execute("SELECT to_regclass('verdict_audit_record') IS NOT NULL").fetchone()
        except psycopg.Error as exc:
            self.close()
            raise AuditError(f"cannot read {redact_dsn(dsn)}: {exc}") from None
        if not exists or not exists[0]:
            self.close()
            raise AuditError(f"no decision log at {redact_dsn(dsn)}: table verdict_audit_record does not exist")

    def describe(self) -> str:
        return redact_dsn(self.dsn)

    def verify(self) -> VerifyReport:
        report = VerifyReport(self.describe())
        chains = self._conn.execute(
            "SELECT writer, next_seq, last_hash FROM verdict_audit_chain ORDER BY created, writer"
        ).fetchall()
        for writer, next_seq, last_hash in chains:
            chain = ChainReport(f"writer {writer}")
            report.chains.append(chain)
            checker = ChainVerifier(chain)
            with self._conn.transaction(), self._conn.cursor(name=f"verify_{uuid.uuid4().hex[:8]}") as cur:
                cur.itersize = 2000
                cur.execute("SELECT seq, line FROM verdict_audit_record WHERE writer = %s ORDER BY seq", (writer,))
                for seq, line in cur:
                    if checker.feed(f"writer {writer} seq {seq}", line.encode("utf-8")) is None:
                        break
            if chain.bad is None and (chain.last_seq != next_seq - 1 or chain.last_hash != last_hash):
                checker.fail(
                    f"writer {writer} seq {chain.last_seq + 1}",
                    f"the chain ends at seq {chain.last_seq} but its writer recorded {next_seq - 1}: "
                    "records at its end were removed (or the chain row was changed)",
                )
        extra = self._conn.execute(
            "SELECT count(*) FROM verdict_audit_record r WHERE NOT EXISTS "
            "(SELECT 1 FROM verdict_audit_chain c WHERE c.writer = r.writer)"
        ).fetchone()
        if extra and extra[0]:
            report.chains.append(ChainReport("orphans", bad=None))
            ChainVerifier(report.chains[-1]).fail("verdict_audit_record", f"{extra[0]} records belong to no chain")
        return report

    def chain_gaps(self) -> list[Gap]:
        """Every chain's missing records: seq numbers absent between 0 and the chain row's ``next_seq``.

        One aggregate over the records' primary key (writer, seq) finds the chains with a hole; only
        for those are the holes listed. Record lines are not read: hashes are ``verify``'s business.
        """
        rows = self._conn.execute(
            "SELECT c.writer, c.next_seq, count(r.seq), min(r.seq), max(r.seq) FROM verdict_audit_chain c "
            "LEFT JOIN verdict_audit_record r ON r.writer = c.writer "
            "GROUP BY c.writer, c.next_seq, c.created ORDER BY c.created, c.writer"
        ).fetchall()
        found: list[Gap] = []
        for writer, next_seq, present, low, high in rows:
            if present == next_seq and (present == 0 or (low == 0 and high == next_seq - 1)):
                continue
            holes = self._conn.execute(
                "SELECT seq + 1, next - 1 FROM (SELECT seq, lead(seq) OVER (ORDER BY seq) AS next "
                "FROM verdict_audit_record WHERE writer = %s) t WHERE next > seq + 1 ORDER BY seq",
                (writer,),
            ).fetchall()
            found += seq_gaps(f"writer {writer}", next_seq, present, low, high, [(int(a), int(b)) for a, b in holes])
        return found

    def _query(
        self,
        where: str,
        params: Sequence[Any],
        order: str,
        limit: int | None = None,
        *,
        gaps: list[Gap] | None = None,
        check: bool = True,
        kind: str = "decision",
    ) -> Iterator[dict[str, Any]]:
        """Decision records; with ``check``, the chains' gaps are noted (or raised) first, in the
        same snapshot (REPEATABLE READ) as the records read."""
        sql = f"SELECT line FROM verdict_audit_record WHERE kind = %s{where} ORDER BY {order}"
        params = [kind, *params]
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._conn.transaction(), self._conn.cursor(name=f"read_{uuid.uuid4().hex[:8]}") as cur:
            if check:
                self._conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                for gap in self.chain_gaps():
                    note_gap(gap, gaps)
            cur.itersize = 2000
            cur.execute(sql.encode(), params)
            for (line,) in cur:
                yield json.loads(line)

    def writers(self) -> list[str]:
        """Every chain's writer id, oldest chain first."""
        try:
            return [str(r[0]) for r in self._conn.execute("SELECT writer FROM verdict_audit_chain ORDER BY created, writer")]
        except psycopg.Error as exc:
            raise AuditError(f"cannot read {redact_dsn(self.dsn)}: {exc}") from None

    def lines_after(self, writer: str, seq: int | None, *, page: int = 2000) -> Iterator[bytes]:
        """The record lines of ``writer``'s chain after ``seq`` (all when None), in chain order, read a
        page at a time (the review queue's catch-up, engine.cases.opener)."""
        last = -1 if seq is None else seq
        while True:
            try:
                rows = self._conn.execute(
                    "SELECT seq, line FROM verdict_audit_record WHERE writer = %s AND seq > %s ORDER BY seq LIMIT %s",
                    (writer, last, page),
                ).fetchall()
            except psycopg.Error as exc:
                raise AuditError(f"cannot read {redact_dsn(self.dsn)}: {exc}") from None
            for number, line in rows:
                last = int(number)
                yield str(line).encode("utf-8")
            if len(rows) < page:
                return

    @staticmethod
    def _filters(flow: str | None, decision_id: str | None) -> tuple[str, list[Any]]:
        where = ""
        params: list[Any] = []
        if flow is not None:
            where += " AND flow = %s"
            params.append(flow)
        if decision_id is not None:
            where += " AND decision_id = %s"
            params.append(decision_id)
        return where, params

    def decisions(
        self, *, flow: str | None = None, decision_id: str | None = None, gaps: list[Gap] | None = None, kind: str = "decision"
    ) -> Iterator[dict[str, Any]]:
        """Decision records (``kind="disposition"``: disposition records) by time; a chain with
        missing records raises LogGap unless ``gaps`` is a list."""
        where, params = self._filters(flow, decision_id)
        yield from self._query(where, params, "ts, writer, seq", gaps=gaps, kind=kind)

    def last_decisions(self, n: int, *, flow: str | None = None, gaps: list[Gap] | None = None) -> list[dict[str, Any]]:
        """The last ``n`` decision records, oldest first; gaps as in ``decisions``."""
        where, params = self._filters(flow, None)
        rows = list(self._query(where, params, "ts DESC, writer DESC, seq DESC", limit=n, gaps=gaps))
        rows.reverse()
        return rows

    def recent(self, since: float) -> Iterator[dict[str, Any]]:
        """Decision records from ``since`` on (the idempotency warm-up): gaps are no concern here."""
        yield from self._query(" AND ts >= %s", [_when(since)], "ts, writer, seq", check=False)

    def count_hint(self, flow: str | None = None) -> int | None:
        where, params = self._filters(flow, None)
        row = self._conn.execute(
            f"SELECT count(*) FROM verdict_audit_record WHERE kind = 'decision'{where}".encode(),
            params,
        ).fetchone()
        return int(row[0]) if row else None

    def close(self) -> None:
        self._conn.close()

