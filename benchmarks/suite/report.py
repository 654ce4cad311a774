"""The results as a Markdown report (tables, targets, where the time goes) and PNG plots."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.suite.manifest import Ref, Target

__all__ = ["evaluate_targets", "find", "markdown", "plot"]


def find(cases: Sequence[Mapping[str, Any]], ref: Ref) -> Mapping[str, Any] | None:
    """The case row a reference points at (first match)."""
    for row in cases:
        if row["name"] != ref.case:
            continue
        if ref.flow is not None and row.get("flow") != ref.flow:
            continue
        if ref.kind is not None and row.get("kind") != ref.kind:
            continue
        if ref.concurrency is not None and row.get("concurrency") != ref.concurrency:
            continue
        if ref.workers is not None and row.get("workers") != ref.workers:
            continue
        return row
    return None


def _label(ref: Ref) -> str:
    parts = [ref.case, ref.stat.removesuffix("_us")]
    if ref.flow:
        parts.append(ref.flow)
    if ref.kind:
        parts.append(ref.kind)
    if ref.concurrency is not None:
        parts.append(f"c={ref.concurrency}")
    if ref.workers is not None:
        parts.append(f"w={ref.workers}")
    return " ".join(parts)


def evaluate_targets(targets: Sequence[Target], cases: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each target's measured ratio and whether it is met (None when a case was not run)."""
    out = []
    for t in targets:
        num, den = find(cases, t.numerator), find(cases, t.denominator)
        ratio = None
        if num is not None and den is not None and num.get(t.numerator.stat) and den.get(t.denominator.stat):
            ratio = float(num[t.numerator.stat]) / float(den[t.denominator.stat])
        met = None if ratio is None else (ratio <= t.max if t.max is not None else ratio >= t.min)  # type: ignore[operator]
        out.append({
            "name": t.name, "numerator": _label(t.numerator), "denominator": _label(t.denominator),
            "ratio": None if ratio is None else round(ratio, 3),
            "limit": f"<= {t.max}" if t.max is not None else f">= {t.min}", "met": met,
        })
    return out


def _f(v: Any, digits: int = 1) -> str:
    if v is None or v == "":
        return ""
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return str(v)


