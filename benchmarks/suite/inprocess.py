"""Cases without a network: the full decision, the rules alone (ours and zen-engine's), the models.

Every case cycles through real inputs of a bundled flow. The rule and model cases run on
*prepared* values: the validated input with derived features and model scores, exactly what the
flow's generated rule function receives inside a decision.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from benchmarks.suite.inputs import FlowInputs
from benchmarks.suite.timing import time_rounds
from engine.runtime.flow import CompiledFlow
from engine.runtime.service import Decider

__all__ = ["FlowBench", "Pinned", "breakdown", "prepare_flow", "run_case"]


@dataclass(frozen=True)
class FlowBench:
    """One flow's live version, its inputs, and the inputs prepared for the rule and model cases."""

    flow: str
    decider: Decider | Pinned
    compiled: CompiledFlow
    inputs: FlowInputs
    validated: tuple[dict[str, Any], ...]
    prepared: tuple[dict[str, Any], ...]  # validated + derived + scores
    rows: tuple[tuple[np.ndarray, ...], ...]  # per model: the encoded rows

    def fired_ids(self, values: dict[str, Any]) -> list[str]:
        rules = self.compiled.rules
        return [rules[i].id for i in self.compiled.program.fired(values)]


def prepare_flow(decider: Decider | Pinned, inputs: FlowInputs) -> FlowBench:
    """Validate, derive and score every input once, the way ``CompiledFlow.evaluate`` does (on the
    version the inputs pin, else the live one)."""
    if inputs.version and isinstance(decider, Decider):
        decider = Pinned(decider, inputs.version)
    compiled, _ = decider.resolve(inputs.flow)
    validated, prepared = [], []
    rows: list[list[np.ndarray]] = [[] for _ in compiled.models]
    for raw in inputs.decoded:
        values = compiled.validator(raw)
        validated.append(dict(values))
        compiled.program.derive(values)
        for m, bound in enumerate(compiled.models):
            x = bound.model.encode(values)
            values[bound.output] = bound.model.score(x)
            rows[m].append(x)
        prepared.append(values)
    return FlowBench(inputs.flow, decider, compiled, inputs, tuple(validated), tuple(prepared), tuple(tuple(r) for r in rows))


def _native_booster(bench: FlowBench) -> Any:
    import lightgbm

    model = bench.compiled.models[0].model
    explainer = model.card.artifacts.explainer  # type: ignore[attr-defined]
    return lightgbm.Booster(model_file=str(model.directory / explainer.file))  # type: ignore[attr-defined]


def _zen(bench: FlowBench, agreement_inputs: int) -> tuple[Callable[[Any], Any], dict[str, Any]]:
    from benchmarks.suite.zen_rules import ZenRules, agreement, flow_rules

    c = bench.compiled
    zen_rules = ZenRules(flow_rules(bench.decider.policies.root, c.flow, c.version))
    inputs = [bench.prepared[i % len(bench.prepared)] for i in range(agreement_inputs)]
    checked = agreement(zen_rules, bench.fired_ids, inputs)
    if not checked["agree"]:
        raise AssertionError(f"zen-engine and Verdict disagree on {c.flow} {c.version}: {checked}")
    return zen_rules.evaluate, {"agreement": checked, "rules": len(c.rules)}


def run_case(name: str, bench: FlowBench, *, warmup: int, iterations: int, rounds: int, agreement_inputs: int) -> dict[str, Any]:
    """Time one in-process case on one flow; the result row (name, flow, statistics, extras)."""
    extra: dict[str, Any] = {}
    flow = bench.flow
    if name == "inprocess_decide":
        decide = bench.decider.decide
        fn: Callable[[Any], Any] = lambda raw: decide(flow, raw)  # noqa: E731
        inputs: Any = bench.inputs.decoded
    elif name == "rules_verdict":
        fn, inputs = bench.compiled.program.fired, bench.prepared
        extra["rules"] = len(bench.compiled.rules)
    elif name == "rules_zen":
        from benchmarks.suite.zen_rules import zen_values

        fn, extra = _zen(bench, agreement_inputs)
        inputs = [zen_values(v) for v in bench.prepared]
    elif name == "model_onnx":
        model = bench.compiled.models[0].model
        fn, inputs = model.score, bench.rows[0]
        extra["model"] = f"{model.name} {model.version}"
    elif name == "model_lightgbm":
        booster = _native_booster(bench)
        fn = lambda x: booster.predict(x, num_threads=1)  # noqa: E731
        inputs = bench.rows[0]
        extra["trees"] = booster.num_trees()
    elif name == "model_explain":
        model = bench.compiled.models[0].model
        fn, inputs = model.explain, bench.rows[0]
        extra["model"] = f"{model.name} {model.version}"
    elif name == "model_explain_lightgbm":
        booster = _native_booster(bench)
        fn = lambda x: booster.predict(x, pred_contrib=True, num_threads=1)  # noqa: E731
        inputs = bench.rows[0]
        extra["trees"] = booster.num_trees()
    else:
        raise ValueError(f"not an in-process case: {name}")
    stats = time_rounds(fn, inputs, warmup=warmup, iterations=iterations, rounds=rounds)
    return {"name": name, "flow": flow, **stats, **extra}


def breakdown(bench: FlowBench, *, warmup: int, iterations: int, rounds: int) -> list[dict[str, Any]]:
    """Where an in-process decision's time goes: each step of ``CompiledFlow.evaluate`` timed alone."""
    c = bench.compiled
    model = c.models[0].model if c.models else None
    model_driven = sum(
        1 for raw in bench.inputs.decoded
        if any(f.uses_model for f in c.evaluate(raw).fired)
    ) / len(bench.inputs.decoded)
    steps: list[tuple[str, Callable[[Any], Any], Any, float]] = [
        ("validate", c.validator, bench.inputs.decoded, 1.0),
        ("derive", c.program.derive, [dict(v) for v in bench.validated], 1.0),
    ]
    if model is not None:
        steps += [
            ("encode", model.encode, bench.prepared, 1.0),
            ("score (onnx)", model.score, bench.rows[0], 1.0),
            ("explain (model reasons)", model.explain, bench.rows[0], model_driven),
        ]
    steps += [
        ("rules", c.program.fired, bench.prepared, 1.0),
        ("evaluate (all of the above + ranking)", c.evaluate, bench.inputs.decoded, 1.0),
        ("decide (+ routing, id, Decision)", lambda raw: bench.decider.decide(c.flow, raw), bench.inputs.decoded, 1.0),
    ]
    out = []
    for step, fn, inputs, share in steps:
        stats = time_rounds(fn, inputs, warmup=warmup, iterations=iterations, rounds=rounds)
        out.append({"flow": c.flow, "step": step, "share_of_requests": round(share, 4),
                    "p50_us": stats["p50_us"], "mean_us": stats["mean_us"], "p99_us": stats["p99_us"],
                    "mean_per_request_us": stats["mean_us"] * share})
    return out


class Pinned:
    """A Decider whose requests all go to one version of a flow (for cases on a version that is not live)."""

    def __init__(self, decider: Decider, version: str) -> None:
        self._decider = decider
        self._version = version
        self.policies = decider.policies

    def resolve(self, flow: str, version: str = "") -> Any:
        return self._decider.resolve(flow, self._version)

    def decide(self, flow: str, raw: Any) -> Any:
        return self._decider.decide(flow, raw, version=self._version)
