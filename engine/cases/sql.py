"""The SQL of the case store (``engine.cases.store``): its tables, the two dialects, the connections.

SQLite (a path) and PostgreSQL (a ``postgresql://`` DSN) run the same statements; ``Dialect``
adapts placeholders, the serial column and write locking. The tables:

- ``verdict_case``: one row per case (the decision id is its id), the logged decision record as
  JSON, state, assignee, disposition.
- ``verdict_case_link``: ``(field, value)`` pairs (as logged: masked or keyed-hashed) that tie a
  case to earlier cases of the same customer, device or card.
- ``verdict_case_step``: every step (opened, claimed, assigned, decided, note) with actor and time
  (a note's text is the step's detail).
- ``verdict_disposition``: the disposition stream; ``seq`` is the cursor calling systems resume
  from. Commit order equals ``seq`` order (SQLite: one writer at a time, ``BEGIN IMMEDIATE``;
  PostgreSQL: every write transaction takes one advisory lock), so a reader that saw ``seq`` N
  never later finds a disposition below N.
- ``verdict_outcome``: outcome labels, one per (decision id, kind); re-importing is a no-op.
- ``verdict_case_cursor``: per decision-log chain, the last record seq whose REVIEW decisions
  have cases (the catch-up point after a crash; ``engine.cases.opener``).

A SQLite file is created private (mode 0600, its new directories 0700: it holds decision records,
masked as the decision log keeps them) and opened in WAL mode with ``synchronous=FULL``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path
from typing import Any

from engine.cases.errors import CaseStoreError
from engine.sqlite_wal import connect_wal

__all__ = ["CASE_COLUMNS", "PG_LOCK", "SCHEMA", "Dialect", "connect_postgres", "connect_sqlite", "db_errors", "private_file"]

PG_LOCK = 0x7665726469637443  # pg_advisory_xact_lock key serialising the store's writes

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS verdict_case (
        case_id     TEXT PRIMARY KEY,
        request_id  TEXT NOT NULL,
        flow        TEXT NOT NULL,
        version     TEXT NOT NULL,
        route       TEXT NOT NULL,
        queue       TEXT NOT NULL,
        priority    INTEGER NOT NULL,
        state       TEXT NOT NULL,
        opened_at   DOUBLE PRECISION NOT NULL,
        due_at      DOUBLE PRECISION NOT NULL,
        assignee    TEXT NOT NULL DEFAULT '',
        disposition TEXT,
        note        TEXT NOT NULL DEFAULT '',
        decided_by  TEXT NOT NULL DEFAULT '',
        decided_at  DOUBLE PRECISION,
        record      TEXT NOT NULL,
        links       TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS verdict_case_queue ON verdict_case (state, queue, priority, due_at)",
    "CREATE INDEX IF NOT EXISTS verdict_case_request ON verdict_case (request_id)",
    """CREATE TABLE IF NOT EXISTS verdict_case_link (
        field   TEXT NOT NULL,
        value   TEXT NOT NULL,
        case_id TEXT NOT NULL,
        opened_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (field, value, case_id)
    )""",
    "CREATE INDEX IF NOT EXISTS verdict_case_link_case ON verdict_case_link (case_id)",
    """CREATE TABLE IF NOT EXISTS verdict_case_step (
        case_id TEXT NOT NULL,
        at      DOUBLE PRECISION NOT NULL,
        step    TEXT NOT NULL,
        actor   TEXT NOT NULL,
        detail  TEXT NOT NULL DEFAULT ''
    )""",
    "CREATE INDEX IF NOT EXISTS verdict_case_step_case ON verdict_case_step (case_id)",
    """CREATE TABLE IF NOT EXISTS verdict_disposition (
        seq         {serial},
        case_id     TEXT NOT NULL UNIQUE,
        disposition TEXT NOT NULL,
        note        TEXT NOT NULL,
        actor       TEXT NOT NULL,
        decided_at  DOUBLE PRECISION NOT NULL,
        logged      INTEGER NOT NULL DEFAULT 0,
        claimed_at  DOUBLE PRECISION
    )""",
    """CREATE TABLE IF NOT EXISTS verdict_outcome (
        decision_id TEXT NOT NULL,
        kind        TEXT NOT NULL,
        occurred    TEXT NOT NULL,
        source      TEXT NOT NULL,
        request_id  TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (decision_id, kind)
    )""",
    """CREATE TABLE IF NOT EXISTS verdict_case_cursor (
        chain TEXT PRIMARY KEY,
        seq   BIGINT NOT NULL
    )""",
)

CASE_COLUMNS = (
    "case_id, request_id, flow, version, route, queue, priority, state, opened_at, due_at, assignee, "
    "disposition, note, decided_by, decided_at, record, links"
)


class Dialect:
    """What differs between SQLite and PostgreSQL: placeholders, the serial column, write locking."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.serial = "INTEGER PRIMARY KEY AUTOINCREMENT" if name == "sqlite" else "BIGSERIAL PRIMARY KEY"

    def sql(self, text: str) -> str:
        return text if self.name == "sqlite" else text.replace("?", "%s")


def private_file(path: Path) -> None:
    """Create ``path`` as mode 0600 (and missing parent directories as 0700) when it does not exist:
    the store holds decision records (masked, as the decision log does) and is kept as privately as
    the log (docs/decision-log.md). SQLite gives its -wal and -shm files the database file's mode."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for new in reversed(missing):
        new.mkdir(mode=0o700, exist_ok=True)
        os.chmod(new, 0o700)  # mkdir's mode is reduced by the umask
    if not path.exists():
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        os.chmod(path, 0o600)


def connect_sqlite(path: Path) -> Any:
    """A connection to the SQLite store at ``path`` (created private); raises CaseStoreError."""
    try:
        private_file(path)
        conn = connect_wal(path, timeout=30.0, synchronous="FULL")
    except (OSError, sqlite3.Error) as exc:
        raise CaseStoreError(f"cannot open the case store {path}: {exc}") from None
    return conn


def connect_postgres(dsn: str) -> Any:
    """A connection to PostgreSQL at ``dsn`` (autocommit); raises CaseStoreError, with the password redacted."""
    from engine.extras import require

    require("postgres", "a case store in PostgreSQL")
    import psycopg

    from engine.audit.postgres import redact_dsn

    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise CaseStoreError(f"cannot connect to {redact_dsn(dsn)}: {exc}") from None


def db_errors() -> tuple[type[BaseException], ...]:
    """The database errors a store call may raise: sqlite3's, and psycopg's when installed."""
    errors: list[type[BaseException]] = [sqlite3.Error]
    with contextlib.suppress(ImportError):
        import psycopg

        errors.append(psycopg.Error)
    return tuple(errors)
