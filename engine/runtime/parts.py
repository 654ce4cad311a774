"""The compiled parts of a flow version: its rules, and the models bound into it.

``engine.policy.compiler`` builds them once per version; ``CompiledFlow`` (engine.runtime.flow)
evaluates with them. ``ScoringModel`` is what a flow needs of a loaded model
(``engine.models.runtime.Model`` is the one implementation; tests pass doubles).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from engine.types import Action, FiredRule

__all__ = ["CompiledModel", "CompiledRule", "ScoringModel"]


class ScoringModel(Protocol):
    """What the flow needs of a loaded model (see engine.models.runtime.Model).

    ``sha256`` is the graph's; ``content_sha256`` covers every file that decides (card, graph,
    explainer) and ``files`` lists them (file name -> sha256). ``has_explainer`` is False for a
    model that gives no reasons (an anomaly detector): a rule reading its score gives its own
    reason only.
    """

    name: str
    version: str
    sha256: str
    content_sha256: str
    files: Mapping[str, str]
    feature_names: tuple[str, ...]  # the model's inputs, in the order ``encode`` lays them out

    @property
    def has_explainer(self) -> bool: ...

    def encode(self, values: Mapping[str, object]) -> np.ndarray: ...

    def score(self, x: np.ndarray) -> float: ...

    def explain(self, x: np.ndarray) -> tuple[tuple[str, float], ...]: ...

    def score_batch(self, x: np.ndarray) -> np.ndarray: ...

    def explain_batch(self, x: np.ndarray) -> list[tuple[tuple[str, float], ...]]: ...


@dataclass(frozen=True, slots=True)
class CompiledRule:
    """A rule ready to fire: its identity, outcome, and the models its condition reads."""

    id: str
    ruleset: str
    action: Action
    reason_code: str
    message: str
    priority: int
    models: tuple[int, ...]  # indexes into CompiledFlow.models
    source: str  # file:line, for messages and traces
    condition: str
    fired: FiredRule  # what the outcome lists when this rule fires (built once)


@dataclass(frozen=True, slots=True)
class CompiledModel:
    """A model bound into a flow: where its score goes and which feature reasons it gives."""

    model: ScoringModel
    output: str
    max_reasons: int
    reasons: Mapping[str, tuple[str, str]]  # feature -> (code, message)
    explains: bool = True  # False: the model has no explainer; a rule reading its score gives its own reason only
    positions: Mapping[str, int] = field(default_factory=dict)  # feature -> column of the encoded row
