"""The throwaway PostgreSQL server of the tests (scripts/test_services.sh exports VERDICT_TEST_PG_DSN):
its DSN or a skip saying why (a failure under CI), and a fresh schema per test."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import quote

import pytest


def server_dsn_or_skip() -> str:
    """The server's DSN; required under CI, a skip with the reason elsewhere."""
    dsn = os.environ.get("VERDICT_TEST_PG_DSN")
    if not dsn:
        if os.environ.get("CI") == "true":
            pytest.fail("VERDICT_TEST_PG_DSN is not set: scripts/test_services.sh must start PostgreSQL in CI")
        pytest.skip("no PostgreSQL: run through scripts/test.sh (it starts one) or set VERDICT_TEST_PG_DSN")
    return dsn


@contextmanager
def fresh_schema(server_dsn: str) -> Iterator[str]:
    """A DSN whose search_path is a fresh schema of ``server_dsn``'s database, dropped afterwards."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in server_dsn else "?"
    try:
        yield f"{server_dsn}{sep}options={quote(f'-csearch_path={schema}')}"
    finally:
        with psycopg.connect(server_dsn, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
