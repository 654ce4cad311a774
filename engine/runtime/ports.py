"""What the decision service (``engine.runtime.service.Decider``) calls out to, and is called with.

The service knows its collaborators only by these protocols: the decision log it records every
decision in (``DecisionSink``: ``engine.audit``), the window of idempotent retries
(``Idempotency``: ``engine.runtime.idempotency``), and one request of a batch (``Request``: the
gRPC edge's decoded calls). An edge or a wing implements them; the runtime never imports those.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from engine.runtime.idempotency import IdempotencyCache as Idempotency  # the one implementation (no Protocol copy of its signature)
from engine.runtime.privacy import Masker
from engine.types import Decision

__all__ = ["DecisionSink", "Idempotency", "Request"]


class Request(Protocol):
    """One request of a batch (``Decider.decide_many``): what ``Decider.decide`` takes."""

    @property
    def flow(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def request_id(self) -> str: ...

    @property
    def input(self) -> Mapping[str, Any]: ...


class DecisionSink(Protocol):
    """Where every decision goes before the caller sees it (the decision log).

    ``record`` returns only once the decision is durable (or raises, and the caller gets an error
    instead of an answer that was never logged). Shadow outcomes are recorded with route "shadow".
    ``delivery="unknown"`` marks a decision finished after the caller's deadline. ``masker`` is the
    deciding flow version's (``CompiledFlow.masker``): the sink stores the input as it leaves it.
    """

    def record(self, decision: Decision, raw_input: Mapping[str, Any], *, masker: Masker, delivery: str = "") -> None: ...
