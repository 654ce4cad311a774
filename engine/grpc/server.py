"""The gRPC server: DecisionService, PolicyService, standard health, reflection, graceful stop.

``start_server`` builds, binds and starts one server; ``RunningServer`` makes it ready (SERVING)
and stops it. Only gRPC lives here: the application that loads policies, opens the decision log,
reloads and forks workers is assembled in ``engine.app`` (the composition root).

Health (``grpc.health.v1``): ``""`` and ``verdict.v1.DecisionService`` are SERVING while the
server decides requests for at least one flow; ``verdict.v1.DecisionService/<flow>`` is SERVING
while that flow is decided (by what is on disk or, when its files have errors, by its last good
version) and NOT_SERVING when it has no good version (or was removed). ``engine.app`` updates
them after every reload (``set_flow_health``). On stop health turns NOT_SERVING, new calls are
refused and in-flight calls get the grace period to finish.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent import futures
from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from engine.grpc.auth import Security
from engine.grpc.cases import CASE_SERVICE_NAME, CaseServicer, case_handlers
from engine.grpc.lists import LIST_SERVICE_NAME, ListServicer, list_handlers
from engine.grpc.policy_status import POLICY_SERVICE_NAME, PolicyStatusServicer, policy_handlers
from engine.grpc.servicer import SERVICE_NAME, Decider, DecisionServicer, handlers
from engine.settings import Settings

__all__ = ["BindError", "RunningServer", "flow_health_name", "start_server"]

_HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


def flow_health_name(flow: str) -> str:
    """The health service name of one flow, e.g. ``verdict.v1.DecisionService/credit_application``."""
    return f"{SERVICE_NAME}/{flow}"


class BindError(OSError):
    """The server could not bind its address (in use, or not a local address)."""


@dataclass
class RunningServer:
    """A started server and the handles to make it ready and to stop it."""

    server: grpc.Server
    port: int
    servicer: DecisionServicer
    health: health.HealthServicer
    policy_status: PolicyStatusServicer = field(default_factory=PolicyStatusServicer)
    lists: ListServicer = field(default_factory=ListServicer)
    cases: CaseServicer = field(default_factory=CaseServicer)
    _flows: set[str] = field(default_factory=set)  # flows with a health status

    def ready(self, decider: Decider) -> None:
        """Serve ``decider`` and report SERVING, overall and per service (and per flow it serves)."""
        self.servicer.ready(decider)
        if hasattr(decider, "metrics"):  # the core Decider (test fakes may not have one)
            self.policy_status.attach(decider)  # type: ignore[arg-type]
        for service in ("", SERVICE_NAME):
            self.health.set(service, health_pb2.HealthCheckResponse.SERVING)
        policies = getattr(decider, "policies", None) if getattr(decider, "ready", False) else None
        if policies is not None:
            self.set_flow_health({name: True for name in policies.flows} | {name: False for name in policies.unavailable})

    def set_flow_health(self, serving: Mapping[str, bool]) -> None:
        """Set ``verdict.v1.DecisionService/<flow>`` for each flow (True: SERVING); flows gone get NOT_SERVING."""
        for name in self._flows - set(serving):
            self.health.set(flow_health_name(name), health_pb2.HealthCheckResponse.NOT_SERVING)
        for name, up in serving.items():
            status = health_pb2.HealthCheckResponse.SERVING if up else health_pb2.HealthCheckResponse.NOT_SERVING
            self.health.set(flow_health_name(name), status)
        self._flows = set(serving)

    def stop(self, grace: float | None) -> None:
        """Report NOT_SERVING, refuse new calls, give in-flight ones ``grace`` seconds; block until done."""
        self.health.enter_graceful_shutdown()
        stopped = self.server.stop(grace)  # refuses new calls from here on
        self.cases.stop()  # then the open WatchCases streams end, so they do not hold the grace period
        stopped.wait()


def start_server(
    settings: Settings, decider: Decider | None = None, *, reuse_port: bool = False, security: Security | None = None
) -> RunningServer:
    """Build, bind and start a server; SERVING at once if ``decider`` is given, else after ``ready``.

    ``security`` (TLS credentials, tokens, authorization) is read from ``settings`` when not given;
    raises ``PolicyError`` when those files are unreadable or invalid, ``BindError`` when the
    address cannot be bound.
    """
    if security is None:
        security = Security.from_settings(settings)
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 1 if reuse_port else 0),  # off: a port in use is an error, not shared
    ]
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.threads, thread_name_prefix="verdict-rpc"),
        options=options,
        interceptors=list(security.interceptors()),
    )
    servicer = DecisionServicer()
    method_handlers = handlers(servicer)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE_NAME, method_handlers),))
    server.add_registered_method_handlers(SERVICE_NAME, method_handlers)
    policy_status = PolicyStatusServicer()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(POLICY_SERVICE_NAME, policy_handlers(policy_status)),)
    )
    lists = ListServicer()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(LIST_SERVICE_NAME, list_handlers(lists)),))
    cases = CaseServicer()
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(CASE_SERVICE_NAME, case_handlers(cases)),))

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for service in ("", SERVICE_NAME):
        health_servicer.set(service, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        (SERVICE_NAME, POLICY_SERVICE_NAME, LIST_SERVICE_NAME, CASE_SERVICE_NAME, _HEALTH_SERVICE, reflection.SERVICE_NAME), server
    )

    try:
        if security.tls:
            port = server.add_secure_port(settings.address, security.server_credentials())
        else:
            port = server.add_insecure_port(settings.address)
    except RuntimeError as exc:  # grpcio raises RuntimeError when it cannot bind
        raise BindError(f"cannot listen on {settings.address}: {exc}") from None
    if port == 0:
        raise BindError(f"cannot listen on {settings.address}")
    server.start()
    running = RunningServer(server=server, port=port, servicer=servicer, health=health_servicer, policy_status=policy_status,
                            lists=lists, cases=cases)
    if decider is not None:
        running.ready(decider)
    return running
