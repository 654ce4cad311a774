"""Small fakes shared by the gRPC-layer unit tests: decisions, a Decider, a servicer context."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import grpc

from engine.errors import FieldError, FlowNotFound, InvalidInput, VersionNotFound
from engine.types import Action, Decision, FiredRule, Outcome, Reason


def make_decision(
    action: Action = Action.DECLINE,
    *,
    request_id: str = "req-1",
    decision_id: str = "d-1",
    score: float = 0.71,
    reasons: tuple[Reason, ...] | None = None,
    fired: tuple[FiredRule, ...] | None = None,
    models: Mapping[str, str] | None = None,
) -> Decision:
    """A complete Decision with rule and model reasons."""
    if reasons is None:
        reasons = (
            Reason("HIGH_RISK_SCORE", "The estimated probability of default is too high", "rule", "RISK-001"),
            Reason("SHORT_EMPLOYMENT", "Length of employment is too short", "model", "RISK-001", "seniority", 0.42),
        )
    if fired is None:
        fired = (
            FiredRule("RISK-001", "credit.risk_score", Action.DECLINE, "HIGH_RISK_SCORE", 80, True),
            FiredRule("AFF-002", "credit.affordability", Action.REVIEW, "INCOME_NOT_STATED", 40),
        )
    return Decision(
        decision_id=decision_id,
        request_id=request_id,
        flow="credit_application",
        version="1",
        revision="ab" * 32,
        outcome=Outcome(action, reasons, fired, {"pd": score}),
        models={"credit_default": "1@0123456789ab"} if models is None else models,
        eval_us=12.5,
        route="live",
    )


class FakeDecider:
    """Decides with a fixed rule: age under 18 declines; knows flow credit_application v1 only."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any], str, str]] = []

    def decide(
        self, flow: str, input: Mapping[str, Any], *, version: str = "", request_id: str = "", caller: str = "",
        deadline: float | None = None,
    ) -> Decision:
        self.calls.append((flow, dict(input), version, request_id))
        if not flow:
            raise InvalidInput([FieldError("flow", "is required", "required")])
        if flow != "credit_application":
            raise FlowNotFound(flow, ["credit_application"])
        if version not in ("", "1"):
            raise VersionNotFound(flow, version, ["1"])
        bad = [FieldError(k, "must be a number", "wrong_type") for k, v in input.items() if not isinstance(v, float)]
        if bad:
            raise InvalidInput(bad)
        action = Action.DECLINE if input.get("age", 30.0) < 18 else Action.APPROVE
        return make_decision(action, request_id=request_id, decision_id=f"d-{len(self.calls)}")

    def flows(self) -> dict[str, list[str]]:
        return {"credit_application": ["1"], "card_payment": ["1", "2"]}

    def live_version(self, flow: str) -> str:
        return {"credit_application": "1", "card_payment": "2"}[flow]


class AbortError(Exception):
    """What FakeContext.abort raises, like grpc's own context."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class FakeContext:
    """Records what a servicer does to its context."""

    def __init__(self, time_remaining: float | None = None) -> None:
        self.trailing: tuple[tuple[str, str], ...] = ()
        self._time_remaining = time_remaining

    def time_remaining(self) -> float | None:
        return self._time_remaining

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailing = tuple(metadata)

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise AbortError(code, details)
