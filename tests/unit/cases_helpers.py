"""Shared fixtures of the review-queue tests: a decision record as the log keeps it, and the case
store on both backends (PostgreSQL only where VERDICT_TEST_PG_DSN names a server)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from engine.audit.record import iso_time
from engine.cases import SqlCaseStore, open_store

T0 = 1_780_000_000.0  # a fixed decision time (2026-05-28), epoch seconds


def review_record(decision_id: str, *, ts: float = T0, flow: str = "credit_application", route: str = "live",
                  action: str = "REVIEW", customer: str = "C-1", pd: float = 0.35, code: str = "PD_ELEVATED") -> dict[str, Any]:
    """A decision record shaped as engine.audit.record.decision_payload writes it (input already masked)."""
    return {
        "kind": "decision", "ts": iso_time(ts), "decision_id": decision_id, "request_id": f"req-{decision_id}",
        "flow": flow, "version": "2", "revision": "r" * 64, "route": route, "action": action,
        "reasons": [{"code": code, "message": "probability of default is elevated", "source": "rule", "rule_id": "pd_review"},
                    {"code": "MODEL_DTI", "message": "debt to income", "source": "model", "feature": "dti", "contribution": 0.12}],
        "fired": [], "scores": {"pd": pd}, "models": {"pd": "m" * 64}, "timings": {"eval_us": 40.0},
        "input": {"customer_id": customer, "income": 52000, "card_number": "411111******1111"}, "masked": ["card_number"],
    }


def _pg_store(server: str) -> Iterator[SqlCaseStore]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in server else "?"
    store = open_store(f"{server}{sep}options={quote(f'-csearch_path={schema}')}")
    try:
        yield store
    finally:
        store.close()
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlCaseStore]:
    """The case store on each backend (PostgreSQL: a fresh schema, dropped afterwards)."""
    if request.param == "sqlite":
        s = open_store(tmp_path / "cases.db")
        yield s
        s.close()
        return
    server = os.environ.get("VERDICT_TEST_PG_DSN")
    if not server:
        if os.environ.get("CI") == "true":
            pytest.fail("VERDICT_TEST_PG_DSN is not set: scripts/test_services.sh must start PostgreSQL in CI")
        pytest.skip("no PostgreSQL: run through scripts/test.sh (it starts one) or set VERDICT_TEST_PG_DSN")
    yield from _pg_store(server)
