"""Load a policy root (policies/, rules/, model_artifacts/) into an immutable PolicySet.

All file I/O of policy loading happens here. Every problem in every file is collected and
reported at once; if any is an error, nothing is returned to serve (``PolicyError``).

``load`` runs its steps in order: ``_load_rules`` and ``_read_flows`` (files, each read by
``engine.policy.documents``), ``load_models`` and ``load_lists`` (what the flows name, ``engine.policy.references``),
``_compile_flows`` (every version, then its routing file, ``engine.policy.routing_file``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from engine.custom_lists.declarations import read_declarations
from engine.custom_lists.snapshot import ListView
from engine.errors import PolicyError, Problem
from engine.policy.compiler import compile_flow
from engine.policy.documents import read_doc, relative, sha256_hex, yaml_files
from engine.policy.references import load_events, load_lists, load_models, model_hints
from engine.policy.release import Content, check_release, content_of
from engine.policy.routing_file import read_routing
from engine.policy.schema import FlowFile, RuleFile
from engine.policy.sources import FlowSource, ParseTrees, RuleSource
from engine.runtime.flow import CompiledFlow, ScoringModel
from engine.runtime.privacy import HashKey
from engine.runtime.routing import Challenger, Routing, version_key
from engine.screening.lists import ScreeningList
from engine.state.events import EventType

if TYPE_CHECKING:
    from engine.policy.approvals import Proposal

__all__ = ["FlowVersions", "LoadResult", "PolicySet", "load", "load_policies"]



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
    # (per-flow activation, engine.policy.activation); a request for one gets FlowUnavailable.
    unavailable: Mapping[str, tuple[Problem, ...]] = field(default_factory=lambda: MappingProxyType({}))
    # The custom lists (policies/custom_lists.yaml) the flows' ``x in list('name')`` tests read (docs/lists.md)
    custom_lists: ListView | None = None
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
    custom_lists: ListView | None = None  # the view the compiled flows' list tests read
    events: dict[str, EventType] = field(default_factory=dict)  # event type -> its schema (events/<type>.yaml)
    # The parse tree of every expression the compiler read: lint reads them instead of parsing again
    trees: ParseTrees = field(default_factory=ParseTrees)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]


_RULESET_LINE = re.compile(rb"^ruleset:[ \t]*[\"']?([A-Za-z0-9_.-]+)", re.MULTILINE)


def _load_rules(root: Path, problems: list[Problem], broken: dict[str, str], names: dict[str, str] | None = None) -> dict[str, RuleSource]:
    """The rule files by ruleset name; a file that cannot be read goes to ``broken`` under the name it declares.

    ``names`` (when given) receives, for every rule file, the ruleset it defines or seems to.
    """
    out: dict[str, RuleSource] = {}
    for path in yaml_files(root / "rules"):
        if path.name.endswith((".test.yaml", ".test.yml")) or "tests" in path.relative_to(root / "rules").parts[:-1]:
            continue
        doc, parsed, raw = read_doc(root, path, RuleFile, problems)
        rel = relative(root, path)
        if names is not None:  # which ruleset the file defines, even when it does not parse (its problems hold back that ruleset's flows)
            named = _RULESET_LINE.search(raw)
            if parsed is not None:
                names[rel] = parsed.ruleset
            elif named is not None:
                names[rel] = named.group(1).decode()
        if parsed is None or doc is None:
            named = _RULESET_LINE.search(raw)
            if named is not None:
                broken[named.group(1).decode()] = relative(root, path)
            continue
        if parsed.ruleset in out:
            problems.append(
                Problem(rel, f"ruleset {parsed.ruleset!r} is also defined in {out[parsed.ruleset].path}", "duplicate_ruleset", line=doc.line_of(("ruleset",)))
            )
            continue
        out[parsed.ruleset] = RuleSource(rel, doc, parsed, sha256_hex(raw))
    return out


def load(root: Path, custom_lists: ListView | None = None) -> LoadResult:
    """Read, validate and compile everything under `root`; never raises for bad files.

    The steps, each collecting its problems into the one list: read the rule files and flow
    files, load the models and screening lists they name, compile every flow version.

    ``custom_lists``: the view the flows' ``x in list('name')`` tests read (a server passes the one
    its store refreshes; it takes the lists ``policies/custom_lists.yaml`` declares). Without it the flows
    read a new, empty view (``LoadResult.custom_lists``; policy tests give each case its lists).
    """
    root = Path(root).resolve()
    problems: list[Problem] = []
    if not (root / "policies").is_dir():
        problems.append(Problem(str(root), "no policies/ directory under the root", "no_policies"))
        return LoadResult(None, problems)
    declared = read_declarations(root, problems)
    if custom_lists is None:
        custom_lists = ListView({}, HashKey.from_setting(None))
    custom_lists.declare(declared)
    result = LoadResult(None, problems, custom_lists=custom_lists)
    result.rule_sources = _load_rules(root, problems, result.broken_rulesets, result.ruleset_paths)
    result.flow_sources = _read_flows(root, problems, result.broken_versions)
    models = load_models(root, result.flow_sources, problems)
    lists = load_lists(root, result.flow_sources, problems)
    result.events = load_events(root, problems)
    revision = _compile_flows(root, result, models, lists)
    if not any(p.severity == "error" for p in problems):
        warnings = tuple(p for p in problems if p.severity != "error")
        result.policies = PolicySet(
            root, MappingProxyType(result.flows), revision, warnings, custom_lists=custom_lists, events=MappingProxyType(result.events)
        )
    return result


def _read_flows(root: Path, problems: list[Problem], broken_versions: dict[str, set[str]]) -> dict[str, dict[str, FlowSource]]:
    """Every ``policies/<flow>/<version>/flow.yaml`` that parses and matches its directories, by flow and version.

    A flow file that cannot be read is recorded in ``broken_versions`` (its problem says why).
    """
    flow_sources: dict[str, dict[str, FlowSource]] = {}
    for flow_dir in sorted(p for p in (root / "policies").iterdir() if p.is_dir()):
        for version_dir in sorted(p for p in flow_dir.iterdir() if p.is_dir()):
            path = version_dir / "flow.yaml"
            if not path.is_file():
                continue
            doc, parsed, raw = read_doc(root, path, FlowFile, problems)
            if parsed is None or doc is None:
                flow_sources.setdefault(flow_dir.name, {})
                broken_versions.setdefault(flow_dir.name, set()).add(version_dir.name)
                continue
            rel = relative(root, path)
            if parsed.flow != flow_dir.name:
                problems.append(Problem(rel, f"flow {parsed.flow!r} does not match its directory {flow_dir.name!r}", "flow_name_mismatch", line=doc.line_of(("flow",))))
                continue
            if parsed.version != version_dir.name:
                problems.append(Problem(rel, f"version {parsed.version!r} does not match its directory {version_dir.name!r}", "version_mismatch", line=doc.line_of(("version",))))
                continue
            flow_sources.setdefault(parsed.flow, {})[parsed.version] = FlowSource(rel, doc, parsed, sha256_hex(raw))
    return flow_sources


def _compile_flows(
    root: Path, result: LoadResult, models: Mapping[tuple[str, str], ScoringModel], lists: Mapping[tuple[str, str], ScreeningList],
) -> str:
    """Compile every version of every flow into ``result`` (compiled, contents, flows); the state's revision.

    A flow enters ``result.flows`` when its live version compiled, whatever else failed (per-flow
    activation). The revision hashes every version's content revision and every routing file.
    """
    state_hash = hashlib.sha256()
    problems = result.problems
    approvals = _approvals(root)
    for flow_name, versions in sorted(result.flow_sources.items()):
        first_problem = len(problems)
        compiled: dict[str, CompiledFlow] = {}
        for version, src in sorted(versions.items(), key=lambda kv: version_key(kv[0])):
            if any(name in result.broken_rulesets for name in src.file.rulesets):
                continue  # a rule file it needs could not be read: that file's problem says why
            revision = _revision(src, result.rule_sources, models, lists, result.events)
            state_hash.update(f"{flow_name}/{version}={revision}\n".encode())
            flow, found = _compile_guarded(src, result.rule_sources, models, revision, lists, result.custom_lists, result.events, result.trees)
            problems.extend(model_hints(root, src, found))
            result.contents[(flow_name, version)] = content = content_of(
                src, result.rule_sources, models, revision, lists=lists, events=result.events
            )
            problems.extend(check_release(root, content, flow_name, version))
            if flow is not None:
                compiled[version] = flow
                result.compiled[(flow_name, version)] = flow
        broken = result.broken_versions.get(flow_name, set())
        routing = read_routing(root, flow_name, sorted(versions, key=version_key), compiled, problems, broken)
        problems.extend(_approval_problems(root, flow_name, routing, result.contents, approvals))
        state_hash.update(f"{flow_name}/routing={routing.revision}\n".encode())
        problems[first_problem:] = [replace(p, flow=p.flow or flow_name) for p in problems[first_problem:]]
        if compiled and routing.live in compiled:
            result.flows[flow_name] = FlowVersions(
                flow_name, MappingProxyType(compiled), routing.live, routing.challenger, routing.shadow, routing.revision
            )
    return state_hash.hexdigest()


def _approvals(root: Path) -> tuple[bool, list[Problem], Mapping[str, Proposal] | None]:
    """Whether the root requires approved routing (engine.policy.approvals), its settings' problems, and the proposals."""
    from engine.policy.approvals import ApprovalError, ApprovalLog, approvals_required

    required, problems = approvals_required(root)
    if not required or problems:
        return required, problems, None
    try:
        return True, [], ApprovalLog(root).proposals()
    except ApprovalError as exc:
        return True, [Problem("approvals/audit.log", str(exc), "approvals_log_invalid")], None


