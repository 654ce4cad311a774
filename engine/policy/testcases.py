"""Policy test files: their closed schema and where they are found.

Test files sit beside what they test:

- ``policies/<flow>/<version>/tests/*.yaml`` test that flow version (``flow:``/``version:`` may be
  omitted; if given they must match the directory);
- ``rules/**/tests/*.yaml`` and ``rules/**/*.test.yaml`` test the rules next to them; they name
  their ``flow:`` and run against every loaded version of it, or the ``versions:`` they list.

Each file has cases: an input and what to expect of the outcome (action, reason codes, fired
rules, score ranges, or that the input is refused). See docs/testing.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from engine.closed import ClosedText
from engine.errors import Problem
from engine.policy.documents import read_document
from engine.policy.schema import ActionName
from engine.policy.yamlio import LoadedYaml

__all__ = ["Case", "Expect", "Match", "TestFile", "TestSuite", "discover"]

Code = Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9_]*$", max_length=64)]
RuleRef = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)]
VersionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=32)]
FlowName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=64)]


_Frozen = ClosedText  # the one frozen base model (engine.closed)


class Match(_Frozen):
    """A partial expectation on a list: exactly these, or contains / excludes some."""

    exactly: tuple[str, ...] | None = None
    contains: tuple[str, ...] = ()
    excludes: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _something(self) -> Match:
        if self.exactly is None and not self.contains and not self.excludes:
            raise ValueError("give 'exactly', 'contains' or 'excludes'")
        return self


class Expect(_Frozen):
    """What a case expects. Anything left out is not checked."""

    action: ActionName | None = None
    reasons: tuple[Code, ...] | Match | None = Field(
        default=None, description="a list: exactly these codes in this order; or a Match"
    )
    fired: tuple[RuleRef, ...] | Match | None = Field(
        default=None, description="a list: exactly these rules fired (any order); or a Match"
    )
    scores: dict[str, str] = Field(default_factory=dict, description="score -> range, e.g. pd: '>= 0.6' or '[0.2..0.5)'")
    invalid: tuple[str, ...] | None = Field(
        default=None, description="the input must be refused, naming (at least) these fields"
    )

    @model_validator(mode="after")
    def _something(self) -> Expect:
        if self.invalid is not None and (self.action or self.reasons or self.fired or self.scores):
            raise ValueError("'invalid' expects the input to be refused; it cannot be combined with an outcome")
        if self.invalid is None and not (self.action or self.reasons is not None or self.fired is not None or self.scores):
            raise ValueError("expect at least one of action, reasons, fired, scores or invalid")
        return self


class Case(_Frozen):
    """One test case: a named input and its expected outcome."""

    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    input: dict[str, Any] = Field(default_factory=dict)
    lists: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        description="custom lists' entries during this case (list name -> values); every other list is empty (docs/lists.md)",
    )
    expect: Expect


class TestFile(_Frozen):
    """A file of test cases for one flow."""

    __test__ = False  # not a pytest class

    flow: FlowName | None = None
    version: VersionName | None = None
    versions: tuple[VersionName, ...] | None = None
    description: str = ""
    base: dict[str, Any] = Field(default_factory=dict, description="input every case starts from; a case's input overrides it")
    cases: tuple[Case, ...]

    @model_validator(mode="after")
    def _one_version_key(self) -> TestFile:
        if self.version is not None and self.versions is not None:
            raise ValueError("give 'version' or 'versions', not both")
        if not self.cases:
            raise ValueError("a test file needs at least one case under 'cases:'")
        return self


@dataclass(frozen=True)
class TestSuite:
    """A parsed test file and what it runs against (versions None: every loaded version)."""

    __test__ = False

    path: str
    doc: LoadedYaml
    file: TestFile
    flow: str
    versions: tuple[str, ...] | None

    def case_line(self, index: int) -> int | None:
        return self.doc.line_of(("cases", index))


def _files(directory: Path, pattern: str) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.glob(pattern) if p.is_file() and p.suffix in (".yaml", ".yml"))


_FLOW_LINE = re.compile(r"^flow:[ \t]*[\"']?([A-Za-z_][A-Za-z0-9_]*)", re.MULTILINE)


def _flow_named_in(path: Path) -> str | None:
    """The ``flow:`` a test file names, read from its text (for a file that does not parse)."""
    try:
        found = _FLOW_LINE.search(path.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None
    return found.group(1) if found else None


def discover(root: Path) -> tuple[list[TestSuite], list[Problem]]:
    """Every test file under `root`, parsed; and every problem with them (file and line)."""
    root = Path(root).resolve()
    suites: list[TestSuite] = []
    problems: list[Problem] = []
    policies = root / "policies"
    if policies.is_dir():
        for flow_dir in sorted(p for p in policies.iterdir() if p.is_dir()):
            for version_dir in sorted(p for p in flow_dir.iterdir() if p.is_dir()):
                for path in _files(version_dir / "tests", "**/*"):
                    doc, parsed = read_document(root, path, TestFile, problems)
                    if doc is None or parsed is None:
                        continue
                    rel = str(path.relative_to(root))
                    if parsed.flow not in (None, flow_dir.name):
                        problems.append(Problem(rel, f"flow {parsed.flow!r} does not match the directory {flow_dir.name!r}", "test_flow_mismatch", line=doc.line_of(("flow",))))
                        continue
                    named = parsed.versions or ((parsed.version,) if parsed.version else ())
                    if any(v != version_dir.name for v in named):
                        problems.append(Problem(rel, f"tests under version {version_dir.name} may only test that version", "test_version_mismatch", line=doc.line_of(("version",))))
                        continue
                    suites.append(TestSuite(rel, doc, parsed, flow_dir.name, (version_dir.name,)))
    rules = root / "rules"
    beside_rules = set(_files(rules, "**/tests/**/*")) | set(_files(rules, "**/*.test.yaml")) | set(_files(rules, "**/*.test.yml"))
    for path in sorted(beside_rules):
        first = len(problems)
        doc, parsed = read_document(root, path, TestFile, problems)
        rel = str(path.relative_to(root))
        if doc is None or parsed is None:
            flow = _flow_named_in(path)  # the flow these (unreadable) tests were for: its activation waits for them
            if flow is not None:
                problems[first:] = [replace(p, flow=flow) for p in problems[first:]]
            continue
        if parsed.flow is None:
            problems.append(Problem(rel, "a test file beside rules must name its 'flow:'", "test_flow_missing", line=1))
            continue
        versions = parsed.versions or ((parsed.version,) if parsed.version else None)
        suites.append(TestSuite(rel, doc, parsed, parsed.flow, versions))
    return suites, problems
