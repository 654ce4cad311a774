"""The PolicyService servicer: the serving policy state and the last reload, for operators.

Convert in (nothing to convert), read the core (the Decider's policies and metrics, the
Reloader's last attempt), convert out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import grpc

from engine.errors import FieldError, InvalidInput, NotReady, Problem
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.status import translate_errors
from engine.grpc.wire import Malformed, tolerant_decoder
from engine.policy.loader import PolicySet
from engine.runtime.privacy import scrub_text
from engine.runtime.routing import version_key

if TYPE_CHECKING:
    from engine.policy.activation import FlowHealth
    from engine.runtime.reload import Reloader, ReloadStatus
    from engine.runtime.service import Decider

__all__ = ["POLICY_SERVICE_NAME", "PolicyStatusServicer", "policy_handlers", "status_to_response"]

POLICY_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PolicyService"].full_name


def _ms(unix: float | None) -> int:
    return round(unix * 1000) if unix else 0


def _problems_to_pb(problems: Iterable[Problem]) -> list[pb.PolicyProblem]:
    return [
        pb.PolicyProblem(path=p.path, line=p.line or 0, code=p.code, message=scrub_text(p.message), rule=p.rule or "", hint=p.hint or "",
                         severity=p.severity, flow=p.flow or "")
        for p in problems
    ]


def _reload_to_pb(status: ReloadStatus) -> pb.ReloadResult:
    return pb.ReloadResult(
        ok=status.ok,
        trigger=status.trigger,
        at_unix_ms=_ms(status.at),
        revision=status.revision,
        message=scrub_text(status.message),  # status replies pass the card-number scanner too
        problems=_problems_to_pb(status.problems),
        tests_run=status.tests_run,
        tests_failed=status.tests_failed,
        failed_tests=[scrub_text(f) for f in status.failures],
        result=status.result,
        warnings=_problems_to_pb(status.warnings),
    )


def status_to_response(policies: PolicySet, metrics: dict[str, float], reloader: Reloader | None) -> pb.StatusResponse:
    """The serving state, each flow's routing and health, the last reload and the metrics as a StatusResponse.

    A flow's state comes from the reloader's last check that did not crash; without a reloader,
    every served flow is "ok" and every flow in ``policies.unavailable`` "unavailable".
    """
    health: dict[str, FlowHealth] = {f.name: f for f in reloader.flows} if reloader is not None else {}
    flows = []
    for name in sorted(set(policies.flows) | set(policies.unavailable)):
        entry = policies.flows.get(name)
        known = health.get(name)
        if entry is None:
            problems = known.problems if known is not None else policies.unavailable.get(name, ())
            flows.append(pb.FlowStatus(name=name, state="unavailable", problems=_problems_to_pb(problems),
                                       warnings=_problems_to_pb(known.warnings if known else ())))
            continue
        challenger = entry.challenger
        flows.append(
            pb.FlowStatus(
                name=name,
                versions=sorted(entry.versions, key=version_key),
                live_version=entry.live,
                challenger_version=challenger.version if challenger else "",
                challenger_share=challenger.share if challenger else 0.0,
                challenger_key=challenger.key if challenger else "",
                shadow_versions=list(entry.shadow),
                revisions={v: f.revision for v, f in entry.versions.items()},
                routing_revision=entry.routing_revision,
                state=known.state if known is not None else "ok",
                problems=_problems_to_pb(known.problems if known else ()),
                warnings=_problems_to_pb(known.warnings if known else ()),
            )
        )
    response = pb.StatusResponse(revision=policies.revision, flows=flows, metrics=metrics, root=str(policies.root))
    if reloader is not None:
        response.serving_since_unix_ms = _ms(reloader.serving_since)
        if reloader.last is not None:
            response.last_reload.CopyFrom(_reload_to_pb(reloader.last))
    return response


class PolicyStatusServicer:
    """Serves GetStatus once a Decider (and its Reloader) are attached, and Reload once a Reloader is."""

    def __init__(self) -> None:
        self._decider: Decider | None = None
        self._reloader: Reloader | None = None

    def attach(self, decider: Decider, reloader: Reloader | None = None) -> None:
        """Report on `decider` (and the reloads of `reloader`)."""
        self._decider = decider
        self._reloader = reloader

    @translate_errors
    def GetStatus(self, request: pb.StatusRequest | Malformed, context: grpc.ServicerContext) -> pb.StatusResponse:  # noqa: N802
        """The policy status of this server; INVALID_ARGUMENT for bytes that are not a StatusRequest."""
        if isinstance(request, Malformed):
            raise InvalidInput([FieldError(request.field, request.message, request.code)])
        decider = self._decider
        if decider is None:
            raise NotReady("policies are still loading")
        return status_to_response(decider.policies, decider.metrics.snapshot(), self._reloader)

    @translate_errors
    def Reload(self, request: pb.ReloadRequest, context: grpc.ServicerContext) -> pb.ReloadResult:  # noqa: N802
        """Reload the policy root now (trigger "request"); the outcome, whether it went live or not."""
        reloader = self._reloader
        if reloader is None:
            raise NotReady("policies are still loading")
        return _reload_to_pb(reloader.reload("request"))


def policy_handlers(servicer: PolicyStatusServicer) -> dict[str, Any]:
    """The PolicyService method handlers by method name."""
    return {
        "GetStatus": grpc.unary_unary_rpc_method_handler(
            servicer.GetStatus,
            request_deserializer=tolerant_decoder(pb.StatusRequest),
            response_serializer=pb.StatusResponse.SerializeToString,
        ),
        "Reload": grpc.unary_unary_rpc_method_handler(
            servicer.Reload,
            request_deserializer=tolerant_decoder(pb.ReloadRequest),
            response_serializer=pb.ReloadResult.SerializeToString,
        ),
    }
