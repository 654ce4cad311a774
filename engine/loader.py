"""Load a policy root (policies/, rules/, model_artifacts/) into an immutable PolicySet.

All file I/O of policy loading happens here. Every problem in every file is collected and
reported at once; if any is an error, nothing is returned to serve (``PolicyError``).

Size: about 480 lines; ``load`` splits along its steps (read files, load models, compile versions)
in issue 13, item 2.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from engine.compiler import FlowSource, RuleSource, compile_flow
from engine.errors import ModelLoadError, PolicyError, Problem
from engine.flow import CompiledFlow, ScoringModel
from engine.release import Content, check_release, content_of
from engine.routing import Challenger
from engine.schema import FieldSpec, FlowFile, RoutingFile, RuleFile, RuleSpec, TableSpec
from engine.schema_messages import explain_errors
from engine.screening.lists import ScreeningList
from engine.state.events import EventFile, EventType, compile_event
from engine.suggest import did_you_mean
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
    routing_revision: str = ""  # sha256 of the flow's routing.yaml; "" without one (the newest version is live)


@dataclass(frozen=True)
class PolicySet:
    """Everything a server needs to decide: compiled flows by name and version."""

    root: Path
    flows: Mapping[str, FlowVersions]
    revision: str  # hash of every file that went into this state
    warnings: tuple[Problem, ...] = ()
    # Flows under the root that have no good version to serve, with the problems that keep them out
    # (per-flow activation, engine.activation); a request for one gets FlowUnavailable.
    unavailable: Mapping[str, tuple[Problem, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # Event types other than decisions, from events/<type>.yaml (engine.state.events): RecordEvent checks against them
    events: Mapping[str, EventType] = field(default_factory=lambda: MappingProxyType({}))

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
    # Every flow whose live version compiled, even when other files have errors (per-flow activation):
    flows: dict[str, FlowVersions] = field(default_factory=dict)
    ruleset_paths: dict[str, str] = field(default_factory=dict)  # rule file -> the ruleset it defines (or seems to)
    # Files that could not be read at all (their own problem is reported once): what depends on
    # them is not checked further, so one slip gives one problem instead of a cascade.
    broken_rulesets: dict[str, str] = field(default_factory=dict)  # ruleset name -> its rule file
    broken_versions: dict[str, set[str]] = field(default_factory=dict)  # flow -> versions whose flow.yaml failed
    events: dict[str, EventType] = field(default_factory=dict)  # event type -> its schema (events/<type>.yaml)

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
        problems.append(Problem(rel, str(exc), exc.code, line=exc.line, hint=exc.hint))
        return None, None, raw
    if not isinstance(doc.data, dict):
        problems.append(Problem(rel, "expected a mapping of keys at the top of the file", "not_a_mapping", line=1))
        return doc, None, raw
    try:
        return doc, schema.model_validate(doc.data), raw
    except ValidationError as exc:
        for loc, message, hint in explain_errors(schema, exc.errors()):
            rule = _rule_id_at(doc.data, loc)
            keys = [p for p in loc if isinstance(p, str) and p != "[key]"]
            problems.append(
                Problem(rel, message, "schema", line=doc.line_of(loc), rule=rule, field=keys[-1] if keys else None, hint=hint)
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


_RULESET_LINE = re.compile(rb"^ruleset:[ \t]*[\"']?([A-Za-z0-9_.-]+)", re.MULTILINE)


def _load_rules(root: Path, problems: list[Problem], broken: dict[str, str], names: dict[str, str] | None = None) -> dict[str, RuleSource]:
    """The rule files by ruleset name; a file that cannot be read goes to ``broken`` under the name it declares.

    ``names`` (when given) receives, for every rule file, the ruleset it defines or seems to.
    """
    out: dict[str, RuleSource] = {}
    for path in _yaml_files(root / "rules"):
        if path.name.endswith((".test.yaml", ".test.yml")) or "tests" in path.relative_to(root / "rules").parts[:-1]:
            continue
        doc, parsed, raw = _read_doc(root, path, RuleFile, problems)
        rel = _rel(root, path)
        if names is not None:  # which ruleset the file defines, even when it does not parse (its problems hold back that ruleset's flows)
            named = _RULESET_LINE.search(raw)
            if parsed is not None:
                names[rel] = parsed.ruleset
            elif named is not None:
                names[rel] = named.group(1).decode()
        if parsed is None or doc is None:
            named = _RULESET_LINE.search(raw)
            if named is not None:
                broken[named.group(1).decode()] = _rel(root, path)
            continue
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


def load(root: Path) -> LoadResult:  # noqa: C901, PLR0915 (runs its steps in line: split into read/load-models/compile in issue 13 item 2)
    """Read, validate and compile everything under `root`; never raises for bad files."""
    root = Path(root).resolve()
    problems: list[Problem] = []
    if not (root / "policies").is_dir():
        problems.append(Problem(str(root), "no policies/ directory under the root", "no_policies"))
        return LoadResult(None, problems)
    ruleset_paths: dict[str, str] = {}
    broken_rulesets: dict[str, str] = {}
    broken_versions: dict[str, set[str]] = {}
    rulesets = _load_rules(root, problems, broken_rulesets, ruleset_paths)

    flow_sources: dict[str, dict[str, FlowSource]] = {}
    for flow_dir in sorted(p for p in (root / "policies").iterdir() if p.is_dir()):
        for version_dir in sorted(p for p in flow_dir.iterdir() if p.is_dir()):
            path = version_dir / "flow.yaml"
            if not path.is_file():
                continue
            doc, parsed, raw = _read_doc(root, path, FlowFile, problems)
            if parsed is None or doc is None:
                flow_sources.setdefault(flow_dir.name, {})
                broken_versions.setdefault(flow_dir.name, set()).add(version_dir.name)
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
                    hint = f"referenced by {src.path}:{src.doc.line_of(('models', i))}"
                    problems.extend(Problem(_rel(root, Path(p.path)), p.message, p.code, hint=hint) for p in exc.problems)
                    models[key] = None  # type: ignore[assignment]  # reported; do not retry
    models = {k: v for k, v in models.items() if v is not None}
    lists = _load_lists(root, flow_sources, problems)
    events = _load_events(root, problems)

    flows: dict[str, FlowVersions] = {}
    contents: dict[tuple[str, str], Content] = {}
    every: dict[tuple[str, str], CompiledFlow] = {}
    state_hash = hashlib.sha256()
    for flow_name, versions in sorted(flow_sources.items()):
        first_problem = len(problems)
        compiled: dict[str, CompiledFlow] = {}
        for version, src in sorted(versions.items(), key=lambda kv: version_key(kv[0])):
            if any(name in broken_rulesets for name in src.file.rulesets):
                continue  # a rule file it needs could not be read: that file's problem says why
            revision = _revision(src, rulesets, models, lists, events)
            state_hash.update(f"{flow_name}/{version}={revision}\n".encode())
            flow, found = _compile_guarded(src, rulesets, models, revision, lists, events)
            problems.extend(_model_hints(root, src, found))
            contents[(flow_name, version)] = content = content_of(src, rulesets, models, revision, lists=lists, events=events)
            problems.extend(check_release(root, content, flow_name, version))
            if flow is not None:
                compiled[version] = flow
                every[(flow_name, version)] = flow
        routing = _routing(root, flow_name, sorted(versions, key=version_key), compiled, problems, broken_versions.get(flow_name, set()))
        state_hash.update(f"{flow_name}/routing={routing.revision}\n".encode())
        problems[first_problem:] = [replace(p, flow=p.flow or flow_name) for p in problems[first_problem:]]
        if compiled and routing.live in compiled:
            flows[flow_name] = FlowVersions(
                flow_name, MappingProxyType(compiled), routing.live, routing.challenger, routing.shadow, routing.revision
            )

    policies = None
    if not any(p.severity == "error" for p in problems):
        warnings = tuple(p for p in problems if p.severity != "error")
        policies = PolicySet(root, MappingProxyType(flows), state_hash.hexdigest(), warnings, events=MappingProxyType(events))
    return LoadResult(
        policies, problems, flow_sources=flow_sources, rule_sources=rulesets, contents=contents, compiled=every, flows=flows,
        ruleset_paths=ruleset_paths, broken_rulesets=broken_rulesets, broken_versions=broken_versions, events=events,
    )


def _compile_guarded(
    src: FlowSource, rulesets: Mapping[str, RuleSource], models: Mapping[tuple[str, str], ScoringModel], revision: str,
    lists: Mapping[tuple[str, str], ScreeningList] | None = None, events: Mapping[str, EventType] | None = None,
) -> tuple[CompiledFlow | None, list[Problem]]:
    """compile_flow, with a crash (a bug, not a bad file) reported as a problem of this flow version only."""
    try:
        flow, found = compile_flow(src, rulesets, models, revision, lists, {n: e.kinds for n, e in (events or {}).items()})
        return flow, list(found)
    except Exception as exc:  # noqa: BLE001 - one version's crash must not stop the other flows from loading
        message = f"the flow cannot be compiled: {type(exc).__name__}: {str(exc)[:300]}"
        return None, [Problem(src.path, message, "compile_failed", line=src.doc.line_of(("flow",)),
                              hint="a bug in Verdict: please report it, with the files; simplify the expressions meanwhile")]


def _model_hints(root: Path, src: FlowSource, found: list[Problem]) -> list[Problem]:
    """``found`` with a "did you mean" (or the versions there are) on each unknown_model problem."""
    out = []
    artifacts = root / "model_artifacts"
    names = sorted(p.name for p in artifacts.iterdir() if p.is_dir()) if artifacts.is_dir() else []
    for p in found:
        ref = next((r for i, r in enumerate(src.file.models) if src.doc.line_of(("models", i)) == p.line), None)
        if p.code == "unknown_model" and ref is not None:
            if ref.name in names:
                versions = sorted((q.name for q in (artifacts / ref.name).iterdir() if q.is_dir()), key=version_key)
                hint = did_you_mean(ref.version, versions) or f"versions of {ref.name}: {', '.join(versions) or 'none'}"
            else:
                hint = did_you_mean(ref.name, names) or f"models under model_artifacts/: {', '.join(names) or 'none'}"
            p = dataclasses.replace(p, hint=hint)
        out.append(p)
    return out


def _revision(
    src: FlowSource, rulesets: Mapping[str, RuleSource], models: Mapping[tuple[str, str], ScoringModel],
    lists: Mapping[tuple[str, str], ScreeningList] | None = None, events: Mapping[str, EventType] | None = None,
) -> str:
    """Content revision of a flow version: its flow file, rule files, every file of its models, its screening
    lists and the schemas of the event types its stateful features read.

    A model counts by ``content_sha256``: its card (feature order, category encodings, output),
    graph and explainer, so a change to any of them is a new revision (docs/versions-and-routing.md).
    A screening list counts by its list.yaml and entity file (engine.screening.lists).
    """
    h = hashlib.sha256()
    h.update(b"flow\0" + src.digest.encode())
    for name in src.file.rulesets:
        rs = rulesets.get(name)
        h.update(f"\0ruleset\0{name}\0{rs.digest if rs else '-'}".encode())
    for ref in src.file.models:
        m = models.get((ref.name, ref.version))
        h.update(f"\0model\0{ref.name}\0{ref.version}\0{m.content_sha256 if m else '-'}".encode())
    for spec in src.file.screening:  # absent from flows without screening: their revisions are unchanged
        lst = (lists or {}).get((spec.list, spec.version))
        h.update(f"\0list\0{spec.list}\0{spec.version}\0{lst.content_sha256 if lst else '-'}".encode())
    behaviour = src.file.behaviour
    for event in sorted({f.event for f in behaviour.features.values() if f.event} if behaviour else ()):
        schema = (events or {}).get(event)  # absent from flows without such features: their revisions are unchanged
        h.update(f"\0event\0{event}\0{schema.digest if schema else '-'}".encode())
    return h.hexdigest()


def _load_events(root: Path, problems: list[Problem]) -> dict[str, EventType]:
    """The event types under events/ (engine.state.events); each file is named after its type."""
    out: dict[str, EventType] = {}
    for path in _yaml_files(root / "events"):
        doc, parsed, raw = _read_doc(root, path, EventFile, problems)
        if parsed is None or doc is None:
            continue
        rel = _rel(root, path)
        if parsed.event != path.stem:
            problems.append(Problem(rel, f"event {parsed.event!r} does not match its file name {path.stem!r}", "event_name_mismatch",
                                    line=doc.line_of(("event",))))
            continue
        out[parsed.event] = compile_event(parsed, rel, _sha256(raw))
    return out


def _load_lists(
    root: Path, flow_sources: Mapping[str, Mapping[str, FlowSource]], problems: list[Problem],
) -> dict[tuple[str, str], ScreeningList]:
    """Every screening list a flow version names, from lists/<list>/<version>/ (problems reported once)."""
    from engine.screening.lists import ListLoadError, load_list

    lists: dict[tuple[str, str], ScreeningList | None] = {}
    for versions in flow_sources.values():
        for src in versions.values():
            for i, spec in enumerate(src.file.screening):
                key = (spec.list, spec.version)
                directory = root / "lists" / spec.list / spec.version
                if key in lists or not directory.is_dir():
                    continue  # an absent list is the compiler's unknown_list
                try:
                    lists[key] = load_list(directory, f"lists/{spec.list}/{spec.version}")
                except ListLoadError as exc:
                    where = f"referenced by {src.path}:{src.doc.line_of(('screening', i))}"
                    problems.extend(dataclasses.replace(p, hint=where) for p in exc.problems)
                    lists[key] = None
    return {k: v for k, v in lists.items() if v is not None}


@dataclass(frozen=True)
class _Routing:
    live: str
    challenger: Challenger | None = None
    shadow: tuple[str, ...] = ()
    revision: str = ""  # sha256 of routing.yaml


def _routing(
    root: Path, flow: str, versions: list[str], compiled: Mapping[str, CompiledFlow], problems: list[Problem], broken: set[str]
) -> _Routing:
    """The flow's routing file, checked against its versions (the newest is live without one).

    A version in ``broken`` (its flow.yaml could not be read; that is reported already) is not
    reported again as missing.
    """
    path = root / "policies" / flow / "routing.yaml"
    if not path.is_file():
        return _Routing(versions[-1] if versions else "")
    doc, parsed, raw = _read_doc(root, path, RoutingFile, problems)
    if parsed is None or doc is None:
        return _Routing("", revision=_sha256(raw))
    rel = _rel(root, path)
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
    return _Routing(parsed.live, challenger, tuple(parsed.shadow), _sha256(raw))


def _key_cleaner(compiled: Mapping[str, CompiledFlow], live: str, key: str) -> Callable[[Any], Any] | None:
    """The live version's cleaning of the routing key (engine.routing), or None without one."""
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


def load_policies(root: Path) -> PolicySet:
    """Load a policy root or raise PolicyError listing every problem."""
    result = load(root)
    if result.policies is None:
        raise PolicyError(result.errors or result.problems)
    return result.policies
