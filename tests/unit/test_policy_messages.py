"""Every problem a policy owner can cause reads as one plain sentence at the right file and line, with a hint.

Table-driven: each case breaks one file of a small valid root in one way a person does (an
indentation slip, a typo, a YAML 1.1 number trap, ...) and expects exactly one problem: its file,
line, code, words of the message and of the hint. No cascade of follow-on problems.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import format_problem
from engine.policy.lint import lint
from engine.policy.loader import load

from .policy_roots import demo_root, write

RULES = "rules/main.yaml"
FLOW1 = "policies/demo/1/flow.yaml"
ROUTING = "policies/demo/routing.yaml"
TWO_VERSIONS = 'live: "1"\nchallenger: {version: "2", share: 0.1, key: customer_id}\n'

# (case id, file, text to replace, replacement, expected (line, code, words in message, words in hint))
CASES = [
    ("key indented too far", RULES, "    action: REVIEW\n    reason: BIG", "    action: REVIEW\n     reason: BIG",
     (6, "yaml_syntax", "'reason' is indented further than the line above", "indent it 4 spaces, like 'action' on line 5")),
    ("key indented too little", RULES, "    reason: YOUNG", "   reason: YOUNG",
     (11, "yaml_syntax", "'reason' is not lined up with the keys above it", "indent it 4 spaces, like 'action' on line 10")),
    ("list item out of line", RULES, "  - id: R3", " - id: R3",
     (13, "yaml_syntax", "this list item is not lined up with the items above it", "indent it 2 spaces, like the item on line 8")),
    ("tab for indentation", RULES, "    when: age < 18", "\twhen: age < 18",
     (9, "yaml_syntax", "indented with a tab", "replace the tab with spaces")),
    ("colon inside a value", RULES, "    priority: 10\n", "    priority: 10\n    description: note: big\n",
     (8, "yaml_syntax", "the value of 'description' contains ': '", 'description: "note: big"')),
    ("quote never closed", RULES, "    when: age < 18", '    when: "age < 18',
     (9, "yaml_syntax", "a quote opened on this line is never closed", "close the quote")),
    ("text after a closing quote", RULES, "    when: country in ['DE']", "    when: 'country' == 'DE'",
     (14, "yaml_syntax", "text follows the closing quote", "other kind of quote")),
    ("key without its colon", RULES, "rules:\n", "rules\n",
     (2, "yaml_syntax", "'rules' needs a ':' after it", "write 'rules:'")),
    ("a key given twice", RULES, "    priority: 10\n", "    priority: 10\n    priority: 20\n",
     (8, "duplicate_key", "'priority' appears twice in the same block (first on line 7)", "remove one")),
    ("octal number as a code", FLOW1, "values: [GB, FR, DE]", "values: [GB, FR, DE, 0742]",
     (8, "yaml_number", "0742 would be read as the number 482", "write '0742' in quotes")),
    ("base-60 number as a time", FLOW1, "values: [GB, FR, DE]", "values: [GB, FR, DE, 1:30]",
     (8, "yaml_number", "1:30 would be read as the number 90", "write '1:30' in quotes")),
    ("reason code in lower case", RULES, "    reason: BIG", "    reason: big",
     (6, "schema", "'reason' must be a reason code: upper-case letters, digits and underscores, starting with a letter", "did you mean 'BIG'?")),
    ("misspelt required key", RULES, "    when: age < 18", "    whn: age < 18",
     (9, "schema", "unknown key 'whn', and the required key 'when' is missing", "did you mean 'when'?")),
    ("misspelt optional key", RULES, "    priority: 10", "    priorty: 10",
     (7, "schema", "unknown key 'priorty'; the keys allowed here are", "did you mean 'priority'?")),
    ("action not one of the three", RULES, "    action: DECLINE\n    reason: YOUNG", "    action: DECLNE\n    reason: YOUNG",
     (10, "schema", "'action' must be APPROVE, REVIEW or DECLINE, not 'DECLNE'", "did you mean 'DECLINE'?")),
    ("priority as text", RULES, "    priority: 10", "    priority: high",
     (7, "schema", "'priority' must be a whole number, not 'high'", None)),
    ("field type misspelt", FLOW1, "age: {type: integer,", "age: {type: integr,",
     (6, "schema", "'type' of input field 'age' must be integer, number, string, category or boolean, not 'integr'", "did you mean 'integer'?")),
    ("ruleset name misspelt in the flow", FLOW1, "rulesets: [demo.main]", "rulesets: [demo.mian]",
     (10, "unknown_ruleset", "ruleset 'demo.mian' not found under rules/", "did you mean 'demo.main'?")),
    ("flow file broken: no routing cascade", FLOW1, "default: {action: APPROVE}", " default: {action: APPROVE}",
     (11, "yaml_syntax", "'default' is not lined up", "indent it 0 spaces")),
    ("routing key misspelt", ROUTING, "key: customer_id", "key: customer_di",
     (2, "unknown_routing_key", "routing key 'customer_di' is not an input field", "did you mean 'customer_id'?")),
    ("model name misspelt", FLOW1, "rulesets: [demo.main]",
     'rulesets: [demo.main]\nmodels: [{name: credit_defualt, version: "1", output: pd}]',
     (11, "unknown_model", "model credit_defualt version 1 is not available", "did you mean 'credit_default'?")),
]


@pytest.mark.parametrize(("case", "rel", "old", "new", "expected"), CASES, ids=[c[0] for c in CASES])
def test_one_broken_file_gives_one_plain_problem(tmp_path: Path, case, rel, old, new, expected):
    """One slip in one file is exactly one problem: right file, line and code, a plain sentence and a helpful hint."""
    root = demo_root(tmp_path, versions=("1", "2"), tests=False)
    write(root, ROUTING, TWO_VERSIONS)
    (root / "model_artifacts" / "credit_default" / "1").mkdir(parents=True)  # a model directory to be "close" to
    path = root / rel
    text = path.read_text()
    assert old in text, f"the case {case!r} no longer matches its file"
    path.write_text(text.replace(old, new, 1))
    problems = lint(root).problems  # everything `verdict lint` says: loading, compiling and its own checks
    assert len(problems) == 1, "\n".join(format_problem(p) for p in problems)
    (p,) = problems
    line, code, words, hint = expected
    assert (p.path, p.line, p.code) == (rel, line, code), format_problem(p)
    assert words in p.message, format_problem(p)
    if hint is None:
        assert p.hint is None, format_problem(p)
    else:
        assert p.hint is not None and hint in p.hint, format_problem(p)
    assert "String should match" not in p.message and "Input should be" not in p.message
    assert "\n" not in p.message


def test_the_bundled_root_still_loads_clean():
    """None of the new checks (number traps, folded errors) flags the bundled policies."""
    from .policy_roots import PROJECT

    assert [p for p in load(PROJECT).problems if p.severity == "error"] == []
