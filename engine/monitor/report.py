"""The stability report of ``verdict monitor``: computed from decision-log records, then written.

``stability_from_records(records, policies, ...)`` is pure: it re-derives each logged decision's
model inputs with the version that decided it (validation and derived features, never the
models: the score is the logged one), bins them on the models' training baselines and counts
actions and rule hits per period. ``write_report`` writes ``report.md`` and PNG figures
(matplotlib, imported only here). Shadow records are left out: they were never served.

A record whose input no longer validates (e.g. a field masked in the log, see docs/privacy) is
skipped for drift and counted in ``skipped``; it still counts in the action and rule rates.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.monitor.baseline import read_baseline
from engine.monitor.live import ModelWindow
from engine.monitor.psi import ACT, WATCH, bin_counts, grade, shares
from engine.policy.loader import PolicySet

__all__ = ["Stability", "period_key", "stability_from_records", "write_report"]

ACTIONS = ("APPROVE", "REVIEW", "DECLINE")


def period_key(ts: float, every: str) -> str:
    """The UTC period a time falls in: ``2026-11-29`` (day) or ``2026-11-29T14`` (hour)."""
    t = datetime.fromtimestamp(ts, UTC)
    return t.strftime("%Y-%m-%d") if every == "day" else t.strftime("%Y-%m-%dT%H")


@dataclass
class Stability:
    """Everything the report shows, per model version and per period."""

    decisions: int = 0
    skipped: int = 0  # records whose input did not validate again (drift leaves them out)
    first: str = ""
    last: str = ""
    models: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # ModelWindow.stability() + baseline
    actions: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # period -> action -> n
    rules: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))  # period -> rule id -> n
    per_period: Counter[str] = field(default_factory=Counter)  # period -> decisions


def stability_from_records(
    records: Iterable[Mapping[str, Any]], policies: PolicySet, *, since: float | None = None, until: float | None = None,
    every: str = "day",
) -> Stability:
    """The stability of the served decisions in ``records`` with ``since <= ts < until``.

    ``policies`` must hold the flow versions that decided (their validators, derived features and
    models' baselines). Raises BaselineError when a baseline file is invalid.
    """
    from engine.audit.record import parse_time

    out = Stability()
    buffered: dict[int, tuple[Any, list[tuple[dict[str, Any], float]]]] = {}
    for r in records:
        if r.get("route") == "shadow":
            continue
        ts = parse_time(r["ts"])
        if (since is not None and ts < since) or (until is not None and ts >= until):
            continue
        out.decisions += 1
        out.first = min(out.first or r["ts"], r["ts"])
        out.last = max(out.last, r["ts"])
        period = period_key(ts, every)
        out.per_period[period] += 1
        out.actions[period][r["action"]] += 1
        for f in r.get("fired", ()):
            out.rules[period][f["id"]] += 1
        compiled = _version(policies, r["flow"], r["version"])
        if compiled is None or not compiled.models:
            continue
        try:
            values = compiled.validator(r.get("input") or {})
            compiled.program.derive(values)
        except Exception:  # noqa: BLE001 - a masked or since-changed input: counted, not fatal
            out.skipped += 1
            continue
        for bound in compiled.models:
            score = (r.get("scores") or {}).get(bound.output)
            if score is None:
                continue
            held = buffered.setdefault(id(bound.model), (bound.model, []))
            held[1].append((values, float(score)))
    for model, rows in buffered.values():
        baseline = read_baseline(model.directory, model.feature_names)
        if baseline is None:
            continue
        window = ModelWindow(model, baseline, max(1, len(rows)))
        scores = np.array([s for _, s in rows])
        for values, score in rows:
            window.add(values, score)
        s = window.stability()
        s["baseline"] = baseline
        s["score_live_shares"] = shares(bin_counts(scores, baseline.score_edges)).tolist()
        out.models[(model.name, model.version)] = s
    return out


def _version(policies: PolicySet, flow: str, version: str) -> Any:
    entry = policies.flows.get(flow)
    return None if entry is None else entry.versions.get(version)


def write_report(
    out_dir: Path, s: Stability, *, source: str, watch: float = WATCH, act: float = ACT,
    thresholds: Mapping[tuple[str, str], tuple[float, float]] | None = None,
) -> Path:
    """Write ``out_dir/report.md`` and its PNG figures; the report's path.

    ``thresholds``: (model, version) -> (watch, act) from the flows' ``psi:`` (engine.monitor.live.psi_thresholds);
    a model not in it is graded with ``watch`` and ``act``.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    limits = {key: (thresholds or {}).get(key, (watch, act)) for key in s.models}
    figures = _figures(out_dir, s, limits)
    lines = [
        "# Stability report",
        "",
        f"Decision log: `{source}`. Served decisions: **{s.decisions}** from {s.first or '-'} to {s.last or '-'}"
        + (f"; {s.skipped} left out of drift (input no longer validates)." if s.skipped else "."),
        "",
        "PSI = Σ (live% − train%) · ln(live% / train%) over the training deciles stored in each model's "
        "baseline.json (empty bins floored at 0.01 %). Below a model's watch threshold: stable; from watch to act: "
        "watch; act and above: act (each model's thresholds are the strictest psi: of the flows running it, by "
        "default 0.1 and 0.25). A PSI on fewer than a few hundred decisions is mostly noise: read it with n.",
        "",
    ]
    for (name, version), m in sorted(s.models.items()):
        watch, act = limits[(name, version)]
        lines += [f"## Model {name} {version}", "",
                  f"n = {m['n']} (training rows: {m['baseline'].rows}). Thresholds: watch {watch:g}, act {act:g}. "
                  f"Score PSI: **{m['score_psi']:.4f}** ({grade(m['score_psi'], watch, act)}).", "",
                  "| input | PSI | grade | missing | unseen categories |", "| --- | ---: | --- | ---: | ---: |"]
        for feature, f in sorted(m["features"].items(), key=lambda kv: -_num(kv[1]["psi"])):
            lines.append(f"| {feature} | {f['psi']:.4f} | {grade(f['psi'], watch, act)} | {f['missing']:.1%} | {f['unseen']:.1%} |")
        lines += ["", f"![PSI per input]({figures[f'psi_{name}_{version}']})", "",
                  f"![Score distribution, live vs training]({figures[f'score_{name}_{version}']})", ""]
    periods = sorted(s.per_period)
    lines += ["## Actions over time", "", "| period | decisions | " + " | ".join(a.lower() for a in ACTIONS) + " |",
              "| --- | ---: |" + " ---: |" * len(ACTIONS)]
    for p in periods:
        n = s.per_period[p]
        lines.append(f"| {p} | {n} | " + " | ".join(f"{s.actions[p][a] / n:.1%}" for a in ACTIONS) + " |")
    lines += ["", f"![Action rates over time]({figures['actions']})", "", "## Rule hit rates over time", "",
              "Share of the period's decisions in which each rule held.", ""]
    top = _top_rules(s)
    if top:
        lines += ["| period | " + " | ".join(top) + " |", "| --- |" + " ---: |" * len(top)]
        for p in periods:
            lines.append(f"| {p} | " + " | ".join(f"{s.rules[p][r] / s.per_period[p]:.1%}" for r in top) + " |")
        lines += ["", f"![Rule hit rates over time]({figures['rules']})", ""]
    else:
        lines += ["No rule held in the period.", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _num(v: float) -> float:
    return -1.0 if v != v else v


def _top_rules(s: Stability, n: int = 8) -> list[str]:
    total: Counter[str] = Counter()
    for c in s.rules.values():
        total.update(c)
    return [r for r, _ in total.most_common(n)]


def _figures(out_dir: Path, s: Stability, limits: Mapping[tuple[str, str], tuple[float, float]]) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names: dict[str, str] = {}

    def save(fig: Any, key: str) -> None:
        file = f"{key}.png"
        fig.tight_layout()
        fig.savefig(out_dir / file, dpi=90)
        plt.close(fig)
        names[key] = file

    for (name, version), m in s.models.items():
        watch, act = limits[(name, version)]
        features = sorted(m["features"])
        fig, ax = plt.subplots(figsize=(7, 0.3 * len(features) + 1.5))
        ax.barh(features, [_num(m["features"][f]["psi"]) for f in features], color="tab:blue")
        ax.axvline(watch, color="orange", linestyle="--", label=f"watch {watch:g}")
        ax.axvline(act, color="red", linestyle="--", label=f"act {act:g}")
        ax.set_xlabel("PSI")
        ax.set_title(f"{name} {version}: PSI per input (n = {m['n']})")
        ax.legend()
        save(fig, f"psi_{name}_{version}")
        b = m["baseline"]
        fig, ax = plt.subplots(figsize=(7, 3.5))
        x = np.arange(len(b.score_shares))
        ax.bar(x - 0.2, b.score_shares, 0.4, label=f"training (n = {b.rows})")
        ax.bar(x + 0.2, m["score_live_shares"], 0.4, label=f"live (n = {m['n']})")
        ax.set_xlabel("training score decile")
        ax.set_ylabel("share")
        ax.set_title(f"{name} {version}: score distribution (PSI {m['score_psi']:.3f})")
        ax.legend()
        save(fig, f"score_{name}_{version}")
    periods = sorted(s.per_period)
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for a in ACTIONS:
        ax.plot(periods, [s.actions[p][a] / s.per_period[p] for p in periods], marker="o", label=a.lower())
    ax.set_ylabel("share of decisions")
    ax.set_title("Action rates over time")
    ax.legend()
    ax.tick_params(axis="x", rotation=45)
    save(fig, "actions")
    top = _top_rules(s)
    if top:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for r in top:
            ax.plot(periods, [s.rules[p][r] / s.per_period[p] for p in periods], marker=".", label=r)
        ax.set_ylabel("hit rate")
        ax.set_title("Rule hit rates over time")
        ax.legend(fontsize="small")
        ax.tick_params(axis="x", rotation=45)
        save(fig, "rules")
    return names


