"""The PolicyService servicer: the serving policy state and the last reload, for operators.

Convert in (nothing to convert), read the core (the Decider's policies and metrics, the
Reloader's last attempt), convert out.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import grpc

from engine.errors import NotReady
from engine.grpc.gen.verdict.v1 import decision_pb2 as pb
from engine.grpc.status import translate_errors
from engine.loader import PolicySet, version_key
from engine.privacy import scrub_text

if TYPE_CHECKING:
    from engine.reload import Reloader, ReloadStatus
    from engine.service import Decider

__all__ = ["POLICY_SERVICE_NAME", "PolicyStatusServicer", "policy_handlers", "status_to_response"]

POLICY_SERVICE_NAME = pb.DESCRIPTOR.services_by_name["PolicyService"].full_name


def _ms(unix: float | None) -> int:
    return int(round(unix * 1000)) if unix else 0


def _reload_to_pb(status: ReloadStatus) -> pb.ReloadResult:
    return pb.ReloadResult(
        ok=status.ok,
        trigger=status.trigger,
        at_unix_ms=_ms(status.at),
        revision=status.revision,
        message=scrub_text(status.message),  # status replies pass the card-number scanner too
        problems=[
            pb.PolicyProblem(
                path=p.path, line=p.line or 0, code=p.code, message=scrub_text(p.message), rule=p.rule or "", hint=p.hint or ""
            )
            for p in status.problems
        ],
        tests_run=status.tests_run,
        tests_failed=status.tests_failed,
        failed_tests=[scrub_text(f) for f in status.failures],
    )


def status_to_response(policies: PolicySet, metrics: dict[str, float], reloader: Reloader | None) -> pb.StatusResponse:
    """The serving state, its routing, the last reload and the metrics as a StatusResponse."""
    flows = []
    for name in policies.flow_names():
        entry = policies.flows[name]
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
            )
        )
    response = pb.StatusResponse(revision=policies.revision, flows=flows, metrics=metrics)
    if reloader is not None:
        response.serving_since_unix_ms = _ms(reloader.serving_since)
        if reloader.last is not None:
            response.last_reload.CopyFrom(_reload_to_pb(reloader.last))
    return response


class PolicyStatusServicer:
    """Serves GetStatus once a Decider (and its Reloader) are attached."""

    def __init__(self) -> None:
        self._decider: Decider | None = None
        self._reloader: Reloader | None = None

    def attach(self, decider: Decider, reloader: Reloader | None = None) -> None:
        """Report on `decider` (and the reloads of `reloader`)."""
        self._decider = decider
        self._reloader = reloader

    @translate_errors
    def GetStatus(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:  # noqa: N802
        """The policy status of this server."""
        decider = self._decider
        if decider is None:
            raise NotReady("policies are still loading")
        return status_to_response(decider.policies, decider.metrics.snapshot(), self._reloader)


def policy_handlers(servicer: PolicyStatusServicer) -> dict[str, Any]:
    """The PolicyService method handlers by method name."""
    return {
        "GetStatus": grpc.unary_unary_rpc_method_handler(
            servicer.GetStatus,
            request_deserializer=pb.StatusRequest.FromString,
            response_serializer=pb.StatusResponse.SerializeToString,
        ),
    }
