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

The error classes are imported here (``engine.errors``: standard library only, and the CLI imports
it anyway); the rest lazily, on first use (PEP 562 ``__getattr__``): importing a submodule such as
``engine.cli`` does not import the decision service, so the CLI's start-up time does not grow.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from engine import errors as _errors
from engine.errors import *  # noqa: F403  (the error classes: the CLI imports them anyway)

if TYPE_CHECKING:  # imported on first use (below): the service pulls in the models and the loader
    from engine.runtime.service import Decider, load_decider
    from engine.types import Action, Decision, FiredRule, Outcome, Reason

__all__ = [
    "Action",
    "Decision",
    "FiredRule",
    "Outcome",
    "Reason",
    "Decider",
    "load_decider",
]
__all__ += _errors.__all__  # the error classes, Problem and FieldError (and the message helper clip)
_LAZY = {
    **dict.fromkeys(("Decider", "load_decider"), "engine.runtime.service"),
    **dict.fromkeys(("Action", "Decision", "FiredRule", "Outcome", "Reason"), "engine.types"),
}


def __getattr__(name: str) -> Any:
    """A public name of ``engine.runtime.service`` or ``engine.types``, imported from it on first use.

    Raises AttributeError for any other missing name.
    """
    if name not in _LAZY:
        raise AttributeError(f"module 'engine' has no attribute {name!r}")
    value = getattr(import_module(_LAZY[name]), name)
    globals()[name] = value  # cache: later lookups do not come back here
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
