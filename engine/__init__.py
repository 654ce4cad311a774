"""Verdict: a low-latency decision engine for financial risk (policy rules and ONNX models).

The public API, for embedding the engine in a Python process instead of calling it over gRPC::

    from engine import load_decider, InvalidInput

    decider = load_decider(Path("."))           # a policy root: policies/, rules/, model_artifacts/
    decision = decider.decide("credit_application", {"income": 4200.0, ...})
    decision.outcome.action                     # an engine.Action: APPROVE, REVIEW or DECLINE

- ``load_decider(root, *, sink=None, idempotency=None) -> Decider`` loads, validates and compiles
  a policy root; it raises ``PolicyError`` (with every ``Problem``) when the root has errors.
- ``Decider.decide`` returns a ``Decision`` (identity, versions, timings and the pure ``Outcome``:
  ``Action``, ``Reason`` list, ``FiredRule`` list, scores) and raises the ``VerdictError``
  subclasses below; ``engine.grpc.status`` maps each one to its gRPC status code.

The names are re-exported lazily (PEP 562 ``__getattr__``): importing a submodule such as
``engine.cli`` does not import the decision service, so the CLI's start-up time does not grow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the same names, eagerly, for type checkers and IDEs
    from engine.errors import (
        DeadlineExceeded,
        DecisionFailed,
        FieldError,
        FlowNotFound,
        FlowUnavailable,
        IdempotencyConflict,
        InvalidInput,
        ModelLoadError,
        NotReady,
        PermissionDenied,
        PolicyError,
        Problem,
        RequestTooLarge,
        Unauthenticated,
        VerdictError,
        VersionNotFound,
    )
    from engine.service import Decider, load_decider
    from engine.types import Action, Decision, FiredRule, Outcome, Reason

__all__ = [
    "Action",
    "DeadlineExceeded",
    "Decider",
    "Decision",
    "DecisionFailed",
    "FieldError",
    "FiredRule",
    "FlowNotFound",
    "FlowUnavailable",
    "IdempotencyConflict",
    "InvalidInput",
    "ModelLoadError",
    "NotReady",
    "Outcome",
    "PermissionDenied",
    "PolicyError",
    "Problem",
    "Reason",
    "RequestTooLarge",
    "Unauthenticated",
    "VerdictError",
    "VersionNotFound",
    "load_decider",
]

# Where each public name lives; a name is imported from its module on first use.
_HOME = {
    **dict.fromkeys(("Decider", "load_decider"), "engine.service"),
    **dict.fromkeys(("Action", "Decision", "FiredRule", "Outcome", "Reason"), "engine.types"),
}


def __getattr__(name: str) -> Any:
    """The public name ``name`` from its module (``engine.errors`` unless ``_HOME`` says otherwise).

    Raises AttributeError for a name not in ``__all__``.
    """
    if name not in __all__:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(import_module(_HOME.get(name, "engine.errors")), name)
    globals()[name] = value  # cache: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
