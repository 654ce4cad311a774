"""The lint of policy test files: cases that name what their flow version does not have.

Per case (engine.policy.testcases): ``unknown_test_field`` (an input field the version does not
declare, while it rejects unknown fields), ``unknown_test_rule`` (an expected fired rule the version
does not have), ``unknown_test_reason`` (an expected reason code outside the version's catalogue)
and ``unknown_test_score`` (an expected score no model or screening step of the version produces).
``engine.policy.lint`` reports them with the rest.
"""

from __future__ import annotations

from engine.errors import Problem
from engine.policy.loader import LoadResult
from engine.policy.tables import table_rows
from engine.policy.testcases import Match, TestSuite

__all__ = ["check_tests"]


def check_tests(suites: list[TestSuite], result: LoadResult, out: list[Problem]) -> None:  # noqa: C901 (one pass over the cases, one branch per thing a case can name: fields, rules, reasons)
    """Append to ``out`` a problem for each case of ``suites`` that names what its flow version (in ``result``) lacks."""
    for suite in suites:
        versions = result.flow_sources.get(suite.flow, {})
        targets = [versions[v] for v in (suite.versions or sorted(versions)) if v in versions]
        for src in targets:
            flow = src.file
            where = f"{flow.flow} {flow.version}"
            rules: set[str] = set()
            for name in flow.rulesets:
                rs = result.rule_sources.get(name)
                if rs is not None:
                    rules.update(spec.id for spec in rs.file.rules)
                    rules.update(row.id for row in table_rows(rs.file.tables, rs.path, rs.doc)[0])
            reasons = set(flow.reasons)
            # a test may state a customer's history by giving the flow's stateful features (docs/behaviour.md)
            fields = set(flow.input.fields) | set(flow.behaviour.features if flow.behaviour is not None else ())

            def bad(loc: tuple[str | int, ...], message: str, code: str, hint: str, *, suite: TestSuite = suite, where: str = where) -> None:
                out.append(Problem(suite.path, f"{message} ({where})", code, line=suite.doc.line_of(loc), hint=hint, flow=suite.flow))

            if flow.input.unknown_fields == "reject":
                for key in suite.file.base:
                    if key not in fields:
                        bad(("base", key), f"base: {key!r} is not an input field", "unknown_test_field", "see the flow's input.fields")
            for i, case in enumerate(suite.file.cases):
                name = f"case {case.name!r}"
                refused = set(case.expect.invalid or ())  # a case may send an unknown field to prove it is refused
                if flow.input.unknown_fields == "reject":
                    for key in case.input:
                        if key not in fields and key not in refused:
                            bad(("cases", i, "input", key), f"{name}: {key!r} is not an input field", "unknown_test_field",
                                "see the flow's input.fields")
                for key in case.expect.invalid or ():
                    if key not in flow.input.fields and key not in case.input and key not in suite.file.base:
                        bad(("cases", i, "expect", "invalid"), f"{name}: expects {key!r} to be refused, but it is not an input field",
                            "unknown_test_field", "see the flow's input.fields")
                fired = case.expect.fired
                refs = [*(fired.exactly or ()), *fired.contains, *fired.excludes] if isinstance(fired, Match) else list(fired or ())
                for ref in refs:
                    if ref not in rules:
                        bad(("cases", i, "expect", "fired"), f"{name}: expects rule {ref!r}, which is not a rule of the version",
                            "unknown_test_rule", "check the rule id, or write the rule first")
                given = case.expect.reasons
                codes = [*(given.exactly or ()), *given.contains, *given.excludes] if isinstance(given, Match) else list(given or ())
                compiled = result.compiled.get((flow.flow, flow.version))
                if compiled is not None:  # score names are the models' outputs, known once compiled
                    outputs = {m.output for m in compiled.models} | {s.score_name for s in compiled.screens}
                    for score in case.expect.scores:
                        if score not in outputs:
                            known = ", ".join(sorted(outputs)) or "none"
                            bad(("cases", i, "expect", "scores", score), f"{name}: expects a score {score!r}, which the version does not produce (scores: {known})",
                                "unknown_test_score", "name a model output, e.g. pd")
                for code in codes:
                    if code not in reasons:
                        bad(("cases", i, "expect", "reasons"), f"{name}: expects reason {code}, which is not in the version's reasons",
                            "unknown_test_reason", "add the code to the flow's reasons:, or fix the expectation")
