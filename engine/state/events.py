"""Event types other than decisions (logins, password resets, payouts, chargebacks): their schemas.

Each type is declared in ``events/<type>.yaml`` under the policy root::

    event: password_reset
    description: The customer reset their password.
    fields:
      customer_id: {type: string, required: true, max_length: 64}
      channel: {type: category, values: [web, app, call_centre]}

``fields`` uses the same field declarations as a flow's input (engine.policy.schema.FieldSpec), and an
event is validated exactly like a request: unknown fields refused, every bad field named
(InvalidInput, gRPC INVALID_ARGUMENT). A stateful feature reads a type with ``event: <type>``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from engine.policy.schema import FieldSpec, Identifier, InputSpec, _Frozen
from engine.runtime.validation import Validator, compile_validator

__all__ = ["EventFile", "EventType", "compile_event"]

_KINDS = {"integer": "number", "number": "number", "boolean": "bool"}  # expression types; the rest are text


class EventFile(_Frozen):
    """events/<type>.yaml: the schema of one event type."""

    event: Identifier
    description: str = ""
    fields: dict[Identifier, FieldSpec] = Field(min_length=1, max_length=64)


@dataclass(frozen=True)
class EventType:
    """A loaded event type: its validator, field kinds and content hash (part of the revision of every
    flow version that reads it)."""

    name: str
    path: str
    digest: str  # sha256 of the file
    validator: Validator
    kinds: Mapping[str, str]  # field -> "number", "string" or "bool" (what a feature may sum, count distinct or filter on)

    def validate(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """The cleaned fields; raises InvalidInput naming every bad field."""
        return self.validator(raw)


def compile_event(file: EventFile, path: str, digest: str) -> EventType:
    """The EventType of a parsed file."""
    spec = InputSpec(unknown_fields="reject", fields=file.fields)
    kinds = {name: _KINDS.get(f.type, "string") for name, f in file.fields.items()}
    return EventType(file.event, path, digest, compile_validator(spec), kinds)
