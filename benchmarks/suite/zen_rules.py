"""A flow's rules as a GoRules zen-engine decision graph (JDM), generated from our rule files.

The graph is ``input -> decision table -> output``: a table with hit policy ``collect``, one input
column with no field (so each cell is a whole zen expression) and one output column, the rule id.
Each row is one of our rules, its condition translated from our AST. Our conditions are
three-valued (a test over a missing value is false, and so is its negation; see
docs/expressions.md), so the translation pushes negations down exactly as our code generator does
and guards every value that can be missing with ``!= null``; a divisor that is not a non-zero
literal is guarded with ``!= 0`` (our division by zero is missing). Decision-table rows with
``hit: first`` carry the "earlier rows did not match" guards our compiler gives them.

Functions zen has no exact equivalent for (log, sqrt, coalesce, round half-to-even) raise
``Unsupported``; ``agreement`` proves the translation on real inputs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from engine.expr import check, names_in, parse
from engine.expr.check import Env, Symbol
from engine.expr.nodes import BinOp, BoolOp, Call, Compare, InList, Literal, Name, Neg, Node, Not, lists_in
from engine.policy.compiler import flow_env
from engine.policy.schema import FlowFile, RuleFile
from engine.policy.tables import expand_tables
from engine.policy.yamlio import load_yaml
from engine.types import Action

__all__ = ["FlowRules", "Unsupported", "ZenRules", "agreement", "flow_rules", "jdm", "zen_condition", "zen_values"]

_NEGATED = {"==": "!=", "!=": "==", "<": ">=", "<=": ">", ">": "<=", ">=": "<"}
_SIMPLE_FUNCTIONS = {  # ours -> zen, same meaning for present arguments
    "abs": "abs", "floor": "floor", "ceil": "ceil", "len": "len", "lower": "lower", "upper": "upper",
    "contains": "contains", "starts_with": "startsWith", "ends_with": "endsWith",
}


class Unsupported(ValueError):
    """A construct of our expression language with no exact zen translation."""


@dataclass(frozen=True)
class FlowRules:
    """A flow version's rule conditions as our compiler sees them, in compiled order."""

    flow: str
    version: str
    env: Env
    rules: tuple[tuple[str, Action, Node], ...]  # (rule id, action, condition)
    default_action: Action


def _rule_files(root: Path) -> dict[str, tuple[str, Any, RuleFile]]:
    out: dict[str, tuple[str, Any, RuleFile]] = {}
    rules_dir = root / "rules"
    for path in sorted(rules_dir.rglob("*.y*ml")):
        rel = path.relative_to(rules_dir)
        if path.name.endswith((".test.yaml", ".test.yml")) or "tests" in rel.parts[:-1]:
            continue
        doc = load_yaml(path.read_text())
        parsed = RuleFile.model_validate(doc.data)
        out[parsed.ruleset] = (str(path.relative_to(root)), doc, parsed)
    return out


def flow_rules(root: Path, flow: str, version: str) -> FlowRules:
    """Read a flow version and its rule files under ``root`` into typed conditions."""
    doc = load_yaml((root / "policies" / flow / version / "flow.yaml").read_text())
    file = FlowFile.model_validate(doc.data)
    env: dict[str, Symbol] = dict(flow_env(file))
    pending = {name: parse(text) for name, text in file.derived.items()}
    while pending:  # derived features may read each other: check them in dependency order
        ready = [n for n, node in pending.items() if not (names_in(node) & set(pending))]
        if not ready:
            raise Unsupported(f"derived features of {flow} {version} depend on each other in a cycle")
        for name in ready:
            t = check(pending.pop(name), env)
            env[name] = Symbol(t.type if t.type != "null" else "number", t.nullable, "derived")
    for ref in file.models:
        env[ref.output] = Symbol("number", False, "score")
    files = _rule_files(root)
    rules: list[tuple[str, Action, Node]] = []
    for name in file.rulesets:
        path, rdoc, rfile = files[name]
        # zen-engine has no custom lists (x in list('name')): those rules are left out of both sides'
        # comparison; the rules cases run with every custom list empty, where they never fire.
        rules += [(r.id, Action[r.action], node) for r in rfile.rules if r.enabled
                  and not lists_in(node := parse(r.when))]
        rows, problems = expand_tables(rfile.tables, path, rdoc, env)
        if problems:
            raise Unsupported(f"{path}: {problems[0].message}")
        rules += [(row.id, Action[row.action], row.node) for row in rows]
    return FlowRules(flow, version, env, tuple(rules), Action[file.default.action])


