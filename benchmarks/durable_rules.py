"""Rules on durable-rules vs the compiled fast path: per-call latency on the bundled flows' real inputs.

Loads the bundled policy root twice: as it is (every ruleset compiled into one generated Python
function) and as a temporary copy with every rule file marked ``engine: durable`` (every rule run
by durable-rules' Rete engine through ``engine.policy.durable_ruleset.DurableRuleset``). For every version of
every flow with bundled data, the real inputs (data/*.csv, decoded as the server's wire codec
decodes them) are decided both ways first: the fired rules, the action, the reasons and the scores
must be equal on every input, or the run stops with the first difference. Then it times, call by
call (warm-up, then the median of ``--rounds`` rounds, as benchmarks/run.py does):

* ``rules``: the rules alone on prepared values (validated, derived, scored): the generated
  function vs ``DurableRuleset.fired`` (fact JSON, assert, actions, session deleted);
* ``decision``: the whole ``CompiledFlow.evaluate`` (validation, derived features, model, rules,
  reasons) with each backend, on a quarter as many calls.

    python -m benchmarks.durable_rules [--calls 20000] [--rounds 3] [--json out.json]

docs/durable-rules.md quotes a run of it. Prints a table; ``--json`` also writes every number with
the machine, library versions, commit and load.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.suite.benchroot import copy_root
from benchmarks.suite.inputs import FlowInputs, flow_inputs
from benchmarks.suite.machine import git_commit, load_average, machine_info
from benchmarks.suite.timing import time_rounds
from engine.policy.loader import load_policies
from engine.runtime.flow import CompiledFlow
from engine.types import Outcome

ROOT = Path(__file__).resolve().parents[1]
DATA_FLOWS = ("credit_application", "card_payment")  # the flows with real inputs in data/

_ENGINE_LINE = re.compile(r"^engine:.*$", re.MULTILINE)
_RULESET_LINE = re.compile(r"^ruleset:.*$", re.MULTILINE)


class Disagreement(Exception):
    """The two backends gave different answers: the benchmark's numbers would mean nothing."""


def mark_durable(text: str) -> str:
    """A rule file's text with ``engine: durable`` as its top-level engine."""
    if _ENGINE_LINE.search(text):
        return _ENGINE_LINE.sub("engine: durable", text, count=1)
    if not _RULESET_LINE.search(text):
        raise ValueError("not a rule file: no top-level 'ruleset:' line")
    return _RULESET_LINE.sub(lambda m: m.group(0) + "\nengine: durable", text, count=1)


def all_durable_root(dest: Path) -> Path:
    """A copy of the bundled policy root with every rule file on durable-rules."""
    copy_root(ROOT, dest)
    for lock in (dest / "policies").rglob("release.lock"):
        lock.unlink()  # the marked copy is not the released content: the lock would refuse it
    rules = dest / "rules"
    for path in sorted(rules.rglob("*.yaml")):
        if "tests" not in path.relative_to(rules).parts:  # policy test cases, not rule files
            path.write_text(mark_durable(path.read_text()))
    return dest


def _answer(outcome: Outcome) -> tuple[Any, ...]:
    return outcome.action, outcome.reasons, outcome.fired, dict(outcome.scores)


def check_agreement(compiled: CompiledFlow, on_durable: CompiledFlow, inputs: FlowInputs) -> dict[str, Any]:
    """Decide every input both ways and compare the rules, then the decisions; the prepared values and a summary."""
    label = f"{compiled.flow} {compiled.version}"
    ids = [r.id for r in compiled.rules]
    if [r.id for r in on_durable.rules] != ids:
        raise Disagreement(f"{label}: the two loads have different rules")
    durable = on_durable.durable
    if durable is None or durable.indexes != tuple(range(len(ids))):
        raise Disagreement(f"{label}: not every rule is on durable-rules in the marked copy")
    prepared: list[dict[str, Any]] = []
    fired_once: set[str] = set()
    actions: dict[str, int] = {}
    for raw in inputs.decoded:
        values = compiled.validator(raw)  # the bundled data is valid: an error here is a bug
        compiled.program.derive(values)
        for bound in compiled.models:
            values[bound.output] = bound.model.score(bound.model.encode(values))
        want = [ids[i] for i in compiled.program.fired(dict(values))]
        if on_durable.program.fired(dict(values)):
            raise Disagreement(f"{label}: the marked copy's generated function fires rules")
        got = [ids[i] for i in durable.fired(values)]
        if got != want:
            raise Disagreement(f"{label}: rules fired on {raw}: compiled {want}, durable-rules {got}")
        a, b = compiled.evaluate(dict(raw)), on_durable.evaluate(dict(raw))
        if _answer(a) != _answer(b):
            raise Disagreement(f"{label}: decisions differ on {raw}:\n  compiled      {_answer(a)}\n  durable-rules {_answer(b)}")
        prepared.append(values)
        fired_once.update(want)
        actions[a.action.name] = actions.get(a.action.name, 0) + 1
    return {
        "prepared": prepared,
        "inputs": len(prepared),
        "rules_fired_at_least_once": len(fired_once),
        "rules_never_fired": [i for i in ids if i not in fired_once],
        "actions": dict(sorted(actions.items())),
    }


