"""The ``behaviour:`` section of a flow file: which events count and the stateful features.

A closed schema like the rest of engine.policy.schema (frozen, unknown keys refused), so a slip is an
error with its file and line. Durations are written ``<number><unit>`` with unit ``s``, ``m``,
``h`` or ``d`` (``90s``, ``15m``, ``1h``, ``30d``); windows run from 1 second to 90 days.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

__all__ = [
    "AGGREGATES",
    "MAX_LATENESS_SECONDS",
    "MAX_WINDOW_SECONDS",
    "BehaviourSpec",
    "Duration",
    "StateFeatureSpec",
    "parse_duration",
]

MAX_WINDOW_SECONDS = 90 * 86400  # 90 days: the longest window a feature may declare
MAX_LATENESS_SECONDS = 7 * 86400  # a week: how late an event may arrive and still be placed in its window
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^([0-9]{1,7})(s|m|h|d)$")

Aggregate = Literal["count", "sum", "avg", "min", "max", "distinct", "first_seen", "last_seen", "time_since_last", "linked"]
AGGREGATES: tuple[str, ...] = Aggregate.__args__  # type: ignore[attr-defined]  # the Literal's values, one source
_NEEDS_FIELD = frozenset({"sum", "avg", "min", "max", "distinct", "linked"})


def parse_duration(text: object) -> int:
    """Seconds in a duration such as ``90s``, ``15m``, ``1h`` or ``30d``.

    Raises ValueError (pydantic reports it with the file's line) for any other form; a YAML number
    is refused too, so a unit is always written.
    """
    if not isinstance(text, str):
        raise ValueError(f"write a duration as text with a unit, e.g. '1h' or '30d', not {text!r}")
    m = _DURATION.match(text.strip())
    if m is None:
        raise ValueError(f"{text!r} is not a duration: write a whole number and a unit s, m, h or d, e.g. '15m', '24h', '30d'")
    return int(m.group(1)) * _UNITS[m.group(2)]


Duration = Annotated[int, BeforeValidator(parse_duration)]
_Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


class StateFeatureSpec(_Frozen):
    """One stateful feature: an aggregate of one event stream per key over a sliding time window."""

    aggregate: Aggregate
    key: tuple[_Identifier, ...] = Field(min_length=1, max_length=4, description="field(s) the history is kept per")
    window: Duration = Field(description="e.g. '1h', '24h', '30d'; 1s to 90d")
    field: _Identifier | None = Field(default=None, description="the value summed, averaged, ... or counted distinct; for linked, the value shared (e.g. device_id)")
    where: str | None = Field(default=None, max_length=2000, description="only events for which this expression holds")
    event: _Identifier | None = Field(
        default=None, description="the event type counted; default: this flow's own decisions (behaviour.events)",
    )
    resolution: Duration | None = Field(
        default=None, description="bucket width once a key's history outgrows its exact events; default window/60",
    )

    @model_validator(mode="before")
    @classmethod
    def _key_as_list(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("key"), str):
            return {**data, "key": [data["key"]]}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> StateFeatureSpec:
        if not 1 <= self.window <= MAX_WINDOW_SECONDS:
            raise ValueError(f"window {self.window}s is outside 1s..90d")
        if self.aggregate in _NEEDS_FIELD and self.field is None:
            raise ValueError(f"aggregate {self.aggregate} needs a 'field' (the value it reads)")
        if self.aggregate not in _NEEDS_FIELD and self.field is not None:
            raise ValueError(f"aggregate {self.aggregate} reads no 'field'")
        if self.resolution is not None and not 1 <= self.resolution <= self.window:
            raise ValueError(f"resolution {self.resolution}s must be between 1s and the window ({self.window}s)")
        if len(set(self.key)) != len(self.key):
            raise ValueError("a key lists a field twice")
        if self.aggregate == "linked" and (len(self.key) != 1 or self.field in self.key):
            raise ValueError("linked counts the other values of one key field (e.g. key: customer_id) that share "
                             "a 'field' (e.g. device_id) with this one: give one key field and a different field")
        return self

    @property
    def bucket_seconds(self) -> int:
        """The declared resolution, else window/60 (at least one second)."""
        return self.resolution if self.resolution is not None else max(1, self.window // 60)


class BehaviourSpec(_Frozen):
    """A flow's behaviour over time: which of its decisions are events, and its stateful features."""

    events: Literal["attempts", "approved", "none"] = Field(
        default="attempts",
        description="which decisions of this flow are recorded as its events: every attempt, only APPROVEs, or none",
    )
    lateness: Duration = Field(default=3600, description="how late an event may arrive and still count (e.g. '10m')")
    time_field: _Identifier | None = Field(
        default=None, description="an input field with the event time (Unix seconds); default: the server's clock",
    )
    features: dict[_Identifier, StateFeatureSpec] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _lateness(self) -> BehaviourSpec:
        if not 0 <= self.lateness <= MAX_LATENESS_SECONDS:
            raise ValueError(f"lateness {self.lateness}s is outside 0s..7d")
        return self
