"""``policies/custom_lists.yaml``: the custom lists a policy root declares (name, kind, block or allow).

The file sits in ``policies/`` beside the flows' directories, so it travels (and hot-reloads) with
them; the sanctions and PEP *screening* lists live under ``lists/`` and are versioned files, while
custom lists are data in a store, changed without a new flow version (docs/lists.md)::

    lists:
      blocked_devices:
        kind: device            # card | customer | device | ip | email_domain
        role: block             # block | allow (what the list is for; the rule decides the action)
        description: Devices tied to confirmed fraud

A root without the file declares no list. Every problem is reported at once with its line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.custom_lists.kinds import ListKind
from engine.errors import Problem
from engine.policy.yamlio import YamlSyntaxError, load_yaml

__all__ = ["DECLARATIONS_FILE", "ListDeclaration", "read_declarations"]

DECLARATIONS_FILE = "policies/custom_lists.yaml"
LIST_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"


class ListDeclaration(BaseModel):
    """One custom list: what its entries identify and what it is for."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: ListKind
    role: Literal["block", "allow"]
    description: str = ""


class _File(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    lists: dict[str, ListDeclaration] = Field(default_factory=dict)


def read_declarations(root: Path, problems: list[Problem]) -> dict[str, ListDeclaration]:
    """The lists ``root/policies/custom_lists.yaml`` declares ({} without the file); problems appended."""
    import re

    path = Path(root) / DECLARATIONS_FILE
    if not path.is_file():
        return {}
    try:
        doc = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(Problem(DECLARATIONS_FILE, f"cannot read file: {exc}", "unreadable"))
        return {}
    except YamlSyntaxError as exc:
        problems.append(Problem(DECLARATIONS_FILE, str(exc), "yaml_syntax", line=exc.line))
        return {}
    try:
        parsed = _File.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(file)"
            problems.append(Problem(DECLARATIONS_FILE, f"{where}: {err['msg']}", "list_schema", line=doc.line_of(loc)))
        return {}
    bad = [n for n in parsed.lists if not re.match(LIST_NAME_PATTERN, n)]
    problems.extend(
        Problem(DECLARATIONS_FILE, f"list name {name!r} must be lower case letters, digits and _ (at most 64)", "list_name",
                line=doc.line_of(("lists", name)))
        for name in bad
    )
    return {n: d for n, d in parsed.lists.items() if n not in bad}
