"""Which role may use which console route: one table, checked on every request.

Every route of the console names its entry here (``engine.console.app``); a route missing from the
table is refused to everyone (a test asserts every route has an entry). Reading is open to every
signed-in role; each change is open to the one role whose job it is (docs/console.md, "Roles").
The auditor changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.console.users import ROLES

__all__ = ["ACCESS", "allowed"]

EVERYONE = frozenset(ROLES)

ACCESS: Mapping[str, frozenset[str]] = {
    "home": EVERYONE,
    "decisions": EVERYONE,
    "decision": EVERYONE,
    "flows": EVERYONE,
    "flow": EVERYONE,
    "flow_version": EVERYONE,
    "flow_diff": EVERYONE,
    "models": EVERYONE,
    "model": EVERYONE,
    "model_plot": EVERYONE,
    "backtests": EVERYONE,
    "backtest": EVERYONE,
    "backtest_start": frozenset({"policy_owner", "analyst"}),
    "releases": EVERYONE,
    "release_propose": frozenset({"policy_owner"}),
    "release_decide": frozenset({"approver"}),
    "audit": EVERYONE,
    "cases": EVERYONE,
    "case": EVERYONE,
    "case_claim": frozenset({"analyst"}),
    "case_decide": frozenset({"analyst"}),
    "case_note": frozenset({"analyst", "policy_owner", "approver"}),  # anyone who works cases or policies; not the auditor
}


def allowed(route: str, role: str) -> bool:
    """Whether `role` may use `route` (unknown routes: nobody)."""
    return role in ACCESS.get(route, frozenset())
