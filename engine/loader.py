"""Load a policy root (policies/, rules/, model_artifacts/) into an immutable PolicySet.

All file I/O of policy loading happens here. Every problem in every file is collected and
reported at once; if any is an error, nothing is returned to serve (``PolicyError``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.compiler import FlowSource, RuleSource, compile_flow
from engine.errors import ModelLoadError, PolicyError, Problem
from engine.flow import CompiledFlow, ScoringModel
from engine.release import Content, check_release, content_of
from engine.routing import Challenger
from engine.schema import FlowFile, RoutingFile, RuleFile, RuleSpec, TableSpec
from engine.yamlio import LoadedYaml, YamlSyntaxError, load_yaml

__all__ = ["FlowVersions", "LoadResult", "PolicySet", "load", "load_policies", "read_document", "version_key"]

_M = TypeVar("_M", bound=BaseModel)
MAX_POLICY_FILE_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class FlowVersions:
    """Every loaded version of one flow and which one is live."""

    name: str
    versions: Mapping[str, CompiledFlow]
    live: str
    challenger: Challenger | None = None  # decides a deterministic share of the unpinned requests
    shadow: tuple[str, ...] = ()  # versions evaluated on every request off the caller's path


@dataclass(frozen=True)
class PolicySet:
    """Everything a server needs to decide: compiled flows by name and version."""

    root: Path
    flows: Mapping[str, FlowVersions]
    revision: str  # hash of every file that went into this state
    warnings: tuple[Problem, ...] = ()

    def flow_names(self) -> list[str]:
        return sorted(self.flows)


@dataclass
class LoadResult:
    """What loading found: the policy set (None when there were errors) and every problem."""

    policies: PolicySet | None
    problems: list[Problem] = field(default_factory=list)
    # What was read, for `verdict lint` and `verdict release`, whether or not it compiled:
    flow_sources: dict[str, dict[str, FlowSource]] = field(default_factory=dict)
    rule_sources: dict[str, RuleSource] = field(default_factory=dict)
    contents: dict[tuple[str, str], Content] = field(default_factory=dict)  # (flow, version) -> content
    compiled: dict[tuple[str, str], CompiledFlow] = field(default_factory=dict)  # every version that compiled

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


def version_key(version: str) -> tuple[Any, ...]:
    """Sort key that orders '2' before '10' and 'v2' before 'v10'."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", version))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _rel(root: Path, path: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _read_doc(root: Path, path: Path, schema: type[_M], problems: list[Problem]) -> tuple[Any, _M | None, bytes]:
    rel = _rel(root, path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        problems.append(Problem(rel, f"cannot read file: {exc.strerror}", "unreadable"))
        return None, None, b""
    if len(raw) > MAX_POLICY_FILE_BYTES:
        problems.append(Problem(rel, f"file is larger than {MAX_POLICY_FILE_BYTES} bytes", "file_too_large"))
        return None, None, raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        problems.append(Problem(rel, "file is not valid UTF-8 text", "not_utf8", line=line))
        return None, None, raw
    try:
        doc = load_yaml(text)
    except YamlSyntaxError as exc:
        problems.append(Problem(rel, f"YAML syntax error: {exc}", "yaml_syntax", line=exc.line))
        return None, None, raw
    if not isinstance(doc.data, dict):
        problems.append(Problem(rel, "expected a mapping of keys at the top of the file", "not_a_mapping", line=1))
        return doc, None, raw
    try:
        return doc, schema.model_validate(doc.data), raw
    except ValidationError as exc:
        for err in exc.errors():
            loc = tuple(err["loc"])
            rule = _rule_id_at(doc.data, loc)
            where = ".".join(str(p) for p in loc) or "(top)"
            msg = err["msg"]
            if err["type"] == "extra_forbidden":
                msg = f"unknown key {loc[-1]!r}"
            elif err["type"] == "missing":
                msg = f"missing required key {loc[-1]!r}"
            problems.append(
                Problem(rel, f"{where}: {msg}", "schema", line=doc.line_of(loc), rule=rule, field=str(loc[-1]) if loc else None)
            )
        return doc, _salvage(schema, doc.data), raw


def read_document(root: Path, path: Path, schema: type[_M], problems: list[Problem]) -> tuple[LoadedYaml | None, _M | None]:
    """Read and validate one YAML file against `schema`; every problem (with its line) goes to `problems`."""
    doc, parsed, _ = _read_doc(root, path, schema, problems)
    return doc, parsed


def _salvage(schema: type[_M], data: dict[str, Any]) -> _M | None:
    """The file with its invalid rules left out, so the rest can still be checked and reported.

    The load fails anyway (the schema errors are already problems); this only lets one run report
    the mistakes in the valid-looking rules too.
    """
    if schema is not RuleFile:
        return None
    fixed = dict(data)
    placeholders: tuple[tuple[str, type[BaseModel], dict[str, Any]], ...] = (
        ("rules", RuleSpec, {"id": "invalid", "when": "false", "action": "APPROVE", "reason": "X", "enabled": False}),
        ("tables", TableSpec, _INVALID_TABLE),
    )
    for key, item_schema, placeholder in placeholders:
        items = data.get(key)
        if items is None:
            continue
        if not isinstance(items, list):
            return None
        good = []
        for item in items:
            try:
                item_schema.model_validate(item)
                good.append(item)
            except ValidationError:
                good.append(placeholder)
        fixed[key] = good
    try:  # invalid rules and tables become disabled placeholders, so each keeps its position (and line)
        return schema.model_validate(fixed)
    except ValidationError:
        return None


_INVALID_TABLE = {
    "id": "invalid",
    "hit": "collect",
    "columns": ["false"],
    "rows": [{"when": ["-"], "action": "APPROVE", "reason": "X"}],
    "enabled": False,
}


def _rule_id_at(data: Any, loc: tuple[Any, ...]) -> str | None:
    if len(loc) >= 2 and loc[0] == "rules" and isinstance(loc[1], int):
        try:
            rid = data["rules"][loc[1]].get("id")
            return str(rid) if rid is not None else None
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
    if len(loc) >= 2 and loc[0] == "tables" and isinstance(loc[1], int):
        try:
            table = data["tables"][loc[1]]
            tid = str(table.get("id", f"#{loc[1] + 1}"))
            if len(loc) >= 4 and loc[2] == "rows" and isinstance(loc[3], int):
                return str(table["rows"][loc[3]].get("id") or f"{tid}.{loc[3] + 1}")
            return tid
        except (KeyError, IndexError, TypeError, AttributeError):
            return None
    return None


def _yaml_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _load_rules(root: Path, problems: list[Problem]) -> dict[str, RuleSource]:
    out: dict[str, RuleSource] = {}
    for path in _yaml_files(root / "rules"):
        if path.name.endswith((".test.yaml", ".test.yml")) or "tests" in path.relative_to(root / "rules").parts[:-1]:
            continue
        doc, parsed, raw = _read_doc(root, path, RuleFile, problems)
        if parsed is None or doc is None:
            continue
        rel = _rel(root, path)
        if parsed.ruleset in out:
            problems.append(
                Problem(rel, f"ruleset {parsed.ruleset!r} is also defined in {out[parsed.ruleset].path}", "duplicate_ruleset", line=doc.line_of(("ruleset",)))
            )
            continue
        out[parsed.ruleset] = RuleSource(rel, doc, parsed, _sha256(raw))
    return out


def _load_model(root: Path, name: str, version: str) -> ScoringModel:
    from engine.models import load_model

    return load_model(root / "model_artifacts" / name / version)


def load(root: Path) -> LoadResult:
    """Read, validate and compile everything under `root`; never raises for bad files."""
    root = Path(root).resolve()
    problems: list[Problem] = []
    if not (root / "policies").is_dir():
        problems.append(Problem(str(root), "no policies/ directory under the root", "no_policies"))
        return LoadResult(None, problems)
    rulesets = _load_rules(root, problems)

    flow_sources: dict[str, dict[str, FlowSource]] = {}
    for flow_dir in sorted(p for p in (root / "policies").iterdir() if p.is_dir()):
        for version_dir in sorted(p for p in flow_dir.iterdir() if p.is_dir()):
            path = version_dir / "flow.yaml"
            if not path.is_file():
                continue
            doc, parsed, raw = _read_doc(root, path, FlowFile, problems)
            if parsed is None or doc is None:
                flow_sources.setdefault(flow_dir.name, {})
                continue
            rel = _rel(root, path)
            if parsed.flow != flow_dir.name:
                problems.append(Problem(rel, f"flow {parsed.flow!r} does not match its directory {flow_dir.name!r}", "flow_name_mismatch", line=doc.line_of(("flow",))))
                continue
            if parsed.version != version_dir.name:
                problems.append(Problem(rel, f"version {parsed.version!r} does not match its directory {version_dir.name!r}", "version_mismatch", line=doc.line_of(("version",))))
                continue
            flow_sources.setdefault(parsed.flow, {})[parsed.version] = FlowSource(rel, doc, parsed, _sha256(raw))

    models: dict[tuple[str, str], ScoringModel] = {}
    for versions in flow_sources.values():
        for src in versions.values():
            for i, ref in enumerate(src.file.models):
                key = (ref.name, ref.version)
                if key in models or not (root / "model_artifacts" / ref.name / ref.version).is_dir():
                    continue
                try:
                    models[key] = _load_model(root, ref.name, ref.version)
                except ModelLoadError as exc:
                    for p in exc.problems:
                        problems.append(Problem(_rel(root, Path(p.path)), p.message, p.code, hint=f"referenced by {src.path}:{src.doc.line_of(('models', i))}"))
                    models[key] = None  # type: ignore[assignment]  # reported; do not retry
    models = {k: v for k, v in models.items() if v is not None}

    flows: dict[str, FlowVersions] = {}
    contents: dict[tuple[str, str], Content] = {}
    every: dict[tuple[str, str], CompiledFlow] = {}
    state_hash = hashlib.sha256()
    for flow_name, versions in sorted(flow_sources.items()):
        compiled: dict[str, CompiledFlow] = {}
        for version, src in sorted(versions.items(), key=lambda kv: version_key(kv[0])):
            revision = _revision(src, rulesets, models)
            state_hash.update(f"{flow_name}/{version}={revision}\n".encode())
            try:
                flow, found = compile_flow(src, rulesets, models, revision)
            except Exception as exc:  # noqa: BLE001 - a flow that cannot be compiled is a problem, never a traceback
                flow, found = None, [Problem(src.path, f"the flow cannot be compiled: {type(exc).__name__}: {exc}", "compile_failed",
                                             line=src.doc.line_of(("flow",)), hint="report this as a bug, with the files")]
            problems.extend(found)
            contents[(flow_name, version)] = content = content_of(src, rulesets, models, revision)
            problems.extend(check_release(root, content, flow_name, version))
            if flow is not None:
                compiled[version] = flow
                every[(flow_name, version)] = flow
        routing = _routing(root, flow_name, sorted(versions, key=version_key), compiled, problems)
        if compiled and routing.live in compiled:
            flows[flow_name] = FlowVersions(flow_name, MappingProxyType(compiled), routing.live, routing.challenger, routing.shadow)

    read = {"flow_sources": flow_sources, "rule_sources": rulesets, "contents": contents, "compiled": every}
    errors = [p for p in problems if p.severity == "error"]
    if errors:
        return LoadResult(None, problems, **read)
    warnings = tuple(p for p in problems if p.severity != "error")
    return LoadResult(PolicySet(root, MappingProxyType(flows), state_hash.hexdigest(), warnings), problems, **read)


def _revision(src: FlowSource, rulesets: Mapping[str, RuleSource], models: Mapping[tuple[str, str], ScoringModel]) -> str:
    """Content revision of a flow version: its flow file, rule files and model files."""
    h = hashlib.sha256()
    h.update(b"flow\0" + src.digest.encode())
    for name in src.file.rulesets:
        rs = rulesets.get(name)
        h.update(f"\0ruleset\0{name}\0{rs.digest if rs else '-'}".encode())
    for ref in src.file.models:
        m = models.get((ref.name, ref.version))
        h.update(f"\0model\0{ref.name}\0{ref.version}\0{m.sha256 if m else '-'}".encode())
    return h.hexdigest()


@dataclass(frozen=True)
class _Routing:
    live: str
    challenger: Challenger | None = None
    shadow: tuple[str, ...] = ()


def _routing(root: Path, flow: str, versions: list[str], compiled: Mapping[str, CompiledFlow], problems: list[Problem]) -> _Routing:
    """The flow's routing file, checked against its versions (the newest is live without one)."""
    path = root / "policies" / flow / "routing.yaml"
    if not path.is_file():
        return _Routing(versions[-1] if versions else "")
    doc, parsed, _ = _read_doc(root, path, RoutingFile, problems)
    if parsed is None or doc is None:
        return _Routing("")
    rel = _rel(root, path)
    known = ", ".join(versions) or "none"

    def missing(version: str, what: str, loc: tuple[str | int, ...]) -> bool:
        if version in versions:
            return False
        problems.append(Problem(rel, f"{what} version {version!r} does not exist; versions: {known}", "unknown_version", line=doc.line_of(loc)))
        return True

    missing(parsed.live, "live", ("live",))
    challenger = None
    spec = parsed.challenger
    if spec is not None and not missing(spec.version, "challenger", ("challenger", "version")):
        if spec.version == parsed.live:
            problems.append(Problem(rel, f"the challenger is the live version {spec.version!r}", "challenger_is_live", line=doc.line_of(("challenger", "version"))))
        for version in (parsed.live, spec.version):
            flow_version = compiled.get(version)
            if flow_version is not None and spec.key not in flow_version.validator.fields:
                problems.append(
                    Problem(rel, f"routing key {spec.key!r} is not an input field of version {version}", "unknown_routing_key",
                            line=doc.line_of(("challenger", "key")), hint="route on a field every request carries, e.g. a customer id")
                )
        challenger = Challenger(spec.version, spec.share, spec.key)
    for i, version in enumerate(parsed.shadow):
        if not missing(version, "shadow", ("shadow", i)) and version == parsed.live:
            problems.append(Problem(rel, f"shadow version {version!r} is the live version", "shadow_is_live", line=doc.line_of(("shadow", i))))
    return _Routing(parsed.live, challenger, tuple(parsed.shadow))


def load_policies(root: Path) -> PolicySet:
    """Load a policy root or raise PolicyError listing every problem."""
    result = load(root)
    if result.policies is None:
        raise PolicyError(result.errors or result.problems)
    return result.policies
