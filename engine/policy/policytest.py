"""Run policy test cases against compiled flows and report, readably, what failed and why.

``verdict test`` and the hot reloader's self-test both use ``run``: every case is decided by the
pure ``CompiledFlow.evaluate`` of the version it targets and compared with what it expects. The
report also lists the rules that no case fired, per flow version (``uncovered``).
"""

from __future__ import annotations

import contextlib
import functools
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from engine.custom_lists.kinds import entry_key
from engine.custom_lists.snapshot import Entry, ListSnapshot
from engine.errors import InvalidInput, Problem, VerdictError, format_problem
from engine.policy.loader import PolicySet, load
from engine.policy.testcases import Case, Match, TestSuite, discover
from engine.runtime.flow import CompiledFlow, CompiledRule
from engine.runtime.routing import version_key
from engine.suggest import did_you_mean
from engine.types import Outcome

__all__ = ["CaseResult", "TestReport", "format_report", "run", "run_root"]

_CMP = re.compile(r"^(<=|>=|==|!=|<|>)\s*(-?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)$")
_INTERVAL = re.compile(r"^([\[(])\s*(-?[0-9.eE+-]+)\s*\.\.\s*(-?[0-9.eE+-]+)\s*([\])])$")


@dataclass(frozen=True)
class CaseResult:
    """The result of one case on one flow version."""

    suite: str  # file path under the root
    line: int | None
    flow: str
    version: str
    name: str
    failures: tuple[str, ...]
    outcome: Outcome | None = None
    error: str | None = None
    rules: Mapping[str, CompiledRule] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def id(self) -> str:
        return f"{self.flow} {self.version} :: {self.name}"


