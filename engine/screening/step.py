"""The screening step of a flow: screen one input name against one list, write the result as features.

A flow's ``screening:`` entry (engine.policy.schema.ScreeningSpec) compiles to a :class:`CompiledScreen`;
evaluation calls :meth:`CompiledScreen.apply` on the validated values before derived features and
models, so rules (and derived features) read, for ``output: sanctions``:

- ``sanctions_match_score``: the best name score on the list, 0-1 (0 when the name is missing),
  also in the decision's ``scores`` (response and decision log);
- ``sanctions_list``: the list's name when the score reached its threshold, else ``""``;
- ``sanctions_entity_id``: the matched entity's id on the list, else ``""``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.screening.lists import ScreeningList
from engine.screening.match import NO_MATCH, screen

__all__ = ["FEATURE_SUFFIXES", "CompiledScreen", "feature_names"]

FEATURE_SUFFIXES = ("match_score", "list", "entity_id")


def feature_names(output: str) -> tuple[str, str, str]:
    """The three features a screening step with ``output`` writes (score, list, entity id)."""
    return (f"{output}_match_score", f"{output}_list", f"{output}_entity_id")


@dataclass(frozen=True, slots=True)
class CompiledScreen:
    """One screening step, bound to a loaded list and the flow's input fields."""

    list: ScreeningList
    name_field: str
    dob_field: str | None
    country_field: str | None
    output: str

    @property
    def score_name(self) -> str:
        """The score feature, also reported among the decision's scores (response and decision log)."""
        return f"{self.output}_match_score"

    def apply(self, values: dict[str, Any]) -> float:
        """Screen ``values[name_field]``, add the three features to ``values``; returns the score."""
        score_key, list_key, entity_key = feature_names(self.output)
        name = values.get(self.name_field)
        result = NO_MATCH if not isinstance(name, str) or not name else screen(
            self.list, name, _text(values, self.dob_field), _text(values, self.country_field))
        values[score_key] = result.score
        values[list_key] = result.list
        values[entity_key] = result.entity_id
        return result.score


def _text(values: Mapping[str, Any], field: str | None) -> str:
    v = values.get(field) if field else None
    return v if isinstance(v, str) else ""