def _approval_problems(
    root: Path, flow: str, routing: Routing, contents: Mapping[tuple[str, str], Content],
    approvals: tuple[bool, list[Problem], Mapping[str, Proposal] | None],
) -> list[Problem]:
    """Maker-checker: each version routing sends traffic to must be approved at its current revision."""
    from engine.policy.approvals import routing_problems

    required, broken, proposals = approvals
    if not required:
        return []
    if broken:  # the switch or the log is unreadable: every flow is held back by it (it names no flow)
        return [replace(p, flow=flow) for p in broken]
    routed = [(routing.live, "live", 1.0)] if routing.live else []
    if routing.challenger is not None and routing.challenger.share > 0:
        routed.append((routing.challenger.version, "challenger", routing.challenger.share))
    revisions = {v: c.revision for (f, v), c in contents.items() if f == flow}
    return routing_problems(root, flow, routed, revisions, f"policies/{flow}/routing.yaml", required=True, proposals=proposals)


def _compile_guarded(
    src: FlowSource, rulesets: Mapping[str, RuleSource], models: Mapping[tuple[str, str], ScoringModel], revision: str,
    lists: Mapping[tuple[str, str], ScreeningList] | None = None, custom_lists: ListView | None = None,
    events: Mapping[str, EventType] | None = None, trees: ParseTrees | None = None,
) -> tuple[CompiledFlow | None, list[Problem]]:
    """compile_flow, with a crash (a bug, not a bad file) reported as a problem of this flow version only."""
    try:
        flow, found = compile_flow(src, rulesets, models, revision, lists, custom_lists, {n: e.kinds for n, e in (events or {}).items()}, trees)
        return flow, list(found)
    except Exception as exc:  # noqa: BLE001 - one version's crash must not stop the other flows from loading
        message = f"the flow cannot be compiled: {type(exc).__name__}: {str(exc)[:300]}"
        return None, [Problem(src.path, message, "compile_failed", line=src.doc.line_of(("flow",)),
                              hint="a bug in Verdict: please report it, with the files; simplify the expressions meanwhile")]


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


def load_policies(root: Path) -> PolicySet:
    """Load a policy root or raise PolicyError listing every problem."""
    result = load(root)
    if result.policies is None:
        raise PolicyError(result.errors or result.problems)
    return result.policies
