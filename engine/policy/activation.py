"""Per-flow activation: which flows of a policy root may serve, and why the others may not.

``check(root, previous)`` loads and compiles the root (``engine.policy.loader``), lints it
(``engine.policy.lint``, whose errors include every load error) and runs every policy test
(``engine.policy.policytest``). Each error is tied to the flow it belongs to:

- a problem found while compiling, routing, linting or testing a flow carries its name
  (``Problem.flow``);
- otherwise by its file: ``policies/<flow>/...`` is that flow's; a rule file belongs to every flow
  whose versions apply its ruleset (even a file that does not parse, when its ``ruleset:`` line can
  be read); ``model_artifacts/<name>/<version>/...`` to every flow that runs that model (``lists/<name>/<version>/...``
  to every flow that screens against that list);
- an error that cannot be tied to any flow (e.g. a rule file whose ruleset cannot be read at all)
  holds back *every* flow, since none can be shown unaffected. A broken file that provably no flow
  uses (a rule file of an unused ruleset) holds back none, but still fails the check.

Then, flow by flow (OPA's rule: a bundle that fails is not activated, the previous one keeps
serving, and the failure is reported through status — applied per flow, not per root):

- ``ok``: no error; the flow serves what is on disk;
- ``stale``: errors; it keeps serving its last good versions and routing (from ``previous``);
- ``unavailable``: errors and no good version (a server started on a broken flow); a request for
  it gets ``FlowUnavailable`` (gRPC FAILED_PRECONDITION) naming its first problem.

A flow deleted from disk stops serving. Pure apart from reading the root; nothing is swapped here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import MappingProxyType

from engine.cases.config import is_review_file
from engine.custom_lists.declarations import DECLARATIONS_FILE
from engine.custom_lists.snapshot import ListView
from engine.errors import Problem
from engine.policy.lint import lint
from engine.policy.loader import FlowVersions, LoadResult, PolicySet, load
from engine.policy.policytest import run
from engine.policy.testcases import discover
from engine.runtime.routing import version_key

__all__ = ["Activation", "FlowHealth", "check", "owners"]


@dataclass(frozen=True)
class FlowHealth:
    """One flow after a check: its state and what holds it back."""

    name: str
    state: str  # "ok", "stale" (serves its last good version) or "unavailable" (serves nothing)
    problems: tuple[Problem, ...] = ()  # the errors that hold it back (empty when ok)
    warnings: tuple[Problem, ...] = ()
    tests_run: int = 0
    tests_failed: int = 0

    @property
    def serving(self) -> bool:
        """Whether requests for the flow are decided (by the new or the last good version)."""
        return self.state != "unavailable"


@dataclass(frozen=True)
class Activation:
    """The outcome of checking a root: the state to serve and each flow's health."""

    policies: PolicySet | None  # None when no flow can serve at all
    flows: Mapping[str, FlowHealth]
    problems: tuple[Problem, ...] = ()  # every error, with file and line
    warnings: tuple[Problem, ...] = ()  # every lint warning
    tests_run: int = 0
    tests_failed: int = 0
    failures: tuple[str, ...] = field(default=())  # failed test cases, "file:line flow version :: name: ..."
    candidate: str = ""  # the loader's revision of the root when everything loaded, else ""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong: every flow serves what is on disk."""
        return not self.problems and not self.tests_failed and all(f.state == "ok" for f in self.flows.values())

    @property
    def held_back(self) -> list[str]:
        """The flows that do not serve what is on disk (stale or unavailable), sorted."""
        return sorted(name for name, f in self.flows.items() if f.state != "ok")


def owners(problem: Problem, result: LoadResult) -> frozenset[str] | None:
    """The flows `problem` holds back; None when it cannot be tied to any (then: all of them)."""
    if is_review_file(problem.path):  # review.yaml decides nothing: the review queue keeps its last good config instead
        return frozenset()
    if problem.flow:
        return frozenset((problem.flow,))
    parts = PurePosixPath(problem.path).parts
    if problem.path == DECLARATIONS_FILE:  # the flows that use a list it fails to declare are held back by their own errors
        return frozenset()
    if len(parts) >= 2 and parts[0] == "policies":
        return frozenset((parts[1],))
    if parts and parts[0] == "rules":
        name = result.ruleset_paths.get(problem.path)
        if name is None:
            return None
        return frozenset(
            flow for flow, versions in result.flow_sources.items() if any(name in src.file.rulesets for src in versions.values())
        )
    if len(parts) >= 3 and parts[0] == "lists":  # a screening list holds back the flows that screen against it
        key = (parts[1], parts[2])
        return frozenset(
            flow
            for flow, versions in result.flow_sources.items()
            if any((s.list, s.version) == key for src in versions.values() for s in src.file.screening)
        )
    if len(parts) >= 3 and parts[0] == "model_artifacts":
        key = (parts[1], parts[2])
        return frozenset(
            flow
            for flow, versions in result.flow_sources.items()
            if any((m.name, m.version) == key for src in versions.values() for m in src.file.models)
        )
    return None


