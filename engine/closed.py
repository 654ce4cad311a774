"""The one frozen base model of every file and setting Verdict reads: immutable, closed to unknown keys.

STYLE.md, practice 5: the files policy owners edit are data with a closed schema. A model built on
``Closed`` cannot be changed after validation (``frozen``) and refuses a key it does not declare
(``extra="forbid"``), so a misspelt key is an error with its line, never a silently ignored
setting. ``ClosedText`` also trims the spaces around every string: for the files people type by
hand (flows, rules, tests, lists, the model registry), where a trailing space is never meant.
A section that must accept free-form extra keys (a model card's evidence) overrides ``extra``.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Closed", "ClosedText"]


class Closed(BaseModel):
    """Frozen, and an unknown key is a validation error."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ClosedText(Closed):
    """``Closed``, with the spaces around every string trimmed (pydantic merges this config into ``Closed``'s)."""

    model_config = ConfigDict(str_strip_whitespace=True)
