"""What decimal numbers cost on the request path: this tree against a baseline commit, same run.

    python -m benchmarks.decimal_numbers [--baseline b609432] [--iterations 20000] [--rounds 3]

The baseline (by default b609432, the last commit whose numbers were doubles) is exported with
``git archive`` into a temporary directory. Worker processes, alternating baseline / current round
by round so that machine drift hits both alike, each load the bundled policies of their own tree
and time, per bundled flow, on the same real inputs (data/, as the wire codec decodes them):

* ``derive``: the generated derive function on validated values (where the decimal arithmetic is);
* ``rules``: the generated rule function on prepared values (validated, derived, scored): what
  the ``rules_verdict`` case of benchmarks/run.py times;
* ``zen``: the same rules in GoRules zen-engine (``rules_zen``; current tree only, when zen-engine
  is installed), for the "rules at most 0.2x zen-engine" target;
* ``decide``: the whole in-process decision, ``Decider.decide``.

Each figure is the median over rounds of each round's p50 (µs). The report is JSON on stdout.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]
FLOWS = ("credit_application", "card_payment")


def _worker(iterations: int, with_zen: bool) -> dict[str, Any]:
    """Runs inside a tree (its engine and benchmarks on sys.path): one round of every figure."""
    from benchmarks.suite.inprocess import prepare_flow
    from benchmarks.suite.inputs import flow_inputs
    from benchmarks.suite.timing import time_rounds
    from engine.runtime.service import load_decider

    root = Path.cwd()
    decider = load_decider(root)
    out: dict[str, Any] = {}
    for flow in FLOWS:
        bench = prepare_flow(decider, flow_inputs(root, flow, 2000))
        compiled = bench.compiled
        validated = [dict(v) for v in bench.validated]
        kw = {"warmup": min(2000, iterations), "iterations": iterations, "rounds": 1}
        row = {
            "derive": time_rounds(compiled.program.derive, validated, **kw)["p50_us"],
            "rules": time_rounds(compiled.program.fired, bench.prepared, **kw)["p50_us"],
            "decide": time_rounds(functools.partial(decider.decide, flow), bench.inputs.decoded, **kw)["p50_us"],
        }
        if with_zen:
            from benchmarks.suite.inprocess import _zen
            from benchmarks.suite.zen_rules import zen_values

            zen_eval, _ = _zen(bench, 1000)  # checked to agree with our rules first
            row["zen"] = time_rounds(zen_eval, [zen_values(v) for v in bench.prepared], **kw)["p50_us"]
        out[flow] = row
    return out


def _run_worker(tree: Path, iterations: int, with_zen: bool) -> dict[str, Any]:
    env = dict(os.environ, PYTHONPATH=str(tree))
    code = (
        "import json, sys; from benchmarks.decimal_numbers import _worker; "
        f"print(json.dumps(_worker({iterations}, {with_zen})))"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=tree, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"worker in {tree} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--baseline", default="b609432", help="commit whose numbers are doubles")
    p.add_argument("--iterations", type=int, default=20000)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args(argv)
    try:
        import zen  # noqa: F401

        with_zen = True
    except ImportError:
        with_zen = False
    with tempfile.TemporaryDirectory(prefix="verdict-baseline-") as tmp:
        base = Path(tmp)
        archive = subprocess.run(["git", "-C", str(PROJECT), "archive", args.baseline], capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", str(base)], input=archive, check=True)
        (base / "benchmarks" / "decimal_numbers.py").write_text(Path(__file__).read_text())
        rounds: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
        for _ in range(args.rounds):
            rounds["baseline"].append(_run_worker(base, args.iterations, False))
            rounds["current"].append(_run_worker(PROJECT, args.iterations, with_zen))
    report: dict[str, Any] = {"baseline": args.baseline, "iterations": args.iterations, "rounds": args.rounds, "flows": {}}
    for flow in FLOWS:
        row: dict[str, Any] = {}
        for which, results in rounds.items():
            for key in results[0][flow]:
                row[f"{which}_{key}_p50_us"] = round(statistics.median(r[flow][key] for r in results), 2)
        for key in ("derive", "rules", "decide"):
            row[f"{key}_ratio"] = round(row[f"current_{key}_p50_us"] / row[f"baseline_{key}_p50_us"], 2)
        if "current_zen_p50_us" in row:
            row["rules_vs_zen"] = round(row["current_rules_p50_us"] / row["current_zen_p50_us"], 3)
            row["baseline_rules_vs_zen"] = round(row["baseline_rules_p50_us"] / row["current_zen_p50_us"], 3)
        report["flows"][flow] = row
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