# Long (71 lines): load, lint, test, then activate flow by flow, in the order the module docstring gives;
# each step is one call, and the per-flow bookkeeping between them reads best in one place.
def check(root: Path, previous: PolicySet | None = None, custom_lists: ListView | None = None) -> Activation:
    """Load, lint and test `root`; activate flow by flow against `previous` (see the module docstring).

    Never raises for bad files (a bug in a checker does raise: the reloader reports it as a crash).
    """
    root = Path(root).resolve()
    result = load(root, custom_lists)
    suites = discover(root)
    report = lint(root, result, suites)
    tests = run(result.compiled, suites[0])
    failed = tests.failed
    test_errors = [
        Problem(r.suite, f"test {r.name!r} failed on {r.flow} {r.version}: {'; '.join(r.failures)}", "test_failed",
                line=r.line, flow=r.flow)
        for r in failed
    ]
    errors = [p for p in report.attributed if p.severity == "error"]
    broken = {p.flow for p in errors}  # a version that did not compile cannot be tested: its own errors say why
    errors += [p for p in tests.problems if p.severity == "error" and p not in errors
               and not (p.code == "test_target_missing" and p.flow in broken)]
    held: dict[str, list[Problem]] = {}
    everyone: list[Problem] = []
    for p in errors + test_errors:
        who = owners(p, result)
        if who is None:
            everyone.append(p)
        for flow in who or ():
            held.setdefault(flow, []).append(p)
    warnings = tuple(p for p in report.problems if p.severity != "error")

    on_disk = set(result.flow_sources) | set(result.flows)
    old = previous.flows if previous is not None else {}
    serving: dict[str, FlowVersions] = {}
    health: dict[str, FlowHealth] = {}
    unavailable: dict[str, tuple[Problem, ...]] = {}
    for name in sorted(on_disk | (set(old) if everyone else set())):
        mine = tuple(held.get(name, ())) + tuple(everyone)
        new = result.flows.get(name)
        if name in on_disk and not mine and new is None:  # defensive: the loader always says why
            mine = (Problem(f"policies/{name}", "no version of the flow could be loaded", "flow_not_loaded", flow=name),)
        ran = [r for r in tests.results if r.flow == name]
        counts = {"tests_run": len(ran), "tests_failed": sum(1 for r in ran if not r.passed)}
        flow_warnings = tuple(p for p in warnings if p.flow == name)
        if not mine and new is not None:
            serving[name] = new
            health[name] = FlowHealth(name, "ok", (), flow_warnings, **counts)
        elif name in old:
            serving[name] = old[name]
            health[name] = FlowHealth(name, "stale", mine, flow_warnings, **counts)
        else:
            unavailable[name] = mine
            health[name] = FlowHealth(name, "unavailable", mine, flow_warnings, **counts)

    all_errors = tuple(dict.fromkeys(errors))
    if not serving:
        policies = None
    elif result.policies is not None and not all_errors and not failed:
        policies = result.policies
        policies = PolicySet(policies.root, policies.flows, policies.revision, warnings, custom_lists=result.custom_lists,
                             events=policies.events)
    else:
        policies = PolicySet(root, MappingProxyType(serving), _state_revision(serving), warnings, MappingProxyType(unavailable),
                             custom_lists=result.custom_lists, events=MappingProxyType(result.events))
    return Activation(
        policies=policies,
        flows=MappingProxyType(health),
        problems=all_errors,
        warnings=warnings,
        tests_run=len(tests.results),
        tests_failed=len(failed),
        failures=tuple(f"{r.suite}:{r.line} {r.id}: {'; '.join(r.failures)}" for r in failed),
        candidate=result.policies.revision if result.policies is not None else "",
    )


def _state_revision(flows: Mapping[str, FlowVersions]) -> str:
    """A hash over what serves: each flow version's revision and each flow's routing file."""
    h = hashlib.sha256()
    for name in sorted(flows):
        entry = flows[name]
        for version in sorted(entry.versions, key=version_key):
            h.update(f"{name}/{version}={entry.versions[version].revision}\n".encode())
        h.update(f"{name}/routing={entry.routing_revision}\n".encode())
    return h.hexdigest()
