"""Decimal semantics of numbers (issue 10, items 1 and 2) and long expressions (item 5).

The case inputs are copies of the published fault cases, under tests/data/ (see each ORIGIN.txt).
"""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.cli import main
from engine.errors import InvalidInput
from engine.expr import parse
from engine.expr.check import Symbol
from engine.expr.codegen import MAX_NESTING, compile_program, derived_symbol
from engine.grpc.convert import struct_to_dict, to_struct
from engine.policy.loader import load
from engine.policy.satisfy import Domain, never_true
from engine.runtime.flow import CompiledFlow
from tests.unit.policy_roots import write

DATA = Path(__file__).resolve().parents[1] / "data"
MARGIN = DATA / "decimal_boundary_margin"
BIGINT = DATA / "bigint_2pow53"
DEEP = DATA / "deep_expression"


def _decide_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any] | None, str]:
    code = main(["decide", *args])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else None), err


def _fired(answer: dict[str, Any] | None) -> set[str]:
    assert answer is not None
    return {f["id"] for f in answer.get("fired_rules", [])}


def _program(env: dict[str, Symbol], derived: list[tuple[str, str]], conditions: list[str]) -> tuple[Any, dict[str, Symbol]]:
    env = dict(env)
    parsed = []
    for name, text in derived:
        node = parse(text)
        env[name] = derived_symbol(node, env)
        parsed.append((name, node))
    return compile_program(env, parsed, [parse(c) for c in conditions]), env


NUMS = {"x": Symbol("number", True), "y": Symbol("number", True), "n": Symbol("number", True)}


def _fires(conditions: list[str], derived: list[tuple[str, str]] | None = None, **values: Any) -> list[str]:
    program, _ = _program(NUMS, derived or [], conditions)
    vals = {k: values.get(k) for k in NUMS}
    program.derive(vals)
    return [conditions[i] for i in program.fired(vals)]


