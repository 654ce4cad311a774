"""Who may call what: the authorization file and the decision "may this caller do this?".

Pure: no gRPC, no I/O but ``load_authz`` reading the one file. The transport half
(``engine.grpc.auth``) finds out who the caller is and which permission a method needs, then asks
here. The file (YAML, closed schema, every problem reported at once with its line)::

    callers:
      lending-app:                     # a client certificate's CN (or SAN), or a token's name
        decide: [credit_application]   # flows it may Decide ("*" = every flow)
      ops:
        decide: ["*"]
        admin: [status, list_flows]    # admin methods it may call

Admin permissions: ``status`` (PolicyService.GetStatus), ``list_flows``
(DecisionService.ListFlows), ``reload`` (PolicyService.Reload, ``verdict reload``),
``lists:write`` (ListService: change the custom lists and read them, docs/lists.md), ``cases_read``
(CaseService.ListCaseDecisions, WatchCases, GetCase), ``cases_decide`` (CaseService.DecideCase, AddCaseNote),
``outcomes_write`` (CaseService.RecordOutcomes: outcome labels for replay, backtest, training) and
``record_events`` (DecisionService.RecordEvent, engine.state). Anything not granted is denied; a caller not in the file may
call nothing that needs a permission. A denial names the caller and the method or flow asked for,
never what other callers may do (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import PermissionDenied, PolicyError, Problem
from engine.policy.yamlio import YamlSyntaxError, load_yaml

__all__ = ["ADMIN_PERMISSIONS", "AuthzPolicy", "Grant", "load_authz", "parse_authz"]

AdminPermission = Literal["status", "list_flows", "reload", "lists:write", "cases_read", "cases_decide", "outcomes_write", "record_events"]
ADMIN_PERMISSIONS: tuple[str, ...] = ("status", "list_flows", "reload", "lists:write", "cases_read", "cases_decide", "outcomes_write", "record_events")
ANY_FLOW = "*"
MAX_NAME_CHARS = 256


class _Grant(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    decide: tuple[str, ...] = Field(default=(), description="Flows the caller may Decide; '*' = every flow.")
    admin: tuple[AdminPermission, ...] = Field(default=(), description="Admin methods the caller may call.")


class _AuthzFile(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    callers: dict[str, _Grant] = Field(description="Caller name -> what it may do.")


@dataclass(frozen=True, slots=True)
class Grant:
    """What one caller may do: the flows it may Decide (or all of them) and its admin permissions."""

    flows: frozenset[str]
    all_flows: bool
    admin: frozenset[str]


class AuthzPolicy:
    """The loaded authorization file: answers "may this caller do that?" in one dict look-up."""

    def __init__(self, grants: Mapping[str, Grant]) -> None:
        self._grants = dict(grants)

    @property
    def callers(self) -> list[str]:
        """The caller names the file knows, sorted."""
        return sorted(self._grants)

    def unknown_flows(self, known: Iterable[str]) -> dict[str, list[str]]:
        """Caller -> the flows its grant names that are not in ``known`` (a typo denies silently otherwise)."""
        known_set = set(known)
        out = {name: sorted(g.flows - known_set) for name, g in self._grants.items()}
        return {name: flows for name, flows in out.items() if flows}

    def may_decide(self, caller: str, flow: str) -> bool:
        """True when ``caller`` may call Decide with ``flow``."""
        grant = self._grants.get(caller)
        return grant is not None and (grant.all_flows or flow in grant.flows)

    def may_admin(self, caller: str, permission: str) -> bool:
        """True when ``caller`` holds the admin ``permission`` (status, list_flows, reload)."""
        grant = self._grants.get(caller)
        return grant is not None and permission in grant.admin

    def check_decide(self, caller: str, flow: str) -> None:
        """Raise ``PermissionDenied`` naming caller and flow unless ``caller`` may Decide ``flow``."""
        if not self.may_decide(caller, flow):
            raise PermissionDenied(f"caller {_quote(caller)} may not call Decide with flow {_quote(flow)}")

    def check_admin(self, caller: str, permission: str, method: str) -> None:
        """Raise ``PermissionDenied`` naming caller and method unless ``caller`` holds ``permission``."""
        if not self.may_admin(caller, permission):
            raise PermissionDenied(f"caller {_quote(caller)} may not call {method} (needs admin permission {permission!r})")


def _quote(text: str) -> str:
    """``text`` quoted for a message, cut to ``MAX_NAME_CHARS`` (a client chooses flow names)."""
    return repr(text if len(text) <= MAX_NAME_CHARS else text[:MAX_NAME_CHARS] + "...")


def parse_authz(text: str, path: str = "authz.yaml") -> AuthzPolicy:
    """The policy in ``text``; raises ``PolicyError`` listing every problem with its line."""
    try:
        doc = load_yaml(text)
    except YamlSyntaxError as exc:
        raise PolicyError([Problem(path, str(exc), "yaml_syntax", line=exc.line)]) from None
    try:
        parsed = _AuthzFile.model_validate(doc.data if doc.data is not None else {})
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = tuple(err["loc"])
            where = ".".join(str(p) for p in loc) or "(file)"
            problems.append(Problem(path, f"{where}: {err['msg']}", "authz_schema", line=doc.line_of(loc)))
        raise PolicyError(problems) from None
    problems = []
    for name, grant in parsed.callers.items():
        if not name.strip() or len(name) > MAX_NAME_CHARS:
            problems.append(Problem(path, f"caller name {name!r} must be 1 to {MAX_NAME_CHARS} characters", "authz_caller", line=doc.line_of(("callers", name))))
        for i, flow in enumerate(grant.decide):
            if not flow.strip():
                problems.append(Problem(path, f"callers.{name}.decide: an empty flow name", "authz_flow", line=doc.line_of(("callers", name, "decide", i))))
    if problems:
        raise PolicyError(problems)
    return AuthzPolicy(
        {
            name: Grant(
                flows=frozenset(f for f in grant.decide if f != ANY_FLOW),
                all_flows=ANY_FLOW in grant.decide,
                admin=frozenset(grant.admin),
            )
            for name, grant in parsed.callers.items()
        }
    )


def load_authz(path: Path) -> AuthzPolicy:
    """Read and parse the authorization file at ``path``; raises ``PolicyError`` (also when unreadable)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Problem(str(path), f"cannot read the authorization file: {exc}", "authz_unreadable")]) from None
    return parse_authz(text, str(path))
