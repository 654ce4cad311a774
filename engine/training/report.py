"""A human-readable training report: Markdown with a ROC curve and a score histogram (PNG).

Written beside the model (``report.md``, ``roc.png``, ``score_histogram.png``), with the sections a
trainer adds (``faithfulness_section``, ``fairness_section``). The PNGs carry no
timestamps, so a rebuild that changes nothing rewrites identical files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.training.metrics import roc_curve

__all__ = ["REPORT_FILES", "fairness_section", "faithfulness_section", "write_report"]

REPORT_FILES = ("report.md", "roc.png", "score_histogram.png")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    fig.savefig(path, dpi=90, metadata={"Software": None})
    _pyplot().close(fig)


def plot_roc(path: Path, y: np.ndarray, oof: np.ndarray, folds: np.ndarray, title: str) -> None:
    """ROC of the pooled out-of-fold scores, with each fold's curve in grey."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 5))
    for k in np.unique(folds):
        sel = folds == k
        fpr, tpr = roc_curve(y[sel], oof[sel])
        ax.plot(fpr, tpr, color="0.75", lw=0.8, label="folds" if k == folds.min() else None)
    fpr, tpr = roc_curve(y, oof)
    ax.plot(fpr, tpr, color="C0", lw=2, label="out-of-fold")
    ax.plot([0, 1], [0, 1], color="0.5", ls="--", lw=0.8)
    ax.set(xlabel="false-positive rate", ylabel="true-positive rate", title=title, xlim=(0, 1), ylim=(0, 1))
    ax.legend(loc="lower right")
    fig.tight_layout()
    _save(fig, path)


