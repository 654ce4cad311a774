"""Which version of a flow decides a request: live, pinned, or the challenger; and which shadow.

A flow's routing file (``policies/<flow>/routing.yaml``) names its live version and, optionally,
a challenger that receives a share of the traffic and shadow versions evaluated on every request
without their outcome being returned::

    live: "1"
    challenger: {version: "2", share: 0.1, key: customer_id}
    shadow: ["3"]

The challenger's share is deterministic: the key field's value is first cleaned as the *live*
version's input schema cleans that field (trimmed, its ``case``, a category's allowed spelling:
``engine.runtime.validation.Validator.cleaner``, the very code validation runs), then hashed (sha256 of
the flow name, key name and value) to a number in [0, 1); values below ``share`` go to the
challenger. So one customer always sees the same version however the caller spells the id
(``C00043``, ``c00043`` and ``" C00043 "`` are one customer when the field says ``case: upper``),
across requests, processes and restarts, and changing the share only moves the customers between
the old and the new share. The live version's schema is used even when the challenger's cleans the
key differently (the loader warns, ``routing_key_cleaning_differs``), so a change of challenger
never reshuffles customers. A request that pins a ``version`` gets that version ("pinned"); a
request without the key, with a key the live version's schema refuses, or with a key that is not
text, a number or true/false gets the live version.

Everything about routing is here (issue 13, item 3): the order of a flow's versions
(``version_key``: the newest is live without a routing file), the routing file's checks against
the compiled versions (``check_routing``; ``engine.policy.routing_file`` only reads the file), and
the resolution of each request to a version (``resolve``, which ``Decider`` calls). Pure: no I/O.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.errors import FlowNotFound, FlowUnavailable, Problem, VersionNotFound
from engine.suggest import did_you_mean

if TYPE_CHECKING:
    from engine.policy.loader import PolicySet
    from engine.policy.schema import FieldSpec, RoutingFile
    from engine.runtime.flow import CompiledFlow

__all__ = ["Challenger", "Routing", "bucket", "check_routing", "key_text", "resolve", "version_key"]

_SCALE = float(1 << 64)


@dataclass(frozen=True, slots=True)
class Challenger:
    """A challenger version and the deterministic share of requests it decides."""

    version: str
    share: float
    key: str
    # cleans the raw key value as the live version's validation does (None: refused); None: raw value
    clean: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)

    def takes(self, flow: str, input: Mapping[str, Any]) -> bool:
        """True when this request (by its cleaned key value) belongs to the challenger's share."""
        value = input.get(self.key)
        if self.clean is not None and value is not None:
            value = self.clean(value)
        text = key_text(value)
        return text is not None and bucket(flow, self.key, text) < self.share


