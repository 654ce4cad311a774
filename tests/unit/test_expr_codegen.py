"""Tests of type checking and of the compiled conditions, including missing-value semantics."""

import itertools
import random
from decimal import Decimal

import pytest

from engine.expr import ExprTypeError, check, parse
from engine.expr.check import Symbol
from engine.expr.codegen import bounds_of, compile_program

ENV = {
    "amount": Symbol("number", False),
    "price": Symbol("number", False),
    "income": Symbol("number", True),
    "debt": Symbol("number", True),
    "home": Symbol("string", True, categories=frozenset({"rent", "owner", "parents"})),
    "name": Symbol("string", True),
    "flag": Symbol("bool", True),
    "strict": Symbol("bool", False),
}


def fires(text, **values):
    prog = compile_program(ENV, [], [parse(text)])
    env = {k: values.get(k) for k in ENV}
    return prog.fired(env) == [0]


def reference(text, values):  # noqa: C901 (a reference interpreter: one branch per node kind)
    """Kleene three-valued reference interpreter, independent of the code generator."""
    from engine.expr.nodes import BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Not

    def ev(n):  # noqa: C901 (one branch per node kind)
        if isinstance(n, Literal):
            return n.value
        if isinstance(n, Name):
            return values.get(n.name)
        if isinstance(n, Neg):
            v = ev(n.operand)
            return None if v is None else -v
        if isinstance(n, Not):
            v = ev(n.operand)
            return None if v is None else not v
        if isinstance(n, BinOp):
            a, b = ev(n.left), ev(n.right)
            if a is None or b is None or (n.op in "/%" and b == 0):
                return None
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else None, "%": a % b if b else None}[n.op]
        if isinstance(n, Compare):
            a, b = ev(n.left), ev(n.right)
            if a is None or b is None:
                return None
            return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[n.op]
        if isinstance(n, InList):
            a = ev(n.operand)
            if a is None:
                return None
            return (a in {i.value for i in n.items}) != n.negated
        if isinstance(n, BoolOp):
            vals = [ev(i) for i in n.items]
            if n.op == "and":
                return False if False in vals else (None if None in vals else True)
            return True if True in vals else (None if None in vals else False)
        if isinstance(n, Call):
            args = [ev(a) for a in n.args]
            if n.func == "is_null":
                return args[0] is None
            if n.func == "coalesce":
                return next((a for a in args if a is not None), None)
            raise AssertionError(n.func)
        raise AssertionError(n)

    return ev(parse(text)) is True


def test_missing_value_makes_comparison_and_its_negation_false():
    """A condition over a missing field is false, and so is its negation."""
    assert not fires("income > 100", income=None)
    assert not fires("not (income > 100)", income=None)
    assert not fires("income != 5", income=None)
    assert fires("not (income > 100)", income=50.0)
    assert not fires("home in ['rent']")
    assert not fires("home not in ['rent']")
    assert not fires("flag")
    assert not fires("not flag")
    assert fires("not flag", flag=False)


def test_null_tests_and_coalesce():
    """is_null/is_not_null test presence; coalesce supplies a default."""
    assert fires("is_null(income)")
    assert not fires("not is_null(income)")
    assert fires("is_not_null(income)", income=1.0)
    assert fires("coalesce(income, 0) < 1")
    assert fires("coalesce(income, 0) > 1", income=5.0)


def test_division_by_zero_is_missing():
    """x / 0 is missing, never an exception."""
    assert not fires("amount / price > 1", amount=1.0, price=0.0)
    assert not fires("not (amount / price > 1)", amount=1.0, price=0.0)
    assert fires("is_null(amount / price)", amount=1.0, price=0.0)
    assert fires("amount / price > 1", amount=3.0, price=2.0)


def test_functions():
    """Named functions compute what the docs say."""
    assert fires("abs(amount - price) < 1", amount=5.0, price=5.5)
    assert fires("max(amount, price, 3) == 9", amount=9.0, price=1.0)
    assert fires("min(amount, income) == 2", amount=2.0, income=4.0)
    assert not fires("min(amount, income) == 2", amount=2.0, income=None)
    assert fires("round(amount / 3, 2) == 0.33", amount=1.0, price=1.0)
    assert fires("log(amount) > 2", amount=10.0)
    assert not fires("log(amount) < 100", amount=-1.0)
    assert fires("len(name) == 3 and upper(name) == 'BOB' and starts_with(lower(name), 'b')", name="Bob")
    assert fires("contains(name, 'ob') and ends_with(name, 'b')", name="Bob")
    assert fires("between(amount, 1, 10)", amount=10.0)
    assert fires("if(is_null(income), 0, income) == 0")
    assert fires("floor(amount) == 2 and ceil(amount) == 3 and sqrt(price) == 3", amount=2.5, price=9.0)


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [
        ("incme > 1", "unknown_field", "did you mean 'income'"),
        ("home > 1", "type_mismatch", "cannot compare string with number"),
        ("home == 'villa'", "unknown_category", "allowed: owner, parents, rent"),
        ("amount + home > 1", "type_mismatch", "needs numbers"),
        ("income == null", "null_comparison", "is_null"),
        ("foo(amount)", "unknown_function", "unknown function"),
        ("min(amount) > 1", "bad_arguments", "at least 2"),
        ("strict > true", "type_error", "does not apply"),
        ("amount in ['a']", "type_mismatch", "list of strings"),
        ("amount and strict", "type_mismatch", "joins conditions"),
    ],
)
def test_type_errors(text, code, fragment):
    """Type errors carry a stable code and a helpful message or hint."""
    with pytest.raises(ExprTypeError) as info:
        check(parse(text), ENV)
    assert info.value.code == code
    assert fragment in str(info.value) + (info.value.hint or "")


