"""A flow's routing file (``policies/<flow>/routing.yaml``) read and checked against its versions.

Part of loading (``engine.policy.loader``): the live version, the challenger (its share and
routing key, which must be an input field of the versions it routes between, cleaned alike) and
the shadow versions must exist and differ from the live one; every problem has file and line. What
it returns is what ``engine.runtime.routing`` resolves each request with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import Problem
from engine.policy.documents import read_doc, relative, sha256_hex
from engine.policy.schema import FieldSpec, RoutingFile
from engine.runtime.flow import CompiledFlow
from engine.runtime.routing import Challenger
from engine.suggest import did_you_mean

__all__ = ["Routing", "read_routing"]


@dataclass(frozen=True)
class Routing:
    """What a flow's routing file says, checked: live version, challenger, shadows, the file's sha256."""

    live: str
    challenger: Challenger | None = None
    shadow: tuple[str, ...] = ()
    revision: str = ""  # sha256 of routing.yaml


def read_routing(
    root: Path, flow: str, versions: list[str], compiled: Mapping[str, CompiledFlow], problems: list[Problem], broken: set[str]
) -> Routing:
    """The flow's routing file, checked against its versions (the newest is live without one).

    A version in ``broken`` (its flow.yaml could not be read; that is reported already) is not
    reported again as missing.
    """
    path = root / "policies" / flow / "routing.yaml"
    if not path.is_file():
        return Routing(versions[-1] if versions else "")
    doc, parsed, raw = read_doc(root, path, RoutingFile, problems)
    if parsed is None or doc is None:
        return Routing("", revision=sha256_hex(raw))
    rel = relative(root, path)
    known = ", ".join(versions) or "none"

    def missing(version: str, what: str, loc: tuple[str | int, ...]) -> bool:
        if version in versions:
            return False
        if version not in broken:
            close = did_you_mean(version, versions)
            problems.append(Problem(rel, f"{what} version {version!r} does not exist; versions: {known}", "unknown_version",
                                    line=doc.line_of(loc), hint=close))
        return True

    missing(parsed.live, "live", ("live",))
    challenger = None
    spec = parsed.challenger
    if spec is not None and not missing(spec.version, "challenger", ("challenger", "version")):
        if spec.version == parsed.live:
            problems.append(Problem(rel, f"the challenger is the live version {spec.version!r}", "challenger_is_live", line=doc.line_of(("challenger", "version"))))
        lacking = [v for v in dict.fromkeys((parsed.live, spec.version)) if v in compiled and spec.key not in compiled[v].validator.fields]
        if lacking:  # one problem for both versions: it is one key
            fields = {name for v in lacking for name in compiled[v].validator.fields}
            which = "version " + lacking[0] if len(lacking) == 1 else "versions " + " and ".join(lacking)
            problems.append(
                Problem(rel, f"routing key {spec.key!r} is not an input field of {which}", "unknown_routing_key",
                        line=doc.line_of(("challenger", "key")),
                        hint=did_you_mean(spec.key, fields) or "route on a field every request carries, e.g. a customer id")
            )
        challenger = Challenger(spec.version, spec.share, spec.key, clean=_key_cleaner(compiled, parsed.live, spec.key))
        _check_key_cleaning(compiled, parsed.live, spec.version, spec.key, rel, doc.line_of(("challenger", "key")), problems)
    for i, version in enumerate(parsed.shadow):
        if not missing(version, "shadow", ("shadow", i)) and version == parsed.live:
            problems.append(Problem(rel, f"shadow version {version!r} is the live version", "shadow_is_live", line=doc.line_of(("shadow", i))))
    return Routing(parsed.live, challenger, tuple(parsed.shadow), sha256_hex(raw))


def _key_cleaner(compiled: Mapping[str, CompiledFlow], live: str, key: str) -> Callable[[Any], Any] | None:
    """The live version's cleaning of the routing key (engine.runtime.routing), or None without one."""
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