def _cases_table(cases: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| case | flow | workers | concurrency | p50 µs | p99 µs | p99.9 µs | mean µs | decisions/s | server CPU µs/req |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    lines += [
        f"| {r['name']} | {r.get('flow') or ''}{' / ' + r['kind'] if r.get('kind') else ''} | {_f(r.get('workers'))} | {_f(r.get('concurrency'))} | {_f(r['p50_us'])} | "
        f"{_f(r['p99_us'])} | {_f(r['p999_us'])} | {_f(r['mean_us'])} | {_f(r.get('rps'), 0)} | "
        f"{_f(r.get('server_cpu_us_per_request'), 0)} |"
        for r in cases
    ]
    return "\n".join(lines)


def _targets_table(targets: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| target | ratio | limit | met |", "| --- | ---: | --- | --- |"]
    met = {True: "yes", False: "**no**", None: "not run"}
    lines += [f"| {t['name']} ({t['numerator']} / {t['denominator']}) | {_f(t['ratio'], 2)} | {t['limit']} | {met[t['met']]} |" for t in targets]
    return "\n".join(lines)


def _breakdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
    lines = ["| flow | step | p50 µs | mean µs | share of requests | mean µs per request |",
             "| --- | --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['flow']} | {r['step']} | {_f(r['p50_us'])} | {_f(r['mean_us'])} | {r['share_of_requests']:.0%} | {_f(r['mean_per_request_us'])} |" for r in rows]
    return "\n".join(lines)


def _scaling_tables(scaling: Mapping[str, Any]) -> str:
    out = []
    rules = scaling.get("rules")
    if rules:
        out += ["| rules | decide p50 µs | decide p99 µs | rules p50 µs | zen p50 µs | rules fired (mean) | retained memory MiB | load s |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in rules["points"]:
            zen = p.get("rules_zen", {}).get("p50_us")
            out.append(f"| {p['rules']:,} | {_f(p['inprocess_decide']['p50_us'])} | {_f(p['inprocess_decide']['p99_us'])} | "
                       f"{_f(p['rules_verdict']['p50_us'], 2)} | {_f(zen)} | {p['mean_rules_fired']} | "
                       f"{p['retained_bytes'] / 2**20:.1f} | {p['load_seconds']} |")
        out.append(f"\nMemory per 1,000 rules (compiled, retained): **{rules['memory_per_1000_rules_bytes'] / 1024:,.0f} KiB**.\n")
    models = scaling.get("models")
    if models:
        out += ["| trees | ONNX p50 µs | LightGBM p50 µs | reasons (engine/models/explain.py) p50 µs | LightGBM TreeSHAP p50 µs | "
                "decide p50 µs | decide p99 µs | decide with model reasons p50 µs |",
                "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for p in models["points"]:
            lgb_shap = p.get("model_explain_lightgbm", {}).get("p50_us")
            with_reasons = p.get("decide_with_reasons", {}).get("p50_us")
            out.append(f"| {p['trees']:,} | {_f(p['model_onnx']['p50_us'])} | {_f(p['model_lightgbm']['p50_us'])} | "
                       f"{_f(p['model_explain']['p50_us'])} | {_f(lgb_shap)} | {_f(p['inprocess_decide']['p50_us'])} | "
                       f"{_f(p['inprocess_decide']['p99_us'])} | {_f(with_reasons)} |")
    return "\n".join(out)


def markdown(result: Mapping[str, Any]) -> str:
    """The whole report as Markdown."""
    m = result["machine"]
    commit = result.get("git") or {}
    head = (f"Machine: {m['cpu_model']}, {m['cores']} cores, {(m['memory_bytes'] or 0) / 2**30:.0f} GiB; "
            f"Python {m['python']}; grpcio {m['libraries'].get('grpcio')}, onnxruntime {m['libraries'].get('onnxruntime')}, "
            f"lightgbm {m['libraries'].get('lightgbm')}, zen-engine {m['libraries'].get('zen-engine')}. "
            f"Commit {str(commit.get('sha'))[:12]}{' (dirty)' if commit.get('dirty') else ''}; profile {result['profile']}; "
            f"load average at start {m.get('load_average_start')}, at end {result.get('load_average_end')}.")
    parts = [head, "", _cases_table(result["cases"])]
    if result.get("targets"):
        parts += ["", _targets_table(result["targets"])]
    if result.get("breakdown"):
        parts += ["", _breakdown_table(result["breakdown"])]
    if result.get("scaling"):
        parts += ["", _scaling_tables(result["scaling"])]
    return "\n".join(parts) + "\n"


# Long (85 lines): one figure after another, each a few matplotlib calls.
def plot(result: Mapping[str, Any], out: Path) -> list[Path]:  # noqa: C901, PLR0915 (one figure after another, each a few matplotlib calls)
    """PNG plots: percentiles per case, throughput and latency vs concurrency, scaling curves."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    cases = result["cases"]

    single = [r for r in cases if r.get("concurrency") in (None, 1) and r.get("p50_us") is not None]  # batch rows have no latency
    if single:
        fig, ax = plt.subplots(figsize=(10, 5))
        labels = [f"{r['name']}\n{(r.get('flow') or '')[:18]}{' w=' + str(r['workers']) if r.get('workers') else ''}" for r in single]
        xs = range(len(single))
        for k, (stat, name) in enumerate((("p50_us", "p50"), ("p99_us", "p99"), ("p999_us", "p99.9"))):
            ax.bar([x + (k - 1) * 0.27 for x in xs], [r[stat] for r in single], width=0.27, label=name)
        ax.set_yscale("log")
        ax.set_ylabel("latency, µs (log)")
        ax.set_xticks(list(xs), labels, rotation=60, ha="right", fontsize=7)
        ax.set_title("Latency percentiles per case (concurrency 1)")
        ax.legend()
        fig.tight_layout()
        written.append(_save(fig, out / "latency_percentiles.png"))

    grpc = [r for r in cases if r["name"] in ("grpc_echo", "grpc_decide", "grpc_echo_plain")]
    if grpc:
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
        for name in ("grpc_echo_plain", "grpc_echo", "grpc_decide"):
            for w in sorted({r["workers"] for r in grpc}):
                rows = sorted((r for r in grpc if r["name"] == name and r["workers"] == w), key=lambda r: r["concurrency"])
                if not rows:
                    continue
                cs = [r["concurrency"] for r in rows]
                style = {"grpc_echo": "--", "grpc_echo_plain": ":"}.get(name, "-")
                a1.plot(cs, [r["rps"] for r in rows], style, marker="o", label=f"{name} w={w}")
                a2.plot(cs, [r["p50_us"] for r in rows], style, marker="o", label=f"{name} p50 w={w}")
                a2.plot(cs, [r["p99_us"] for r in rows], style, marker="x", alpha=0.5, label=f"{name} p99 w={w}")
        a1.set_xscale("log", base=2)
        a1.set_xlabel("concurrency")
        a1.set_ylabel("requests/s")
        a1.set_title("Throughput vs concurrency")
        a1.legend(fontsize=7)
        a2.set_xscale("log", base=2)
        a2.set_yscale("log")
        a2.set_xlabel("concurrency")
        a2.set_ylabel("latency, µs (log)")
        a2.set_title("Latency vs concurrency")
        a2.legend(fontsize=6)
        fig.tight_layout()
        written.append(_save(fig, out / "throughput_vs_concurrency.png"))

    scaling = result.get("scaling") or {}
    if scaling.get("rules") or scaling.get("models"):
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
        rules = scaling.get("rules")
        if rules:
            pts = rules["points"]
            n = [p["rules"] for p in pts]
            for key, label in (("inprocess_decide", "decision p50"), ("rules_verdict", "Verdict rules p50"), ("rules_zen", "zen-engine rules p50")):
                if all(key in p for p in pts):
                    axes[0].plot(n, [p[key]["p50_us"] for p in pts], marker="o", label=label)
            axes[0].plot(n, [p["inprocess_decide"]["p99_us"] for p in pts], marker="x", ls=":", label="decision p99")
            axes[0].set_xscale("log")
            axes[0].set_yscale("log")
            axes[0].set_xlabel("rules in the flow")
            axes[0].set_ylabel("µs (log)")
            axes[0].set_title("Latency vs rule count")
            axes[0].legend(fontsize=7)
        models = scaling.get("models")
        if models:
            pts = models["points"]
            t = [p["trees"] for p in pts]
            for key, label in (("model_onnx", "ONNX p50"), ("model_lightgbm", "LightGBM p50"), ("model_explain", "reasons p50"), ("model_explain_lightgbm", "LightGBM TreeSHAP p50"), ("inprocess_decide", "decision p50")):
                axes[1].plot(t, [p[key]["p50_us"] for p in pts], marker="o", label=label)
            axes[1].set_xscale("log")
            axes[1].set_yscale("log")
            axes[1].set_xlabel("trees in the model")
            axes[1].set_ylabel("µs (log)")
            axes[1].set_title("Latency vs model size")
            axes[1].legend(fontsize=7)
        fig.tight_layout()
        written.append(_save(fig, out / "scaling.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