class TestDecimalSemantics:
    """Numbers compare as the decimals written: literals, request numbers, arithmetic, functions,
    table cells, on both rule backends and in the lint checker."""

    def test_cents_at_the_affordability_cut_off_approve_like_whole_amounts(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Case decimal-boundary-margin: income 100.10, expenses 50.10 is a margin of 50.00, not < 50:
        credit_application v1 approves it with no rule fired, as it does 100.00 / 50.00."""
        for name in ("app_cents.json", "app_cents_control.json"):
            code, answer, err = _decide_cli(capsys, "credit_application", "--version", "1", "--input", str(MARGIN / name))
            assert code == 0, err
            assert answer is not None and answer["action"] == "APPROVE" and _fired(answer) == set(), name

    def test_a_forty_percent_ratio_meets_its_cut_off_and_its_table_cell(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Case custom_ratio_040: 1.20 / 3.00 is 0.40, so `ltp >= 0.4`, the cell [0.4..0.75) and the
        range 0.4..0.75 all hold: REVIEW with LTP_GE_04, T.1 and T.3."""
        code, answer, err = _decide_cli(capsys, "qa", "--root", str(MARGIN / "custom_root"), "--input", str(MARGIN / "custom_ratio_040.json"))
        assert code == 0, err
        assert answer is not None and answer["action"] == "REVIEW"
        assert _fired(answer) == {"LTP_GE_04", "T.1", "T.3"}

    def test_round_is_half_to_even_on_the_decimal_written(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Case custom_round_2675: round(2.675, 2) is 2.68 (the decimal 2.675, half to even), not the
        double's 2.67; round(2.675) is 3."""
        code, answer, err = _decide_cli(capsys, "qa", "--root", str(MARGIN / "custom_root"), "--input", str(MARGIN / "custom_round_2675.json"))
        assert code == 0, err
        assert _fired(answer) == {"R2_268", "R_3"}

    @pytest.mark.parametrize(
        ("condition", "values", "holds"),
        [
            ("x + y == 0.3", {"x": 0.1, "y": 0.2}, True),  # 0.30000000000000004 in doubles
            ("x - y < 50", {"x": 100.1, "y": 50.1}, False),
            ("x / y >= 0.4", {"x": 1.2, "y": 3.0}, True),
            ("x * y == 0.0003", {"x": 0.01, "y": 0.03}, True),
            ("x * 3 == 0.3", {"x": 0.1}, True),
            ("x / 3 * 3 == x", {"x": 1.0}, False),  # 0.999...9 (34 digits): decimal division rounds too
            ("x % 0.1 == 0", {"x": 0.3}, True),  # 0.3 % 0.1 is 0.09999999999999998 in doubles
            ("-x % 3 == 1", {"x": 2.0}, True),  # the remainder takes the divisor's sign
            ("x > 0.1000000000000000000001", {"x": 0.1}, False),  # a literal no double holds
            ("x < 0.1000000000000000000001", {"x": 0.1}, True),
            ("x == 9007199254740993", {"x": 9007199254740992.0}, False),
            ("x < 9007199254740993", {"x": 9007199254740992.0}, True),
            ("x > 99999999999999995000000", {"x": 1e23}, True),  # 1e23 is written 1e23, not its binary value
            ("x in [0.1000000000000000000001, 0.3]", {"x": 0.3}, True),
            ("x in [0.1000000000000000000001]", {"x": 0.1}, False),
            ("x - y in [50, 51]", {"x": 100.1, "y": 50.1}, True),
            ("between(x + y, 0.3, 0.3)", {"x": 0.1, "y": 0.2}, True),
            ("round(x, 2) == 2.68", {"x": 2.675}, True),
            ("round(x, 1) == 0.2", {"x": 0.25}, True),  # half to even
            ("round(x, 1) == 0.4", {"x": 0.35}, True),  # 0.35 is 0.34999999999999997... as a double
            ("round(x) == 2", {"x": 2.5}, True),
            ("round(x, -2) == 1200", {"x": 1250.0}, True),
            ("round(x, 2) == x", {"x": 1.5}, True),
            ("abs(x - y) == 50", {"x": 50.1, "y": 100.1}, True),
            ("min(x - y, 50) == 50", {"x": 100.1, "y": 50.1}, True),
            ("max(x / y, 0.4) == 0.4", {"x": 1.2, "y": 3.0}, True),
            ("max(x, y - 0.1) == 0.2", {"x": 0.1, "y": 0.3}, True),
            ("coalesce(n, x + y) == 0.3", {"x": 0.1, "y": 0.2}, True),
            ("if(x > 0, x + y, y) == 0.3", {"x": 0.1, "y": 0.2}, True),
            ("floor(x + y) == 1", {"x": 0.7, "y": 0.3}, True),  # 0.7 + 0.3 is 0.9999999999999999 in doubles
            ("ceil(x * 3) == 1", {"x": 0.1 + 0.2 - 0.2}, True),
            ("sqrt(x) == 1.1", {"x": 1.21}, True),
            ("log(x) > 2.302585092994045", {"x": 10.0}, True),  # ln 10 = 2.302585092994045684...
            ("-(x - y) == -50", {"x": 100.1, "y": 50.1}, True),
        ],
    )
    def test_conditions_compare_decimals(self, condition: str, values: dict[str, Any], holds: bool) -> None:
        """Each condition holds exactly when decimal arithmetic says so (and its negation the opposite)."""
        assert _fires([condition], **values) == ([condition] if holds else [])
        assert _fires([f"not ({condition})"], **values) == ([] if holds else [f"not ({condition})"])

    def test_derived_features_hold_decimals_and_comparisons_of_doubles_stay_doubles(self) -> None:
        """A derived feature computed by arithmetic is a Decimal (ratio 0.4, margin 50.0); a test of
        a request number against a literal a double holds compiles to a plain double comparison."""
        program, env = _program(NUMS, [("ratio", "x / y"), ("margin", "x - y"), ("top", "max(x, y)")], ["x > 0.5", "ratio >= 0.4", "top == 3"])
        values: dict[str, Any] = {"x": 1.2, "y": 3.0, "n": None}
        program.derive(values)
        assert values["ratio"] == Decimal("0.4") and type(values["ratio"]) is Decimal
        assert type(values["top"]) is float and env["top"].decimal is False and env["ratio"].decimal is True
        assert program.fired(values) == [0, 1, 2]
        fired_source = program.source.split("def fired")[1]
        assert "(v2 is not None and v2 > 0.5)" in fired_source or "> 0.5)" in fired_source
        assert "_D(" not in fired_source.split("fired = []")[1]  # no conversion inside the rules

    def test_models_receive_derived_decimals_as_the_nearest_double(self) -> None:
        """A model's numeric encoder turns a derived Decimal into the nearest float (model inputs stay floats)."""
        from engine.models.encoding import FeatureSpec, make_encoder

        encode = make_encoder(FeatureSpec("ratio", "numeric"))
        assert encode(Decimal("0.4")) == 0.4 and type(encode(Decimal("1") / Decimal("3"))) is float

    def test_table_cells_and_ranges_compare_decimals(self, tmp_path: Path) -> None:
        """A decision table on an expression column (amount / price) matches [0.4..0.75) and 0.4..0.75
        for 1.20 / 3.00, and the compiled and durable-rules backends agree on the case inputs."""
        root = tmp_path / "root"
        shutil.copytree(MARGIN / "custom_root", root)
        table = (root / "rules/qa/table.yaml").read_text()
        (root / "rules/qa/table.yaml").write_text(table.replace("columns: [ltp]", "columns: [amount / price]"))
        result = load(root)
        assert result.errors == [], [str(p) for p in result.errors]
        flow = result.policies.flows["qa"].versions["1"]  # type: ignore[union-attr]
        outcome = flow.evaluate({"amount": 1.2, "price": 3.0})
        assert {f.id for f in outcome.fired} == {"LTP_GE_04", "T.1", "T.3"}

    def test_both_backends_decide_the_case_inputs_alike(self, tmp_path: Path) -> None:
        """The custom case flow with every rule file on durable-rules decides every case input (and
        inputs around the cut-offs) exactly as the compiled fast path does."""
        flows: dict[str, CompiledFlow] = {}
        for name in ("compiled", "durable"):
            root = tmp_path / name
            shutil.copytree(MARGIN / "custom_root", root)
            if name == "durable":
                for path in (root / "rules/qa").glob("*.yaml"):
                    head, rest = path.read_text().split("\n", 1)
                    path.write_text(f"{head}\nengine: durable\n{rest}")
            result = load(root)
            assert result.errors == [], [str(p) for p in result.errors]
            flows[name] = result.policies.flows["qa"].versions["1"]  # type: ignore[union-attr]
        assert flows["durable"].durable is not None and flows["compiled"].durable is None
        inputs = [json.loads((MARGIN / f).read_text(), parse_float=float) for f in ("custom_ratio_040.json", "custom_round_2675.json")]
        inputs += [{"amount": a, "price": p, "a": 0.1, "b": 0.2, "x": x, "d": 2.0} for a, p, x in [
            (1.2, 3.0, 2.5), (2.25, 3.0, 3.5), (2.7, 3.0, -2.5), (0.3999999999999999, 1.0, 2.665), (0.9, 1.0, -1.0),
        ]]
        for raw in inputs:
            a, b = flows["durable"].evaluate(dict(raw)), flows["compiled"].evaluate(dict(raw))
            assert (a.action, a.fired) == (b.action, b.fired), raw
        both = flows["durable"].evaluate({"a": 0.1, "b": 0.2})
        assert {f.id for f in both.fired} == {"S_GE_03", "S_EQ_03"}  # 0.1 + 0.2 is 0.3

    def test_the_lint_checker_reasons_in_decimals(self) -> None:
        """never_true agrees with the runtime: a derived decimal can lie between 0.1 and
        0.1000000000000000000001 (satisfiable), but nothing is both >= 0.4 and < 0.4."""
        domains = {"d": Domain(nullable=True)}
        assert never_true(parse("d > 0.1 and d < 0.1000000000000000000001"), domains) is None
        assert never_true(parse("d >= 0.4 and d < 0.4"), domains) is not None
        assert never_true(parse("d in [0.1000000000000000000001] and d == 0.1"), domains) is not None
        assert _fires(["d > 0.1 and d < 0.1000000000000000000001"], [("d", "x + y")], x=0.1, y=1e-23) != []


class TestWholeNumbersBeyondTwoToThe53:
    """A whole number that a request cannot carry exactly is refused (out_of_range) on every path,
    and no message quotes a value the caller did not send."""

    def test_the_cli_refuses_2_53_plus_1_and_plus_3_naming_what_was_sent(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Case bigint-2pow53-cli: 9007199254740993 and ...995 are refused (exit 2, out_of_range),
        quoted as written, instead of deciding on ...992 (which a rule for another account matches)."""
        for name, sent in (("input_2pow53_plus1.json", "9007199254740993"), ("input_2pow53_plus3.json", "9007199254740995")):
            code, _, err = _decide_cli(capsys, "qa", "--root", str(BIGINT / "root"), "--input", str(BIGINT / name))
            assert code == 2
            assert "account: must be at most 9007199254740991" in err and f"got {sent} [out_of_range]" in err
            assert "9007199254740996" not in err and "9007199254740992" not in err

    def test_grpc_struct_values_at_2_53_are_refused_without_quoting_them(self) -> None:
        """Over gRPC 2**53 + 1 arrives as the double 2**53 (the client rounded it): the robust limit
        is 2**53 - 1, and the message does not claim the caller sent 9007199254740992."""
        flow = load(BIGINT / "root").policies.flows["qa"].versions["1"]  # type: ignore[union-attr]
        for sent in (9007199254740993, 2**53, 9007199254740995):
            raw = struct_to_dict(to_struct({"account": sent}))
            with pytest.raises(InvalidInput) as info:
                flow.evaluate(raw)
            (error,) = info.value.errors
            assert (error.field, error.code) == ("account", "out_of_range") and "got" not in error.message
        assert flow.evaluate(struct_to_dict(to_struct({"account": 2**53 - 1}))).action.name in ("APPROVE", "REVIEW", "DECLINE")

    def test_a_policy_test_case_and_a_replayed_input_are_refused_too(self, tmp_path: Path) -> None:
        """`verdict test` case files (YAML ints, exact) and replayed log inputs (JSON) go through the
        same validation: 9007199254740993 is refused there as well."""
        root = tmp_path / "root"
        shutil.copytree(BIGINT / "root", root)
        write(root, "policies/qa/1/tests/big.yaml", "cases:\n  - name: beyond 2**53\n    input: {account: 9007199254740993}\n    expect: {invalid: [account]}\n")
        from engine.policy.policytest import run_root

        report = run_root(root)
        assert report.ok and len(report.results) == 1
        flow = load(root).policies.flows["qa"].versions["1"]  # type: ignore[union-attr]
        with pytest.raises(InvalidInput):
            flow.evaluate(json.loads('{"account": 9007199254740993}'))


def _deep_root(tmp_path: Path, derived: str, when: str = "total > 100") -> Path:
    root = tmp_path / "deep"
    shutil.copytree(DEEP / "root", root)
    flow = root / "policies/qa/1/flow.yaml"
    lines = [f"  total: {derived}" if line.startswith("  total:") else line for line in flow.read_text().splitlines()]
    flow.write_text("\n".join(lines) + "\n")
    rules = root / "rules/qa/rules.yaml"
    rules.write_text(rules.read_text().replace("total > 100", when) if "total > 100" in rules.read_text() else rules.read_text())
    return root


class TestLongExpressions:
    """Any expression the parser accepts compiles, or is a problem with file, line and code: never a traceback."""

    def test_the_110_term_sum_compiles_and_decides(self, capsys: pytest.CaptureFixture[str]) -> None:
        """Case deep-expression-loader-crash: x = 1 gives total 110 -> REVIEW by rule BIG; lint is clean."""
        assert main(["lint", "--root", str(DEEP / "root")]) == 0
        capsys.readouterr()
        code, answer, err = _decide_cli(capsys, "qa", "--root", str(DEEP / "root"), "--input", str(DEEP / "input.json"))
        assert code == 0, err
        assert answer is not None and answer["action"] == "REVIEW" and _fired(answer) == {"BIG"}

    @pytest.mark.parametrize("terms", [200, 1000, 1998])
    def test_chains_up_to_the_length_limit_compile_and_compute(self, tmp_path: Path, terms: int) -> None:
        """Sums of up to 1,998 terms (3,995 characters; the limit is 4,000) and mixed chains compile
        into flat code and compute the exact total, in derived features and in conditions."""
        env = {"x": Symbol("number", True)}
        chain = "+".join(["x"] * terms)
        mixed = "x" + "".join(f" {op} x" for op in ["+", "*", "-", "/"] * ((terms - 1) // 8))
        program, _ = _program(env, [("total", chain), ("mixed", mixed)], [f"{chain} > 0", "total > 1"])
        values: dict[str, Any] = {"x": 0.1}
        program.derive(values)
        assert values["total"] == Decimal(terms) / 10
        assert program.fired(values) == [0, 1]
        assert max(len(line) - len(line.lstrip("(")) for line in program.source.splitlines()) < MAX_NESTING

    @pytest.mark.parametrize(
        "text",
        [
            "(" * 63 + "x + 1" + ")" * 63,
            "x - (" * 63 + "x" + ")" * 63,
            "-" * 63 + "x",
            "abs(" * 63 + "x" + ")" * 63,
            "coalesce(" * 63 + "x" + ", 1)" * 63,
            "if(x > 0, " * 30 + "x" + ", 0)" * 30,
        ],
    )
    def test_nesting_up_to_the_parser_limit_compiles_or_is_reported(self, tmp_path: Path, text: str) -> None:
        """Nesting up to the parser's 64 levels either compiles and evaluates, or is refused at load
        with file, line and the code expression_too_complex; never an exception."""
        root = _deep_root(tmp_path, text)
        result = load(root)
        if result.errors:
            (problem,) = result.errors
            assert (problem.code, problem.path, problem.line) == ("expression_too_complex", "policies/qa/1/flow.yaml", 9)
            assert problem.hint and "derived features" in problem.hint
        else:
            flow = result.policies.flows["qa"].versions["1"]  # type: ignore[union-attr]
            outcome = flow.evaluate({"x": 1.0})
            assert outcome.features["total"] is not None

    def test_any_failure_while_compiling_a_flow_is_a_problem(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """A RecursionError, MemoryError or SyntaxError out of compiling becomes a problem with the
        flow file, its line and the code compile_failed; load() never raises."""
        import engine.policy.compiler

        for error in (RecursionError("deep"), MemoryError(), SyntaxError("too many nested parentheses")):
            def boom(*args: Any, error: BaseException = error, **kwargs: Any) -> Any:
                raise error

            monkeypatch.setattr(engine.policy.compiler, "compile_program", boom)
            result = load(DEEP / "root")
            (problem,) = result.errors
            assert (problem.code, problem.path, problem.line) == ("compile_failed", "policies/qa/1/flow.yaml", 1)

    def test_code_nested_beyond_what_cpython_compiles_is_refused_with_its_location(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The guard counts the brackets of each expression's generated code: beyond MAX_NESTING the
        derived feature is refused (expression_too_complex, file and line), before CPython sees it."""
        import engine.expr.codegen

        monkeypatch.setattr(engine.expr.codegen, "MAX_NESTING", 0)
        result = load(DEEP / "root")
        (problem,) = result.errors
        assert (problem.code, problem.path, problem.line, problem.field) == ("expression_too_complex", "policies/qa/1/flow.yaml", 9, "total")