def run(calls: int, rounds: int, limit: int) -> dict[str, Any]:
    """Check agreement, then time both backends on every flow version with bundled data."""
    machine = machine_info()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="verdict-durable-") as tmp:
        compiled_set = load_policies(copy_root(ROOT, Path(tmp) / "compiled"))
        durable_set = load_policies(all_durable_root(Path(tmp) / "durable"))
    warmup = min(2000, calls)
    cases: list[dict[str, Any]] = []
    for flow_name in DATA_FLOWS:
        inputs = flow_inputs(ROOT, flow_name, limit)
        for version, compiled in sorted(compiled_set.flows[flow_name].versions.items()):
            on_durable = durable_set.flows[flow_name].versions[version]
            checked = check_agreement(compiled, on_durable, inputs)
            prepared = checked.pop("prepared")
            assert on_durable.durable is not None
            case: dict[str, Any] = {"flow": flow_name, "version": version, "rules": len(compiled.rules), **checked}
            timed = {
                "rules_compiled": (compiled.program.fired, prepared, calls),
                "rules_durable": (on_durable.durable.fired, prepared, calls),
                "decision_compiled": (compiled.evaluate, inputs.decoded, max(1, calls // 4)),
                "decision_durable": (on_durable.evaluate, inputs.decoded, max(1, calls // 4)),
            }
            for what, (fn, args, iterations) in timed.items():
                case[what] = time_rounds(fn, args, warmup=min(warmup, iterations), iterations=iterations, rounds=rounds)
            cases.append(case)
            print(f"  {flow_name} {version}: {checked['inputs']} inputs agree "
                  f"({checked['rules_fired_at_least_once']}/{len(compiled.rules)} rules fired on them)",
                  file=sys.stderr, flush=True)
    git = git_commit(ROOT)
    return {
        "schema": "verdict.bench.durable_rules/v1",
        "settings": {"calls": calls, "decision_calls": max(1, calls // 4), "rounds": rounds, "warmup": warmup, "inputs_per_flow": limit},
        "cases": cases,
        "machine": machine,
        "commit": git["sha"],
        "git": git,
        "load_average_end": load_average(),
        "duration_seconds": round(time.perf_counter() - started, 1),
    }


def table(result: dict[str, Any]) -> str:
    """The results as a Markdown table: p50/p99 of each backend and durable-rules' ratio to compiled."""
    lines = [
        "| flow | rules | what | compiled p50 µs | compiled p99 µs | durable p50 µs | durable p99 µs | ratio p50 | ratio p99 |",
        "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for case in result["cases"]:
        for what in ("rules", "decision"):
            c, d = case[f"{what}_compiled"], case[f"{what}_durable"]
            lines.append(
                f"| {case['flow']} {case['version']} | {case['rules']} | {what} | {c['p50_us']:.1f} | {c['p99_us']:.1f} "
                f"| {d['p50_us']:.1f} | {d['p99_us']:.1f} | {d['p50_us'] / c['p50_us']:.0f}× | {d['p99_us'] / c['p99_us']:.0f}× |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="timed calls per round for the rules (decisions: a quarter)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per case; the median of rounds is reported")
    parser.add_argument("--inputs", type=int, default=5000, help="real inputs per flow (all of them are checked for agreement)")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    if args.calls < 1 or args.rounds < 1 or args.inputs < 1:
        parser.error("--calls, --rounds and --inputs must be at least 1")
    try:
        out = run(args.calls, args.rounds, args.inputs)
    except Disagreement as exc:
        print(f"durable-rules and the compiled path disagree: {exc}", file=sys.stderr)
        return 1
    print(table(out))
    m = out["machine"]
    print(f"\n{m['cpu_model']}, {m['cores_usable']} usable cores, Python {m['python']}, "
          f"durable-rules {m['libraries'].get('durable-rules')}; load {m['load_average_start']} -> {out['load_average_end']}; "
          f"commit {(out['commit'] or '?')[:10]}{' (dirty)' if out['git']['dirty'] else ''}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
