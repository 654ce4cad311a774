"""Tests of the expression tokenizer and parser."""

import pytest

from engine.expr.nodes import BinOp, BoolOp, Call, Compare, InList, Literal, Not, names_in
from engine.expr.syntax import ExprSyntaxError, parse


def test_precedence_of_arithmetic_and_comparison():
    """'*' binds tighter than '+', which binds tighter than a comparison."""
    node = parse("a + b * 2 > 3")
    assert isinstance(node, Compare) and node.op == ">"
    assert isinstance(node.left, BinOp) and node.left.op == "+"
    assert isinstance(node.left.right, BinOp) and node.left.right.op == "*"


def test_and_binds_tighter_than_or():
    """'a or b and c' parses as 'a or (b and c)'."""
    node = parse("a or b and c")
    assert isinstance(node, BoolOp) and node.op == "or"
    assert isinstance(node.items[1], BoolOp) and node.items[1].op == "and"


def test_not_in_and_lists():
    """'x not in [...]' is one negated membership test with literal items."""
    node = parse("home not in ['rent', \"other\"]")
    assert isinstance(node, InList) and node.negated
    assert [i.value for i in node.items] == ["rent", "other"]


def test_literals():
    """Numbers, strings with escapes, booleans and null parse to literals."""
    assert parse("1.5e3") == Literal(1500.0, 1)
    assert parse("-2").value == -2
    assert parse(r"'it\'s'").value == "it's"
    assert parse("true").value is True
    assert parse("null").value is None


def test_calls_and_names():
    """Function calls take any number of arguments; dotted names are one name."""
    node = parse("coalesce(income, 0) > 0 and not is_null(a.b)")
    assert isinstance(node, BoolOp)
    assert isinstance(node.items[0].left, Call) and node.items[0].left.func == "coalesce"
    assert isinstance(node.items[1], Not)
    assert names_in(node) == {"income", "a.b"}


@pytest.mark.parametrize(
    ("text", "fragment", "column"),
    [
        ("a = 1", "use '==' to compare", 3),
        ("a > 1 > 2", "cannot be chained", 7),
        ("a && b", "use 'and', 'or', 'not'", 3),
        ("(a > 1", "expected ')'", 7),
        ("a in []", "at least one item", 7),
        ("a in [b]", "numbers, strings or booleans", 7),
        ("", "empty expression", 1),
        ("a > 1 b", "after a complete expression", 7),
        ("a > True", "keywords are lower case", 5),
        ("[1, 2]", "only follow 'in'", 1),
    ],
)
def test_syntax_errors_name_the_column(text, fragment, column):
    """Every syntax error says what is wrong and where."""
    with pytest.raises(ExprSyntaxError) as info:
        parse(text)
    assert fragment in str(info.value)
    assert info.value.column == column


def test_deep_nesting_is_refused():
    """Pathological nesting is an error, not a stack overflow."""
    with pytest.raises(ExprSyntaxError, match="nested too deeply"):
        parse("(" * 200 + "a" + ")" * 200)


def test_no_python_eval():
    """Python constructs outside the grammar are rejected, and dunder names are just unknown fields."""
    from engine.expr import ExprTypeError, check

    for text in ["__import__('os').system('true')", "lambda: 1", "a[0]", "a if b else c", "a ** 2"]:
        with pytest.raises(ExprSyntaxError):
            parse(text)
    with pytest.raises(ExprTypeError, match="unknown field"):
        check(parse("a.__class__ == 1"), {})
