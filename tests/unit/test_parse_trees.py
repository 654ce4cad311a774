"""Tests of engine.policy.sources.ParseTrees: each expression is parsed once per load, and lint reads those trees."""

from pathlib import Path

import pytest

from engine.expr import ExprSyntaxError, parse
from engine.policy import sources
from engine.policy.lint import lint
from engine.policy.loader import load
from engine.policy.sources import ParseTrees

ROOT = Path(__file__).resolve().parents[2]  # the bundled policies/ and rules/


def test_a_text_is_parsed_once_and_its_tree_shared():
    """Asking twice for one text returns the same tree object, equal to a fresh parse."""
    trees = ParseTrees()
    first = trees.parse("amount > 10 and country in ['US', 'GB']")
    assert trees.parse("amount > 10 and country in ['US', 'GB']") is first
    assert first == parse("amount > 10 and country in ['US', 'GB']")
    assert len(trees) == 1


def test_a_syntax_error_is_kept_and_raised_again():
    """A text that does not parse raises ExprSyntaxError on every ask, and tree() gives None."""
    trees = ParseTrees()
    with pytest.raises(ExprSyntaxError):
        trees.parse("amount >")
    with pytest.raises(ExprSyntaxError):
        trees.parse("amount >")
    assert trees.tree("amount >") is None
    assert len(trees) == 1


def test_lint_parses_no_expression_the_load_parsed(monkeypatch):
    """After load, lint of the bundled policies calls the parser zero times: the compiler's trees serve it."""
    result = load(ROOT)
    assert result.policies is not None and len(result.trees) > 50
    calls: list[str] = []

    def counting(text: str):
        calls.append(text)
        return parse(text)

    monkeypatch.setattr(sources, "parse", counting)
    report = lint(ROOT, result)
    assert report.rules > 0
    assert calls == []


def test_a_table_rows_tree_is_its_joined_text_parsed():
    """row_tree, built from the cells' trees, prints as the parse of the row's joined condition (ranges included)."""
    from engine.expr.vocabulary import show
    from engine.policy.schema import TableSpec
    from engine.policy.tables import row_tree, table_rows
    from engine.policy.yamlio import LoadedYaml

    table = TableSpec.model_validate({
        "id": "t", "hit": "collect", "columns": ["amount", "country", "score"],
        "rows": [
            {"when": ["[1..5]", "in ['US', 'GB']", "> 0.5"], "action": "REVIEW", "reason": "R"},
            {"when": ["-", "-", "-"], "action": "APPROVE", "reason": "R"},
            {"when": ["-", "US", "-"], "action": "DECLINE", "reason": "R"},
        ],
    })
    rows, problems = table_rows([table], "rules/x.yaml", LoadedYaml({}, {}))
    assert problems == [] and len(rows) == 3
    trees = ParseTrees()
    for row in rows:
        tree = row_tree(row, trees)
        assert tree is not None and show(tree) == show(parse(row.condition))