@dataclass
class TestReport:
    """Every case's result, the problems that kept tests from running, and uncovered rules."""

    __test__ = False

    results: list[CaseResult] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    uncovered: dict[tuple[str, str], list[CompiledRule]] = field(default_factory=dict)
    untested: list[tuple[str, str]] = field(default_factory=list)  # loaded versions no case ran against

    @property
    def failed(self) -> list[CaseResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        """True when at least one case ran, none failed and nothing kept a test from running."""
        return bool(self.results) and not self.failed and not [p for p in self.problems if p.severity == "error"]


def _score_ok(value: float, spec: str) -> bool | None:
    """Whether `value` is in the range `spec` ('>= 0.6', '[0.2..0.5)'); None if spec is unreadable."""
    text = spec.strip()
    m = _CMP.match(text)
    if m:
        op, bound = m.group(1), float(m.group(2))
        return {"<": value < bound, "<=": value <= bound, ">": value > bound, ">=": value >= bound,
                "==": math.isclose(value, bound, rel_tol=1e-9, abs_tol=1e-12), "!=": value != bound}[op]
    m = _INTERVAL.match(text)
    if m:
        lo, hi = float(m.group(2)), float(m.group(3))
        above = value >= lo if m.group(1) == "[" else value > lo
        below = value <= hi if m.group(4) == "]" else value < hi
        return above and below
    return None


def _fmt_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(items) + "]"


def _check_list(what: str, expected: tuple[str, ...] | Match, actual: list[str], *, ordered: bool) -> list[str]:
    out: list[str] = []
    if isinstance(expected, Match):
        if expected.exactly is not None:
            out += _check_list(what, expected.exactly, actual, ordered=ordered)
        missing = [x for x in expected.contains if x not in actual]
        if missing:
            out.append(f"{what}: expected to contain {_fmt_list(missing)}, got {_fmt_list(actual)}")
        present = [x for x in expected.excludes if x in actual]
        if present:
            out.append(f"{what}: expected not to contain {_fmt_list(present)}, got {_fmt_list(actual)}")
        return out
    same = list(expected) == actual if ordered else sorted(expected) == sorted(actual)
    if not same:
        order = "" if ordered else " (any order)"
        out.append(f"{what}: expected {_fmt_list(expected)}{order}, got {_fmt_list(actual)}")
    return out


def case_lists(flow: CompiledFlow, case: Case) -> ListSnapshot:
    """The custom lists a case runs with: its ``lists:`` entries, nothing else (the store's are not read).

    Raises ValueError naming an undeclared list or an entry that is not one of its kind.
    """
    view = flow.custom_lists
    entries = []
    for name, values in case.lists.items():
        kind = view.kinds.get(name) if view is not None else None
        if view is None or kind is None:
            raise ValueError(f"lists: {name!r} is not declared in policies/custom_lists.yaml")
        for value in values:
            try:
                entries.append(Entry(name, entry_key(kind, value, view.key)))
            except ValueError as exc:
                raise ValueError(f"lists: {name}: {exc}") from None
    return ListSnapshot(entries, view.kinds if view is not None else {})


def _run_case(suite: TestSuite, index: int, case: Case, flow: CompiledFlow) -> CaseResult:  # noqa: C901 (one branch per expectation a case may state)
    raw = {**suite.file.base, **case.input}
    expect = case.expect
    rules = {r.id: r for r in flow.rules}
    result = functools.partial(CaseResult, suite=suite.path, line=suite.case_line(index), flow=flow.flow, version=flow.version, name=case.name, rules=rules)
    try:
        snapshot = case_lists(flow, case)
        with flow.custom_lists.using(snapshot) if flow.custom_lists is not None else contextlib.nullcontext():
            outcome = flow.evaluate(raw)
    except InvalidInput as exc:
        named = [e.field for e in exc.errors]
        if expect.invalid is None:
            return result(failures=(f"the input was refused: {exc}",), error=str(exc))
        missing = [f for f in expect.invalid if f not in named]
        unnamed = (f"invalid: expected the fields {_fmt_list(missing)} to be named, got: {exc}",) if missing else ()
        return result(failures=unnamed, error=str(exc))
    except (VerdictError, ArithmeticError, ValueError, TypeError, KeyError) as exc:  # a broken model or flow
        return result(failures=(f"evaluation failed: {type(exc).__name__}: {exc}",), error=str(exc))
    failures: list[str] = []
    if expect.invalid is not None:
        failures.append(f"invalid: expected the input to be refused, but it was decided {outcome.action.name}")
    if expect.action is not None and outcome.action.name != expect.action:
        failures.append(f"action: expected {expect.action}, got {outcome.action.name}")
    if expect.reasons is not None:
        failures += _check_list("reasons", expect.reasons, [r.code for r in outcome.reasons], ordered=True)
    if expect.fired is not None:
        if isinstance(expect.fired, Match):
            refs = [*(expect.fired.exactly or ()), *expect.fired.contains, *expect.fired.excludes]
        else:
            refs = list(expect.fired)
        unknown = [r for r in refs if r not in rules]
        if unknown:
            failures.append(f"fired: {_fmt_list(unknown)} {'is not a rule' if len(unknown) == 1 else 'are not rules'} of {flow.flow} {flow.version}")
        failures += _check_list("fired", expect.fired, [r.id for r in outcome.fired], ordered=False)
    for name, spec in expect.scores.items():
        value = outcome.scores.get(name)
        if value is None:
            failures.append(f"scores: {flow.flow} {flow.version} has no score {name!r}; scores: {_fmt_list(sorted(outcome.scores))}")
            continue
        ok = _score_ok(value, spec)
        if ok is None:
            failures.append(f"scores: cannot read the range {spec!r} for {name} (write e.g. '>= 0.6' or '[0.2..0.5)')")
        elif not ok:
            failures.append(f"scores: expected {name} {spec}, got {value:.4f}")
    return result(failures=tuple(failures), outcome=outcome)


def _matches(pattern: str | None, text: str) -> bool:
    return not pattern or pattern.casefold() in text.casefold()


def run(  # noqa: C901 (one pass: resolve each suite's versions, run its matching cases, then tally coverage)
    flows: Mapping[tuple[str, str], CompiledFlow],
    suites: Sequence[TestSuite],
    *,
    pattern: str | None = None,
    problems: Sequence[Problem] = (),
) -> TestReport:
    """Run every case of `suites` (whose id contains `pattern`) against the versions it targets."""
    report = TestReport(problems=list(problems))
    fired: dict[tuple[str, str], set[str]] = {key: set() for key in flows}
    by_flow: dict[str, list[str]] = {}
    for flow, version in flows:
        by_flow.setdefault(flow, []).append(version)
    for suite in suites:
        versions = suite.versions if suite.versions is not None else tuple(sorted(by_flow.get(suite.flow, []), key=version_key))
        targets = []
        for version in versions:
            compiled = flows.get((suite.flow, version))
            if compiled is None:
                report.problems.append(
                    Problem(suite.path, f"{suite.flow} version {version} is not loaded, so these tests cannot run", "test_target_missing", line=1,
                            flow=suite.flow)
                )
                continue
            targets.append(compiled)
        if not versions:
            report.problems.append(Problem(suite.path, f"flow {suite.flow!r} is not loaded, so these tests cannot run", "test_target_missing",
                                           line=1, hint=did_you_mean(suite.flow, by_flow), flow=suite.flow))
        for compiled in targets:
            for index, case in enumerate(suite.file.cases):
                if not _matches(pattern, f"{suite.path} {compiled.flow} {compiled.version} :: {case.name}"):
                    continue
                result = _run_case(suite, index, case, compiled)
                report.results.append(result)
                if result.outcome is not None:
                    fired[(compiled.flow, compiled.version)].update(r.id for r in result.outcome.fired)
    if not pattern:
        ran = {(r.flow, r.version) for r in report.results}
        for key, compiled in sorted(flows.items(), key=lambda kv: (kv[0][0], version_key(kv[0][1]))):
            if key not in ran:
                report.untested.append(key)
                continue
            missing = [rule for rule in compiled.rules if rule.id not in fired[key]]
            if missing:
                report.uncovered[key] = missing
    return report


def run_root(root: Path, *, pattern: str | None = None, policies: PolicySet | None = None) -> TestReport:
    """Load `root` (unless `policies` is given), discover its tests and run them.

    Load errors are reported as problems; the versions that did compile are still tested.
    """
    suites, problems = discover(root)
    if policies is not None:
        flows = {(f.name, v): c for f in policies.flows.values() for v, c in f.versions.items()}
        return run(flows, suites, pattern=pattern, problems=problems)
    result = load(root)
    return run(result.compiled, suites, pattern=pattern, problems=[*result.errors, *problems])


def _rule_line(rule: CompiledRule, prefix: str = "        ") -> str:
    return f"{prefix}{rule.id:<14} {rule.action.name:<8} {rule.reason_code:<28} {rule.condition}  ({rule.source})"


def format_failure(result: CaseResult) -> str:
    """A failed case: where it is, what was expected and what happened, with the rules that fired."""
    where = f"{result.suite}:{result.line}" if result.line else result.suite
    lines = [f"FAIL {result.id}", f"     {where}"]
    lines += [f"     {f}" for f in result.failures]
    outcome = result.outcome
    if outcome is not None:
        lines.append(f"     decided {outcome.action.name} with reasons {_fmt_list([r.code for r in outcome.reasons])}")
        if outcome.fired:
            lines.append("     fired rules:")
            lines += [_rule_line(result.rules[f.id]) if f.id in result.rules else f"        {f.id}" for f in outcome.fired]
        else:
            lines.append("     fired rules: none (the flow's default applied)")
        if outcome.scores:
            lines.append("     scores: " + ", ".join(f"{k}={v:.4f}" for k, v in sorted(outcome.scores.items())))
    return "\n".join(lines)


def format_report(report: TestReport, *, verbose: bool = False) -> str:
    """The whole report as text: problems, failures (and passes if verbose), coverage, summary."""
    out: list[str] = [f"{'ERROR' if p.severity == 'error' else 'WARN '} {format_problem(p)}" for p in report.problems]
    for result in report.results:
        if not result.passed:
            out.append(format_failure(result))
        elif verbose:
            out.append(f"PASS {result.id}")
    for (flow, version), rules in report.uncovered.items():
        out.append(f"NOTE {flow} {version}: {len(rules)} rule{'s' if len(rules) != 1 else ''} no test fires:")
        out += [_rule_line(rule, "     ") for rule in rules]
    for flow, version in report.untested:
        out.append(f"NOTE {flow} {version}: no test case runs against this version")
    passed = sum(1 for r in report.results if r.passed)
    failed = len(report.failed)
    errors = sum(1 for p in report.problems if p.severity == "error")
    files = len({r.suite for r in report.results})
    versions = sorted({(r.flow, r.version) for r in report.results}, key=lambda k: (k[0], version_key(k[1])))
    summary = f"{passed} passed, {failed} failed"
    if errors:
        summary += f", {errors} error{'s' if errors != 1 else ''}"
    summary += f" in {files} file{'s' if files != 1 else ''}"
    if versions:
        summary += " (" + ", ".join(f"{f} {v}" for f, v in versions) + ")"
    if not report.results:
        summary = "no test ran; " + summary
    out.append(summary)
    return "\n".join(out)
