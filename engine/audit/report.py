"""The replay report as a plain-text table for an analyst (the JSON form is ``ReplayReport.as_dict``).

``comparison_lines`` is the part any comparison of two decision sets shares; a backtest of
history (engine.batch.backtest) renders its comparisons with it too.
"""

from __future__ import annotations

from typing import Any

from engine.audit.replay_report import ACTIONS, Metrics, ReplayReport, ranked

__all__ = ["comparison_lines", "fairness_lines", "pct", "render_table", "table"]

MAX_DRIVERS = 15
MAX_RULES = 15


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _numeric(text: str) -> bool:
    return text == "-" or text.lstrip("+-")[:1].isdigit()


def _row(cells: list[str], widths: list[int], right: list[bool]) -> str:
    return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right, strict=True)).rstrip()


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Aligned rows: the first column and text columns to the left, number columns to the right."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = [i > 0 and all(_numeric(r[i]) for r in rows) for i in range(len(header))]
    return [_row(header, widths, right), *(_row(r, widths, right) for r in rows)]


pct = _pct  # a share as "12.3%" ("-" for none), for other reports (engine.batch.backtest)
table = _table  # aligned text rows, for other reports


# Long (70 lines): one text table per section of the report, written top to bottom.
def render_table(report: ReplayReport) -> str:
    """The report as aligned text tables."""
    r = report
    logged = ", ".join(f"{v} x{n:,}" for v, n in ranked(r.produced_by)) or "none"
    out = [
        f"Replay of {r.flow} through version {r.version} (revision {r.revision[:12]})",
        f"log: {r.location}: {r.considered:,} decisions of {r.flow} (logged by {logged})",
        f"replayed: {r.replayed:,}   rejected by version {r.version}: {r.rejected:,}   failed: {r.failed:,}",
    ]
    out += [f"note: {n}" for n in r.notes]
    if r.gaps:
        out.append(
            f"INCOMPLETE LOG: {len(r.gaps)} gap{'s' if len(r.gaps) != 1 else ''}; this report covers only the "
            f"{r.considered:,} decisions of {r.flow} that were there to read"
        )
        out += [f"  gap: {g}" for g in r.gaps]
    if r.rejected_fields:
        out.append("  rejected for: " + ", ".join(f"{f} x{n:,}" for f, n in ranked(r.rejected_fields)[:8]))
    if r.same_version:
        out.append(
            f"logged by this same version and revision: {r.same_version:,}, "
            f"reproduced exactly: {r.same_version - r.same_version_differs:,}"
            + (f" (and {r.same_version_fallbacks:,} fallback decisions, not expected to reproduce)" if r.same_version_fallbacks else "")
        )
    out += comparison_lines(r)
    if r.protected:
        for side, version in (("before", "logged"), ("after", f"version {r.version}")):
            out += fairness_lines(f"{version} ({side})", r.fairness()[side], r.outcomes_given)
    return "\n".join(out) + "\n"


def fairness_lines(title: str, by_attribute: dict[str, Any], outcomes: bool) -> list[str]:
    """One table per protected attribute (``GroupTally.table``): rows, approval rate, AIR, flag, bad rate of approved."""
    out: list[str] = []
    for attribute, t in by_attribute.items():
        out += ["", f"fairness, {title}, {attribute} (reference group: {t['reference']}; "
                    "approval = APPROVE; AIR flagged below 0.8, 29 CFR 1607.4(D))"]
        out += _table(
            ["group", "rows", "approval rate", "AIR", "flag", *(["bad rate of approved"] if outcomes else [])],
            [[g["group"], f"{g['rows']:,}", _pct(g["approval_rate"]), "-" if g["air"] is None else f"{g['air']:.3f}",
              "AIR < 0.8" if g["flagged"] else "", *([_pct(g["bad_rate_of_approved"])] if outcomes else [])]
             for g in t["groups"]],
        )
    return out


def comparison_lines(
    r: ReplayReport,
    *,
    before: str = "logged action",
    after: str = "action with the replayed version",
    examples: str = "decision ids",
) -> list[str]:
    """The comparison part of a report (also a backtest's, engine.batch.backtest): changes, action
    rates before and after, transitions, the rules behind the changes, rule hits, scores, examples
    and, with outcomes, the metrics of both sides."""
    names = [a.name for a in ACTIONS]
    out = [
        f"action changed: {r.changed:,} ({_pct(r.changed / r.replayed if r.replayed else None)}); "
        f"any difference (action, reasons, rules or scores): {r.differs:,}",
        "",
    ]
    rows = []
    for a in names:
        delta = r.after[a] - r.before[a]
        rows.append(
            [a, f"{r.before[a]:,}", _pct(r.rate(r.before, a)), f"{r.after[a]:,}", _pct(r.rate(r.after, a)), f"{delta:+,}"]
        )
    out += _table(["action", "before", "rate", "after", "rate", "change"], rows)
    out.append("")
    out.append(f"transitions (rows: {before}, columns: {after})")
    out += _table(["", *names], [[b, *(f"{r.transitions[(b, a)]:,}" for a in names)] for b in names])
    if r.drivers:
        out.append("")
        out.append("rules behind the changed actions")
        drivers = ranked(r.drivers)[:MAX_DRIVERS]
        out += _table(["rule", "decisions", "effect"], [[rule, f"{n:,}", effect] for (rule, effect), n in drivers])
    moved = sorted(
        set(r.hits_before) | set(r.hits_after),
        key=lambda k: (-abs(r.hits_after[k] - r.hits_before[k]), k),
    )
    moved = [k for k in moved if r.hits_after[k] != r.hits_before[k]][:MAX_RULES]
    if moved:
        out.append("")
        out.append("rule hits that changed")
        out += _table(
            ["rule", "before", "after", "change"],
            [[k, f"{r.hits_before[k]:,}", f"{r.hits_after[k]:,}", f"{r.hits_after[k] - r.hits_before[k]:+,}"] for k in moved],
        )
    means = r.mean_scores()
    if means:
        out.append("")
        out += _table(["mean score", "before", "after"], [[name, f"{b:.4f}", f"{a:.4f}"] for name, (b, a, _) in means.items()])
    if r.examples:
        out.append("")
        out.append(f"examples of changed decisions ({examples})")
        for transition, ids in sorted(r.examples.items()):
            out.append(f"  {transition}: {', '.join(ids)}")
    if r.outcomes_given:
        out.append("")
        out += _outcomes(r.metrics_before, r.metrics_after, r.unmatched_outcomes)
    return out


def _outcomes(before: Metrics, after: Metrics, unmatched: int) -> list[str]:
    b, a = before.as_dict(), after.as_dict()
    head = f"known outcomes: {before.labelled:,} replayed decisions labelled, {before.bad:,} bad"
    if unmatched:
        head += f" ({unmatched:,} ids in the outcomes file matched no replayed decision)"
    rows = [
        ["approval rate", _pct(b["approval_rate"]), _pct(a["approval_rate"])],
        ["bad rate of approved", _pct(b["bad_rate_of_approved"]), _pct(a["bad_rate_of_approved"])],
        ["decline precision", _pct(b["decline_precision"]), _pct(a["decline_precision"])],
        ["decline recall", _pct(b["decline_recall"]), _pct(a["decline_recall"])],
        ["review+decline precision", _pct(b["flag_precision"]), _pct(a["flag_precision"])],
        ["review+decline recall", _pct(b["flag_recall"]), _pct(a["flag_recall"])],
        ["bad approved", f"{before.approved_bad:,}", f"{after.approved_bad:,}"],
    ]
    return [head, *_table(["metric", "before", "after"], rows)]