def key_text(value: object) -> str | None:
    """The routing text of a key value, the same however a caller encodes it; None: not routable.

    Text is trimmed; whole numbers route the same as integers (``123`` and ``123.0``, which is how
    a ``google.protobuf.Struct`` carries numbers).
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        text = value.strip()
        return text or None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and value == value and value not in (float("inf"), float("-inf")):
        return str(int(value)) if value.is_integer() else repr(value)
    return None


def bucket(flow: str, key: str, text: str) -> float:
    """A uniform, stable number in [0, 1) for a key value of a flow."""
    digest = hashlib.sha256(f"{flow}\x00{key}\x00{text}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key that orders '2' before '10' and 'v2' before 'v10' (the newest version sorts last)."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", version))


@dataclass(frozen=True)
class Routing:
    """What a flow's routing file says, checked: live version, challenger, shadows, the file's sha256."""

    live: str
    challenger: Challenger | None = None
    shadow: tuple[str, ...] = ()
    revision: str = ""  # sha256 of routing.yaml


def resolve(policies: PolicySet, flow: str, version: str, input: Mapping[str, Any] | None) -> tuple[CompiledFlow, str]:
    """The compiled flow version a request gets, and its route: 'pinned', 'challenger' or 'live'.

    A pinned ``version`` wins; otherwise the challenger takes its share of key values (``Challenger.takes``)
    and the live version the rest. Raises FlowUnavailable (the flow is on disk but no version of it
    loaded), FlowNotFound or VersionNotFound.
    """
    entry = policies.flows.get(flow)
    if entry is None:
        if flow in policies.unavailable:  # on disk, but no version of it loaded (per-flow activation)
            raise FlowUnavailable(flow, policies.unavailable[flow])
        raise FlowNotFound(flow, list(policies.flows))
    if not version:
        challenger = entry.challenger
        if challenger is not None and input is not None and challenger.takes(flow, input):
            return entry.versions[challenger.version], "challenger"
        return entry.versions[entry.live], "live"
    compiled = entry.versions.get(version)
    if compiled is None:
        raise VersionNotFound(flow, version, list(entry.versions))
    return compiled, "pinned"


def check_routing(
    parsed: RoutingFile, rel: str, line_of: Callable[[tuple[str | int, ...]], int | None], revision: str,
    versions: Sequence[str], compiled: Mapping[str, CompiledFlow], problems: list[Problem], broken: set[str],
) -> Routing:
    """A routing file's content (``parsed``, from ``rel``) checked against the flow's ``versions``
    (ordered by ``version_key``) and the ones that ``compiled``: the live, challenger and shadow
    versions exist, differ from the live one, and the challenger's key is an input field of both
    versions, cleaned alike (a warning otherwise). Every problem goes to ``problems`` with its line
    (``line_of`` a key path); a version in ``broken`` (its flow.yaml is unreadable, reported
    already) is not reported again as missing.
    """
    known = ", ".join(versions) or "none"

    def missing(version: str, what: str, loc: tuple[str | int, ...]) -> bool:
        if version in versions:
            return False
        if version not in broken:
            close = did_you_mean(version, versions)
            problems.append(Problem(rel, f"{what} version {version!r} does not exist; versions: {known}", "unknown_version",
                                    line=line_of(loc), hint=close))
        return True

    missing(parsed.live, "live", ("live",))
    challenger = None
    spec = parsed.challenger
    if spec is not None and not missing(spec.version, "challenger", ("challenger", "version")):
        if spec.version == parsed.live:
            problems.append(Problem(rel, f"the challenger is the live version {spec.version!r}", "challenger_is_live", line=line_of(("challenger", "version"))))
        lacking = [v for v in dict.fromkeys((parsed.live, spec.version)) if v in compiled and spec.key not in compiled[v].validator.fields]
        if lacking:  # one problem for both versions: it is one key
            fields = {name for v in lacking for name in compiled[v].validator.fields}
            which = "version " + lacking[0] if len(lacking) == 1 else "versions " + " and ".join(lacking)
            problems.append(
                Problem(rel, f"routing key {spec.key!r} is not an input field of {which}", "unknown_routing_key",
                        line=line_of(("challenger", "key")),
                        hint=did_you_mean(spec.key, fields) or "route on a field every request carries, e.g. a customer id")
            )
        challenger = Challenger(spec.version, spec.share, spec.key, clean=_key_cleaner(compiled, parsed.live, spec.key))
        _check_key_cleaning(compiled, parsed.live, spec.version, spec.key, rel, line_of(("challenger", "key")), problems)
    for i, version in enumerate(parsed.shadow):
        if not missing(version, "shadow", ("shadow", i)) and version == parsed.live:
            problems.append(Problem(rel, f"shadow version {version!r} is the live version", "shadow_is_live", line=line_of(("shadow", i))))
    return Routing(parsed.live, challenger, tuple(parsed.shadow), revision)


def _key_cleaner(compiled: Mapping[str, CompiledFlow], live: str, key: str) -> Callable[[Any], Any] | None:
    """The live version's cleaning of the routing key (``Challenger.clean``), or None without one."""
    flow_version = compiled.get(live)
    if flow_version is None or key not in flow_version.validator.fields:
        return None
    return flow_version.validator.cleaner(key)


def _cleaning(spec: FieldSpec) -> tuple[Any, ...]:
    """What decides how a field's value is cleaned: its type, case and allowed category spellings."""
    return (spec.type, spec.case, tuple(sorted(spec.values or ())))


def _check_key_cleaning(
    compiled: Mapping[str, CompiledFlow], live: str, challenger: str, key: str, rel: str, line: int | None, problems: list[Problem]
) -> None:
    """Warn when the challenger cleans the routing key otherwise than the live version (which routes)."""
    a, b = compiled.get(live), compiled.get(challenger)
    if a is None or b is None or key not in a.validator.fields or key not in b.validator.fields:
        return
    if _cleaning(a.validator.fields[key]) != _cleaning(b.validator.fields[key]):
        problems.append(
            Problem(
                rel,
                f"routing key {key!r} is cleaned differently by version {live} (live) and version {challenger} "
                f"(challenger); requests are routed on the value as the live version cleans it",
                "routing_key_cleaning_differs",
                line=line,
                hint="declare the key field alike (type, case, values) in both versions",
                severity="warning",
            )
        )
