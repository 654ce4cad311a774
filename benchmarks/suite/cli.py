"""The runner: ``python benchmarks/run.py [--quick] [--json FILE] [--plot DIR]`` (or ``verdict bench``).

Reads benchmarks/manifest.yaml, copies the bundled policy root into a temporary directory (live
versions only, see ``benchroot``), runs the selected cases with the profile's warm-up, iterations
and rounds, evaluates the targets, prints the Markdown report and writes the JSON and plots.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.suite.manifest import CASE_NAMES, Manifest, Profile, load_manifest

__all__ = ["PROJECT", "add_arguments", "main", "run"]

PROJECT = Path(__file__).resolve().parents[2]
IN_PROCESS = ("inprocess_decide", "rules_verdict", "rules_zen", "model_onnx", "model_lightgbm", "model_explain",
              "model_explain_lightgbm")


def _ints(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated whole numbers, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive whole numbers, got {text!r}")
    return values


def _names(text: str) -> tuple[str, ...]:
    names = tuple(v.strip() for v in text.split(",") if v.strip())
    unknown = [n for n in names if n not in CASE_NAMES]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown case(s) {', '.join(unknown)}; cases: {', '.join(CASE_NAMES)}")
    return names


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The runner's options (shared by benchmarks/run.py and ``verdict bench``)."""
    p.add_argument("--quick", action="store_true", help="the quick profile (under a minute) instead of the full one")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every result, the machine and the commit as JSON")
    p.add_argument("--plot", type=Path, metavar="DIR", help="write PNG plots into DIR")
    p.add_argument("--markdown", type=Path, metavar="FILE", help="also write the Markdown report to FILE")
    p.add_argument("--cases", type=_names, help=f"comma-separated subset of: {', '.join(CASE_NAMES)}")
    p.add_argument("--manifest", type=Path, default=PROJECT / "benchmarks" / "manifest.yaml", help="the case file")
    p.add_argument("--root", type=Path, default=PROJECT, help="policy root to measure (copied; default: the bundled one)")
    g = p.add_argument_group("overrides of the profile (for smoke runs and experiments)")
    g.add_argument("--iterations", type=int, help="timed calls per round, in-process and gRPC alike; warm-up is a tenth")
    g.add_argument("--rounds", type=int, help="rounds per case")
    g.add_argument("--concurrency", type=_ints, help="gRPC concurrency levels, e.g. 1,8,32,64")
    g.add_argument("--workers", type=_ints, help="server process counts, e.g. 1,2")
    g.add_argument("--scaling-rules", type=_ints, help="rule counts of the rule-scaling flow")
    g.add_argument("--scaling-trees", type=_ints, help="tree counts of the model-scaling models")
    p.add_argument("--redis", metavar="URL", default=os.environ.get("VERDICT_BENCH_REDIS"),
                   help="state_decide also measures the Redis store and a bare PING on this server (default: $VERDICT_BENCH_REDIS)")
    g.add_argument("--batch-rows", type=int, help="rows of the batch cases' large file (a tenth for the small one)")