def test_generated_code_agrees_with_a_reference_interpreter():
    """For random inputs with missing values, compiled conditions equal Kleene-logic evaluation."""
    conditions = [
        "income > 100 and debt < 50",
        "not (income > 100 or debt < 50)",
        "not (not (home in ['rent', 'owner']) and flag)",
        "is_null(income) or income - debt > amount / price",
        "not (coalesce(income, debt) >= 10)",
        "home not in ['parents'] or not strict",
        "-amount < -3 and not (amount / price != 2)",
        "not (flag or strict) and income != debt",
    ]
    prog = compile_program(ENV, [], [parse(c) for c in conditions])
    rng = random.Random(7)
    for _ in range(3000):
        values = {
            "amount": float(rng.choice([0, 1, 3, 4, 50, 200])),
            "price": float(rng.choice([0, 1, 2, 100])),
            "income": rng.choice([None, 0.0, 10.0, 101.0, 500.0]),
            "debt": rng.choice([None, 0.0, 10.0, 49.0, 60.0]),
            "home": rng.choice([None, "rent", "owner", "parents"]),
            "name": None,
            "flag": rng.choice([None, True, False]),
            "strict": rng.choice([True, False]),
        }
        got = prog.fired(dict(values))
        want = [i for i, c in enumerate(conditions) if reference(c, values)]
        assert got == want, (values, got, want)


def test_derived_features_are_computed_in_order():
    """Derived features computed by derive() are visible to conditions and to the caller."""
    env = dict(ENV, ratio=Symbol("number", True, "derived"), big=Symbol("bool", True, "derived"))
    prog = compile_program(env, [("ratio", parse("amount / price")), ("big", parse("ratio > 2"))], [parse("big")])
    values = {k: None for k in env} | {"amount": 10.0, "price": 2.0}
    prog.derive(values)
    assert values["ratio"] == 5.0 and values["big"] is True
    assert prog.fired(values) == [0]
    values = {k: None for k in env} | {"amount": 10.0, "price": 0.0}
    prog.derive(values)
    assert values["ratio"] is None and values["big"] is None
    assert prog.fired(values) == []


def test_generated_source_has_no_builtins():
    """The compiled namespace has no builtins: generated code can only call our helpers."""
    prog = compile_program(ENV, [], [parse("amount > 1")])
    assert prog.fired.__globals__["__builtins__"] == {}
    assert all(c.isprintable() or c == "\n" for c in prog.source)


def test_all_comparison_operators_against_python():
    """Each comparison operator and its negation behave like Python's on present values."""
    for op, a, b in itertools.product(["==", "!=", "<", "<=", ">", ">="], [1.0, 2.0], [1.0, 2.0]):
        expected = eval(f"{a} {op} {b}")
        assert fires(f"amount {op} price", amount=a, price=b) == expected
        assert fires(f"not (amount {op} price)", amount=a, price=b) == (not expected)


BOUNDED = {
    "amount": Symbol("number", False, bounds=(1.0, 1e6)),
    "time": Symbol("number", False, bounds=(1, 120)),
    "income": Symbol("number", True, bounds=(0.0, 1e6)),
    "count": Symbol("number", False, bounds=(-(2**53), 2**53)),
    "free": Symbol("number", False),
    "delta": Symbol("number", False, bounds=(-1.0, 1.0)),
}


@pytest.mark.parametrize(
    ("text", "bounds"),
    [
        ("amount / time", (1.0 / 120, 1e6)),
        ("amount - income * 2", (1.0 - 2e6, 1e6)),
        ("-amount % time", (-120, 120)),
        ("max(abs(-time), coalesce(income, 0))", (0, 1e6)),
        ("if(amount > 5, time, -time)", (-120, 120)),
        ("amount / income", None),  # income can be near 0
        ("amount / delta", None),  # so can delta, between -1 and 1
        ("amount / -time", (-1e6, -1.0 / 120)),
        ("amount + free", None),  # no bounds known
        ("count + 1", None),  # beyond 2**53
        ("len('x') + 1", None),  # a function whose bounds are not tracked
    ],
)
def test_bounds_of_arithmetic(text, bounds):
    """Bounds follow the fields' declared bounds through arithmetic, and are None when unknown or beyond 2**53."""
    assert bounds_of(parse(text), BOUNDED) == bounds


def test_arithmetic_on_bounded_fields_needs_no_guard():
    """A divisor bounded away from 0 is never 0 and arithmetic on doubles cannot overflow the decimal
    range: no zero-division helper and no finiteness check is emitted; a division by a field that
    can be 0 keeps its helper (and is missing at 0)."""
    env = BOUNDED | {n: Symbol("number", True, "derived") for n in ("per_month", "ratio", "bigger")}
    derived = [("per_month", parse("amount / time")), ("ratio", parse("amount / income")), ("bigger", parse("count + 1"))]
    prog = compile_program(env, derived, [parse("amount * 2 > time * 3")])
    lines = prog.source.splitlines()
    assert "_dv(" in next(line for line in lines if "values['per_month']" in line)
    assert "_div(" in next(line for line in lines if "values['ratio']" in line)
    assert "_finite" not in prog.source
    values = {"amount": 10.0, "time": 4, "income": 0.0, "count": 2**53 - 1}
    prog.derive(values)
    assert values["per_month"] == Decimal("2.5") and values["ratio"] is None and values["bigger"] == 2**53
