"""The model inventory: each model version's lifecycle state, owner, validation and approval.

``model_artifacts/registry.yaml`` lists every model version (``name/version``) with its state:

    draft -> validated (a validation report is attached) -> approved (by a named approver who
    is not the trainer) -> retired

as SR 11-7 (Federal Reserve / OCC 2011-12, "Supervisory Guidance on Model Risk Management")
asks of a model inventory: an owner, independent validation, approval before use, and a record
of restrictions and findings. :func:`inventory_problems` enforces the rule that matters at run
time: **a flow version that is released (has a release.lock) or routed (live, challenger or
shadow) may only run approved models**, and a model restricted to ``pinned`` (approved only for
callers that pin a version, e.g. because it uses a prohibited basis) may serve no routed version.
``verdict lint`` reports violations as errors, so a server refuses to activate such a flow (at
start and on hot reload) and keeps serving its last good state.

A root without ``model_artifacts/registry.yaml`` has no inventory and nothing is enforced (small
test roots); the project's root has one, and then every model a released or routed version runs
must be listed (``model_not_in_inventory``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, model_validator

from engine.closed import ClosedText
from engine.errors import Problem

__all__ = ["REGISTRY", "Inventory", "ModelEntry", "inventory_problems", "read_inventory"]

REGISTRY = "model_artifacts/registry.yaml"
State = Literal["draft", "validated", "approved", "retired"]
Person = Annotated[str, Field(min_length=3, max_length=120)]


_Frozen = ClosedText  # the one frozen base model (engine.closed)


class Validation(_Frozen):
    """Who validated the model, when, and where the validation report is."""

    by: Person
    at: date
    report: Annotated[str, Field(min_length=1, description="path of the report, relative to the root")]


class Approval(_Frozen):
    """Who approved the model for use, and when."""

    by: Person
    at: date


class Retirement(_Frozen):
    """When and why the model stopped serving."""

    at: date
    reason: str


class ModelEntry(_Frozen):
    """One model version in the inventory."""

    state: State
    owner: Person = Field(description="the accountable business owner")
    trainer: Person = Field(description="who developed and trained it")
    purpose: str = ""
    validation: Validation | None = None
    approval: Approval | None = None
    retirement: Retirement | None = None
    restriction: Literal["pinned"] | None = Field(
        default=None, description="pinned: approved only for requests that pin a flow version; no routed version may run it",
    )
    findings: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _lifecycle(self) -> ModelEntry:
        if self.state in ("validated", "approved") and self.validation is None:
            raise ValueError(f"a {self.state} model needs its validation (by, at, report)")
        if self.state == "approved":
            if self.approval is None:
                raise ValueError("an approved model needs its approval (by, at)")
            if self.approval.by.casefold() == self.trainer.casefold():
                raise ValueError("the approver must not be the trainer")
            if self.validation and self.approval.at < self.validation.at:
                raise ValueError("approval is dated before validation")
        if self.state == "retired" and self.retirement is None:
            raise ValueError("a retired model needs its retirement (at, reason)")
        if self.state in ("draft", "validated") and self.approval is not None:
            raise ValueError(f"a {self.state} model cannot carry an approval; set state: approved")
        return self


class Inventory(_Frozen):
    """The content of model_artifacts/registry.yaml."""

    models: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*/[A-Za-z0-9_.-]+$")], ModelEntry]


def read_inventory(root: Path) -> tuple[Inventory | None, list[Problem]]:
    """The root's inventory (None when there is none or it is invalid) and its problems."""
    import yaml

    path = Path(root) / REGISTRY
    if not path.is_file():
        return None, []
    try:
        inv = Inventory.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except yaml.YAMLError as exc:
        return None, [Problem(REGISTRY, f"not valid YAML: {exc}", "inventory_invalid")]
    except ValidationError as exc:
        return None, [Problem(REGISTRY, f"{'.'.join(map(str, e['loc'])) or '<file>'}: {e['msg']}", "inventory_invalid")
                      for e in exc.errors()]
    return inv, []


def inventory_problems(
    inv: Inventory, uses: Mapping[tuple[str, str], tuple[tuple[str, str], ...]], routed: set[tuple[str, str]],
    released: set[tuple[str, str]], where: Mapping[tuple[str, str], tuple[str, int | None]],
) -> list[Problem]:
    """Errors for released or routed flow versions running models that are not approved for them.

    ``uses`` maps (flow, version) to its models' (name, version); ``routed`` and ``released`` are
    the flow versions routed live/challenger/shadow and those with a release lock; ``where`` gives
    each flow version's file and line of its ``models:`` key.
    """
    out: list[Problem] = []
    for fv, models in sorted(uses.items()):
        if fv not in routed and fv not in released:
            continue
        how = "routed" if fv in routed else "released"
        path, line = where.get(fv, ("", None))
        for name, version in models:
            key = f"{name}/{version}"
            entry = inv.models.get(key)
            if entry is None:
                out.append(Problem(path, f"{fv[0]} {fv[1]} is {how} but model {key} is not in the model inventory",
                                   "model_not_in_inventory", line=line, hint=f"add it to {REGISTRY} (docs/compliance.md)"))
            elif entry.state != "approved":
                out.append(Problem(path, f"{fv[0]} {fv[1]} is {how} but model {key} is {entry.state}, not approved",
                                   "model_not_approved", line=line,
                                   hint="only approved models may serve a released or routed version; route another "
                                        "version, or record the validation and approval in " + REGISTRY))
            elif entry.restriction == "pinned" and fv in routed:
                out.append(Problem(path, f"{fv[0]} {fv[1]} is routed (live, challenger or shadow) but model {key} is "
                                   "approved only for pinned requests" + (f" ({entry.findings[0]})" if entry.findings else ""),
                                   "model_restricted", line=line, hint="route a version whose models are approved without restriction"))
    return out
