"""Shared fixtures of the review-queue tests: a decision record as the log keeps it, and the case
store on both backends (PostgreSQL only where VERDICT_TEST_PG_DSN names a server)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.audit.record import iso_time
from engine.cases import SqlCaseStore, open_store
from tests.pg import fresh_schema, server_dsn_or_skip

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


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlCaseStore]:
    """The case store on each backend (PostgreSQL: a fresh schema, dropped afterwards)."""
    if request.param == "sqlite":
        s = open_store(tmp_path / "cases.db")
        yield s
        s.close()
        return
    with fresh_schema(server_dsn_or_skip()) as dsn:
        s = open_store(dsn)
        try:
            yield s
        finally:
            s.close()