# --- translation ------------------------------------------------------------------------------


def _literal(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        text = repr(value)
        return format(Decimal(text), "f") if "e" in text or "E" in text else text
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


class _Zen:
    def __init__(self, env: Env) -> None:
        self.env = env

    def nullable(self, node: Node) -> bool:
        return check(node, self.env).nullable

    # A value is (zen expression, list of zen tests that hold when it is present).
    def value(self, node: Node) -> tuple[str, list[str]]:
        if isinstance(node, Literal):
            return _literal(node.value), (["false"] if node.value is None else [])
        if isinstance(node, Name):
            return node.name, ([f"{node.name} != null"] if self.nullable(node) else [])
        if isinstance(node, Neg):
            code, guards = self.value(node.operand)
            return f"(-{code})", guards
        if isinstance(node, BinOp):
            left, lg = self.value(node.left)
            right, rg = self.value(node.right)
            guards = lg + rg
            if node.op in ("/", "%") and not (isinstance(node.right, Literal) and node.right.value not in (0, 0.0)):
                guards.append(f"{right} != 0")
            return f"({left} {node.op} {right})", guards
        if isinstance(node, Call):
            return self._call(node)
        raise Unsupported(f"{type(node).__name__} used as a value")

    def _call(self, node: Call) -> tuple[str, list[str]]:
        parts = [self.value(a) for a in node.args]
        guards = [g for _, gs in parts for g in gs]
        args = [code for code, _ in parts]
        if node.func in _SIMPLE_FUNCTIONS:
            return f"{_SIMPLE_FUNCTIONS[node.func]}({', '.join(args)})", guards
        if node.func in ("min", "max"):
            return f"{node.func}([{', '.join(args)}])", guards
        raise Unsupported(f"function {node.func}()")

    def cond(self, node: Node, positive: bool) -> str:
        """A zen expression true exactly when our condition holds (positive) or is false (negative)."""
        if isinstance(node, BoolOp):
            op = node.op if positive else ("or" if node.op == "and" else "and")
            return "(" + f" {op} ".join(self.cond(i, positive) for i in node.items) + ")"
        if isinstance(node, Not):
            return self.cond(node.operand, not positive)
        if isinstance(node, Compare):
            op = node.op if positive else _NEGATED[node.op]
            left, lg = self.value(node.left)
            right, rg = self.value(node.right)
            return "(" + " and ".join([*lg, *rg, f"{left} {op} {right}"]) + ")"
        if isinstance(node, InList):
            operand, guards = self.value(node.operand)
            op = "not in" if node.negated == positive else "in"
            items = ", ".join(_literal(i.value) for i in node.items)
            return "(" + " and ".join([*guards, f"{operand} {op} [{items}]"]) + ")"
        if isinstance(node, Literal):
            if node.value is None:
                return "false"
            return "true" if bool(node.value) == positive else "false"
        if isinstance(node, Call) and node.func in ("is_null", "is_not_null"):
            _, guards = self.value(node.args[0])
            present = "(" + " and ".join(guards) + ")" if guards else "true"
            want_present = (node.func == "is_not_null") == positive
            return present if want_present else f"(not {present})"
        if isinstance(node, Call) and node.func == "if":
            c, then, other = node.args
            test, yes, no = self.cond(c, True), self.cond(then, positive), self.cond(other, positive)
            if (yes, no) == ("false", "true"):  # a first-hit table's "row did not match"
                return f"(not {test})"
            if (yes, no) == ("true", "false"):
                return test
            return f"(({test} and {yes}) or ((not {test}) and {no}))"
        if isinstance(node, Call) and node.func == "between":
            (x, xg), (lo, lg), (hi, hg) = (self.value(a) for a in node.args)
            test = f"{lo} <= {x} and {x} <= {hi}" if positive else f"({x} < {lo} or {x} > {hi})"
            return "(" + " and ".join([*xg, *lg, *hg, test]) + ")"
        code, guards = self.value(node)  # a bool-valued name or function
        test = f"{code} == true" if positive else f"{code} == false"
        return "(" + " and ".join([*guards, test]) + ")" if guards else test


def zen_condition(node: Node, env: Env) -> str:
    """Our condition as a zen expression with our missing-value semantics."""
    return _Zen(env).cond(node, True)


def jdm(rules: FlowRules) -> dict[str, Any]:
    """The JDM decision graph: input -> collect table (one row per rule, output its id) -> output."""
    rows = [
        {"_id": f"r{i}", "c": zen_condition(node, rules.env), "o": _literal(rule_id)}
        for i, (rule_id, _, node) in enumerate(rules.rules)
    ]
    table = {
        "id": "rules", "type": "decisionTableNode", "name": f"{rules.flow} {rules.version}",
        "position": {"x": 200, "y": 0},
        "content": {
            "hitPolicy": "collect",
            "inputs": [{"id": "c", "name": "condition", "field": ""}],
            "outputs": [{"id": "o", "name": "rule", "field": "rule"}],
            "rules": rows,
        },
    }
    return {
        "nodes": [
            {"id": "in", "type": "inputNode", "name": "request", "position": {"x": 0, "y": 0}},
            table,
            {"id": "out", "type": "outputNode", "name": "response", "position": {"x": 400, "y": 0}},
        ],
        "edges": [
            {"id": "e1", "sourceId": "in", "targetId": "rules", "type": "edge"},
            {"id": "e2", "sourceId": "rules", "targetId": "out", "type": "edge"},
        ],
    }


def zen_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Prepared values as zen-engine takes them: our derived decimals (``Decimal``) as numbers
    (floats; zen's bindings take no ``Decimal``). Done before timing, not in the timed call."""
    return {k: float(v) if isinstance(v, Decimal) else v for k, v in values.items()}


class ZenRules:
    """A zen-engine evaluating a flow's rules: ``fired(values) -> rule ids``.

    Uses ``ZenEngine.evaluate`` with a static loader, the fastest way to call zen-engine from
    Python that we measured (a callback loader is called on every evaluation, and
    ``create_decision(...).evaluate`` costs far more per call).
    """

    def __init__(self, rules: FlowRules) -> None:
        import zen

        self.rules = rules
        self.graph = jdm(rules)
        self._engine = zen.ZenEngine({"loader": {"type": "static", "content": {"rules": self.graph}}})
        self._actions = {rule_id: action for rule_id, action, _ in rules.rules}

    def evaluate(self, values: Mapping[str, Any]) -> Any:
        """zen's raw answer for one input (the timed call)."""
        return self._engine.evaluate("rules", values)

    def fired(self, values: Mapping[str, Any]) -> list[str]:
        """Ids of the rules zen finds true."""
        result = self.evaluate(zen_values(values))["result"]
        if isinstance(result, dict):  # one match may come back unwrapped
            result = [result]
        return [r["rule"] for r in result]

    def action(self, fired: Sequence[str]) -> Action:
        return max((self._actions[r] for r in fired), default=self.rules.default_action)

    def to_json(self) -> str:
        return json.dumps(self.graph, indent=1)


def agreement(
    zen_rules: ZenRules, ours: Callable[[dict[str, Any]], list[str]], inputs: Sequence[dict[str, Any]]
) -> dict[str, Any]:
    """Compare fired rules and actions of zen and ours on prepared inputs; the disagreements, if any."""
    action_mismatch = fired_mismatch = 0
    examples: list[dict[str, Any]] = []
    for values in inputs:
        mine = sorted(ours(dict(values)))
        theirs = sorted(zen_rules.fired(values))
        if mine != theirs:
            fired_mismatch += 1
            if len(examples) < 3:
                examples.append({"ours": mine, "zen": theirs, "input": {k: v for k, v in values.items()}})
        if zen_rules.action(mine) != zen_rules.action(theirs):
            action_mismatch += 1
    return {
        "inputs": len(inputs),
        "action_mismatches": action_mismatch,
        "fired_mismatches": fired_mismatch,
        "agree": action_mismatch == 0 and fired_mismatch == 0,
        "examples": examples,
    }