def _profile(manifest: Manifest, args: argparse.Namespace) -> Profile:
    profile = manifest.profiles["quick" if args.quick else "full"]
    changes: dict[str, Any] = {}
    if args.iterations:
        n = args.iterations
        changes.update(iterations=n, warmup=max(1, n // 10), grpc_requests=n, grpc_warmup=max(1, n // 10),
                       scaling_iterations=n, agreement_inputs=min(profile.agreement_inputs, max(n, 100)),
                       batch_rows=max(n, 10))
    if args.rounds:
        changes.update(rounds=args.rounds, grpc_rounds=args.rounds)
    for key in ("concurrency", "workers", "scaling_rules", "scaling_trees", "batch_rows"):
        if getattr(args, key):
            changes[key] = getattr(args, key)
    return profile.model_copy(update=changes)


_T0 = time.perf_counter()


def _say(message: str) -> None:
    print(f"[{time.perf_counter() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


# Long (82 lines): one block per case family the command line can select (in-process, gRPC, bad requests, scaling).
def run(args: argparse.Namespace) -> dict[str, Any]:  # noqa: C901 (one branch per case family the command line can select)
    """Run the selected cases; the result document."""
    from benchmarks.suite.benchroot import copy_root
    from benchmarks.suite.inputs import flow_inputs
    from benchmarks.suite.machine import git_commit, load_average, machine_info
    from benchmarks.suite.report import evaluate_targets

    manifest = load_manifest(args.manifest)
    profile = _profile(manifest, args)
    selected = set(args.cases or (c.name for c in manifest.cases))
    started = time.perf_counter()
    machine = machine_info()
    git = git_commit(PROJECT)
    _say(f"verdict bench: profile {'quick' if args.quick else 'full'}, cases {', '.join(sorted(selected))}; load {machine['load_average_start']}")
    cases: list[dict[str, Any]] = []
    breakdown: list[dict[str, Any]] = []
    scaling: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="verdict-bench-") as tmp:
        work = Path(tmp)
        root = copy_root(Path(args.root), work / "root")
        inputs = {flow: flow_inputs(root, flow, manifest.inputs_per_flow, data_root=PROJECT) for flow in manifest.flows}
        if selected & set(IN_PROCESS):
            from benchmarks.suite.inprocess import breakdown as step_breakdown
            from benchmarks.suite.inprocess import prepare_flow, run_case
            from engine.runtime.service import load_decider

            decider = load_decider(root)
            benches = {flow: prepare_flow(decider, inputs[flow]) for flow in manifest.flows}
            for name in IN_PROCESS:
                if name not in selected:
                    continue
                for flow, bench in benches.items():
                    row = run_case(name, bench, warmup=profile.warmup, iterations=profile.iterations,
                                   rounds=profile.rounds, agreement_inputs=profile.agreement_inputs)
                    cases.append(row)
                    _say(f"  {name:<18} {flow:<20} p50 {row['p50_us']:9.1f} µs  p99 {row['p99_us']:9.1f} µs")
            if "inprocess_decide" in selected and not args.quick:
                for bench in benches.values():
                    breakdown += step_breakdown(bench, warmup=profile.warmup, iterations=profile.iterations, rounds=profile.rounds)
            decider.close()
        grpc_cases = [c for c in ("grpc_echo", "grpc_decide", "grpc_echo_plain") if c in selected]
        if grpc_cases:
            from benchmarks.suite.grpc_cases import run_grpc

            rows = run_grpc(root, list(inputs.values()), profile, work, PROJECT, cases=grpc_cases)
            for row in rows:
                _say(f"  {row['name']:<18} w={row['workers']} c={row['concurrency']:<3} p50 {row['p50_us']:9.1f} µs  "
                     f"p99 {row['p99_us']:9.1f} µs  {row['rps']:8.0f}/s")
            cases += rows
        if "bad_request_cost" in selected:
            from benchmarks.suite.bad_requests import run_bad_requests

            credit = inputs.get("credit_application") or flow_inputs(root, "credit_application", manifest.inputs_per_flow, data_root=PROJECT)
            for row in run_bad_requests(root, credit, profile, work, PROJECT):
                _say(f"  {row['name']:<18} {row['kind']:<20} server CPU {row['server_cpu_us_per_request']:9.1f} µs/req  {row['statuses']}")
                cases.append(row)
        batch_cases = [c for c in ("batch_local", "batch_spark") if c in selected]
        if batch_cases:
            from benchmarks.suite.batch_cases import run_batch_cases

            for row in run_batch_cases(root, profile.batch_rows, work / "batch", PROJECT, batch_cases):
                _say(f"  {row['name']:<18} {row['kind']:<6} {row['rows']:,} rows  {row['rps'] or 0:9.0f} rows/s"
                     + (f"  peak RSS {row['peak_rss_mb']} MB" if "peak_rss_mb" in row else f"  start-up {row['startup_seconds']} s"))
                cases.append(row)
        cases += _list_lookup(root, work, manifest, profile, inputs) if "list_lookup" in selected else []
        cases += _state_decide(root, work, manifest, profile, args.redis) if "state_decide" in selected else []
        if "scaling_rules" in selected or "scaling_models" in selected:
            from benchmarks.suite.scaling import scale_models, scale_rules

            credit = inputs.get("credit_application") or flow_inputs(root, "credit_application", manifest.inputs_per_flow, data_root=PROJECT)
            if "scaling_rules" in selected:
                scaling["rules"] = scale_rules(root, work / "scaling", credit, profile.scaling_rules,
                                               iterations=profile.scaling_iterations, rounds=profile.rounds)
                _say(f"  scaling_rules      {[p['rules'] for p in scaling['rules']['points']]}")
            if "scaling_models" in selected:
                scaling["models"] = scale_models(root, work / "scaling", credit, profile.scaling_trees, data_root=PROJECT,
                                                 iterations=profile.scaling_iterations, rounds=profile.rounds)
                _say(f"  scaling_models     {[p['trees'] for p in scaling['models']['points']]}")
    return {
        "schema": "verdict.bench.result/v1",
        "profile": "quick" if args.quick else "full",
        "settings": profile.model_dump(mode="json"),
        "cases": cases,
        "targets": evaluate_targets(manifest.targets, cases),
        "breakdown": breakdown,
        "scaling": scaling,
        "machine": machine,
        "commit": git["sha"],
        "git": git,
        "load_average_end": load_average(),
        "duration_seconds": round(time.perf_counter() - started, 1),
    }


def _list_lookup(root: Path, work: Path, manifest: Manifest, profile: Profile, inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """The list_lookup case's rows (benchmarks/suite/lists_case.py)."""
    from benchmarks.suite.inputs import flow_inputs
    from benchmarks.suite.lists_case import run_list_lookup

    card = inputs.get("card_payment") or flow_inputs(root, "card_payment", manifest.inputs_per_flow, data_root=PROJECT)
    rows = run_list_lookup(root, work, card, warmup=profile.warmup, iterations=profile.iterations, rounds=profile.rounds)
    for row in rows:
        _say(f"  {row['name']:<18} {row['kind']:<20} p50 {row['p50_us']:9.1f} µs  p99 {row['p99_us']:9.1f} µs")
    return rows


def _state_decide(root: Path, work: Path, manifest: Manifest, profile: Profile, redis_url: str | None) -> list[dict[str, Any]]:
    """The state_decide case's rows (benchmarks/suite/state_cases.py)."""
    from benchmarks.suite.state_cases import run_state_decide

    rows = run_state_decide(root, PROJECT, work, rows=manifest.inputs_per_flow, warmup=profile.warmup,
                            iterations=profile.iterations, rounds=profile.rounds, redis_url=redis_url)
    if redis_url:  # gRPC with Redis behind the server, against the embedded store and a bare PING
        from benchmarks.suite.state_cases import run_state_grpc

        rows += run_state_grpc(root, PROJECT, work, PROJECT, rows=manifest.inputs_per_flow, warmup=profile.grpc_warmup,
                               requests=profile.grpc_requests, rounds=profile.grpc_rounds,
                               round_seconds=profile.grpc_round_seconds, redis_url=redis_url)
    for row in rows:
        _say(f"  {row['name']:<18} {row['kind']:<20} p50 {row['p50_us']:9.1f} µs  p99 {row['p99_us']:9.1f} µs")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of benchmarks/run.py; exit 0 when every case ran (targets do not change it)."""
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    return execute(args)


def execute(args: argparse.Namespace) -> int:
    """Run, print the Markdown report, write the requested files."""
    from benchmarks.suite.report import markdown, plot

    result = run(args)
    text = markdown(result)
    print(text)
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        for path in plot(result, args.plot):
            _say(f"wrote {path}")
    return 0