def plot_histogram(path: Path, y: np.ndarray | None, scores: np.ndarray, title: str, xlabel: str) -> None:
    """Score distribution of each class (densities), out-of-fold."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    lo, hi = float(np.min(scores)), float(np.max(scores))
    bins = np.linspace(lo, hi if hi > lo else lo + 1, 41)
    if y is not None and len(np.unique(y)) > 1:
        ax.hist(scores[y == 0], bins=bins, density=True, alpha=0.6, label="negative")
        ax.hist(scores[y == 1], bins=bins, density=True, alpha=0.6, label="positive")
        ax.legend()
    else:
        ax.hist(scores, bins=bins, density=True, alpha=0.8)
    ax.set(xlabel=xlabel, ylabel="density", title=title)
    fig.tight_layout()
    _save(fig, path)


def _fmt(v: Any) -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"
    return str(v)


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell (a ``|`` would start a new column)."""
    return text.replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def _categories(cats: Sequence[str]) -> str:
    """Categories in encoding order; each in backticks when one of them contains a comma (else ambiguous)."""
    if any("," in c for c in cats):
        return ", ".join(f"`` {c} ``" if "`" in c else f"`{c}`" for c in cats)
    return ", ".join(cats)


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[str]:
    out = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    out += ["| " + " | ".join(_fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return out


# Long (86 lines): one Markdown document written top to bottom.
def write_report(
    out: Path, card: Mapping[str, Any], y: np.ndarray | None, oof: np.ndarray, folds: np.ndarray | None,
    extra_sections: Sequence[str] = (),
) -> Path:
    """Write ``report.md`` and its figures into ``out``; returns the Markdown path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"{card['name']} v{card['version']}"
    anomaly = card["task"] == "anomaly_detection"
    m = card["metrics"]
    lines = [
        f"# Model report: {name}",
        "",
        f"{card['description']}",
        "",
        "## Identity",
        "",
        f"- algorithm: **{card['algorithm']}**, task: {card['task']}",
        f"- score: `{card['output']['onnx_output']}[:, {card['output']['index']}]` = {card['output']['meaning']}",
        f"- created: {card['created_at']}",
        *[f"- `{a['file']}` sha256 `{a['sha256']}`" for a in card["artifacts"].values()],
        "",
        "## Data",
        "",
        f"- file: `{card['data']['file']}` (sha256 `{card['data']['sha256']}`)",
        f"- rows used: {card['data']['rows']}" + (f", positives: {card['data'].get('positives')}" if not anomaly else ""),
    ]
    if card.get("target"):
        lines.append(f"- target: `{card['target']['column']}`, positive label `{card['target']['positive']}`")
    if card["data"].get("rows_dropped_missing_target"):
        lines.append(f"- rows dropped for a missing target: {card['data']['rows_dropped_missing_target']}")
    for column, why in card["data"].get("left_out", {}).items():
        lines.append(f"- column `{column}` left out: {why} (`--keep-column {column}` keeps it)")
    for column, fmt in card["data"].get("number_formats", {}).items():
        lines.append(f"- column `{column}`: numbers read as {fmt}")
    for column, n in card["data"].get("missing_markers", {}).items():
        lines.append(f"- column `{column}`: {n} NA-like cells read as missing")
    for warning in m.get("warnings", []):
        lines += ["", f"**Warning: {warning}**"]
    lines += ["", "## Features (ONNX input order)", "", "| # | name | type | encoding / source |", "| --- | --- | --- | --- |"]
    for i, f in enumerate(card["features"]):
        enc = _categories(f["categories"]) if f.get("categories") else ""
        src = f.get("description", "")
        lines.append(f"| {i} | `{f['name']}` | {f['type']} | {_cell(enc + ('; ' if enc and src else '') + src)} |")
    lines += ["", f"Missing values: {card['missing_values']}", "", "## Validation", ""]
    if not anomaly:
        t = card["training"]
        lines += [
            f"{t.get('cv_folds')}-fold stratified cross-validation, seed {t['seed']}. "
            f"{t.get('validation_note', '')}".strip(),
            "",
            *_table(
                [{"fold": i + 1, **f} for i, f in enumerate(m["folds"])] + [{"fold": "mean", **{
                    k: m[f"cv_{k}"] for k in ("auc", "ks", "gini", "brier", "logloss")}}] + [
                    {"fold": "pooled out-of-fold", **m["oof"]}],
                ["fold", "auc", "ks", "gini", "brier", "logloss"],
            ),
            "",
            "### Calibration (pooled out-of-fold scores, equal-count bands)",
            "",
            *_table(m["calibration_oof"], ["band", "rows", "score_min", "score_max", "mean_predicted", "observed_rate"]),
            "",
            "![ROC curve](roc.png)",
            "",
        ]
        if y is not None and folds is not None:
            plot_roc(out / "roc.png", y, oof, folds, f"{name}: ROC (AUC {m['oof']['auc']:.3f})")
        plot_histogram(out / "score_histogram.png", y, oof, f"{name}: out-of-fold scores", "score")
    else:
        lines += [*(f"- {k}: {_fmt(v)}" for k, v in m.items() if not isinstance(v, (dict, list))), ""]
        if y is not None:
            plot_roc(out / "roc.png", y, oof, np.ones(len(y), dtype=int), f"{name}: ROC against the label")
            lines += ["![ROC curve](roc.png)", ""]
        plot_histogram(out / "score_histogram.png", y, oof, f"{name}: scores", "anomaly score")
    lines += ["![Score histogram](score_histogram.png)", "", "## ONNX parity", ""]
    lines += [f"- {k}: {_fmt(v)}" for k, v in card["parity"].items()]
    lines += ["", "## Training", "", "```json"]
    import json

    lines += [json.dumps(card["training"], indent=2, sort_keys=True), "```", ""]
    for section in extra_sections:
        lines += [section, ""]
    lines += ["## Libraries", "", *[f"- {k} {v}" for k, v in card["libraries"].items()], ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _figure(value: Any, spec: str) -> str:
    """An optional figure of the report: formatted by ``spec``, or ``n/a`` when absent (None)."""
    return "n/a" if value is None else format(value, spec)


def faithfulness_section(faith: Mapping[str, Any]) -> str:
    """The report's Markdown section on reason-code faithfulness (absent figures read ``n/a``)."""
    rows = "\n".join(f"| `{k}` | {v['declines']} | {v['lowered']} |" for k, v in faith["by_top_feature"].items())
    return (
        "## Reason-code faithfulness\n\n"
        f"{faith['definition']}.\n\n"
        f"- declines examined: {faith['declines']} (score >= {_figure(faith.get('threshold'), '.4f')}); "
        f"with a positive top reason: {faith['tested']}\n"
        f"- score lowered: **{faith['lowered']} of {faith['tested']} ({_figure(faith.get('rate'), '.1%')})**, "
        f"median drop {_figure(faith.get('median_score_drop'), '.4f')}\n\n"
        "| top reason | declines | lowered |\n| --- | --- | --- |\n" + rows
    )


def fairness_section(fairness: Mapping[str, Any]) -> str:
    """The report's Markdown section on fair lending: per attribute, a row per group."""
    cuts = [f"{c:g}" for c in fairness["cutoffs"]]
    lines = ["## Fair lending", "", f"{fairness['definition']}.", ""]
    for attr, table in fairness["attributes"].items():
        lines += [f"### By `{attr}`", "",
                  "| group | rows | bad rate | AUC | score p10 / p50 / p90 | "
                  + " | ".join(f"approved < {c} | AIR at {c}" for c in cuts) + " |",
                  "| --- " * (5 + 2 * len(cuts)) + "|"]
        for g in table["groups"]:
            q = g["score_quantiles"]
            auc_text = "n/a" if g["auc"] is None else f"{g['auc']:.3f}"
            cells = [f"{g['approval_rate'][c]:.1%} | " + ("n/a" if g["air"][c] is None else
                     (f"**{g['air'][c]:.3f}**" if g["air"][c] < 0.8 else f"{g['air'][c]:.3f}")) for c in cuts]
            lines.append(f"| {g['group']} | {g['rows']} | {g['bad_rate']:.1%} | {auc_text} | "
                         f"{q['p10']:.3f} / {q['p50']:.3f} / {q['p90']:.3f} | " + " | ".join(cells) + " |")
        lines.append("")
    flagged = fairness["flagged"]
    lines.append("Flagged (AIR below 0.8): " + ("none." if not flagged else "; ".join(
        f"{f['attribute']} = {f['group']} at {f['cutoff']:g}: {f['air']:.3f}" for f in flagged) + "."))
    age = fairness.get("age")
    if age:
        lines += ["", f"Age check ({age['rule']}): {'passed' if age['passed'] else 'FAILED'} on {age['rows']} rows at "
                      f"{len(age['ages'])} ages; violations {age['violations']}, max excess {age['max_excess']:.2e}."]
    return "\n".join(lines)
