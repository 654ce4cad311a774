"""``verdict models list [--root ROOT] [--json]``: the model inventory with states, owners, dates and metrics.

One row per model version under ``model_artifacts/`` (and each inventory entry without a
directory): its lifecycle state from ``model_artifacts/registry.yaml`` (``unlisted`` when it has
none), owner, trainer, validation and approval (who, when), restriction, the headline metric from
its card (cv_auc, or label_auc for an anomaly detector), whether the card has a fairness report,
and the flow versions that run it; ``--json`` adds the validation report's path, marked
``(MISSING)`` when it is not under the root. Exit 0; 1 when the inventory file is invalid; 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.commands._io import ROOT_HELP, policy_root, report, write_out

__all__ = ["inventory_rows", "register_list", "run_list"]


def register_list(models_subparsers: Any) -> None:
    """Add ``models list`` under ``verdict models``."""
    p = models_subparsers.add_parser("list", help="the model inventory: states, owners, dates, metrics, flows")
    p.add_argument("--root", type=Path, help=ROOT_HELP)
    p.add_argument("--json", action="store_true", help="print the rows as JSON")
    p.set_defaults(run=run_list)


def inventory_rows(root: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """The inventory as rows (dicts), and the inventory file's problems as text."""
    from engine.errors import ModelLoadError
    from engine.models.card import read_card
    from engine.models.inventory import read_inventory
    from engine.policy.loader import load

    inv, problems = read_inventory(root)
    entries = inv.models if inv is not None else {}
    artifacts = root / "model_artifacts"
    keys = {f"{d.parent.name}/{d.name}" for d in artifacts.glob("*/*") if (d / "card.json").is_file()} | set(entries)
    used: dict[str, list[str]] = {}
    for flow, versions in load(root).flow_sources.items():
        for version, src in versions.items():
            for m in src.file.models:
                used.setdefault(f"{m.name}/{m.version}", []).append(f"{flow} {version}")
    rows = []
    for key in sorted(keys):
        e = entries.get(key)
        row: dict[str, Any] = {"model": key, "state": e.state if e else "unlisted"}
        if e:
            row |= {"owner": e.owner, "trainer": e.trainer,
                    "validated": f"{e.validation.at} by {e.validation.by}" if e.validation else "",
                    "report": (e.validation.report + ("" if (root / e.validation.report).is_file() else " (MISSING)"))
                    if e.validation else "",
                    "approved": f"{e.approval.at} by {e.approval.by}" if e.approval else "",
                    "restriction": e.restriction or "", "findings": list(e.findings)}
        try:
            card = read_card(artifacts / key)
            metric = next(((k, card.metrics[k]) for k in ("cv_auc", "label_auc") if k in card.metrics), None)
            row |= {"created": card.created_at[:10], "metric": f"{metric[0]} {metric[1]:.4f}" if metric else "",
                    "fairness": "yes" if card.fairness else "no"}
        except ModelLoadError:
            row |= {"created": "", "metric": "(no readable card)", "fairness": ""}
        row["flows"] = sorted(used.get(key, []))
        rows.append(row)
    return rows, [f"{p.path}: [{p.code}] {p.message}" for p in problems]


def run_list(args: argparse.Namespace) -> int:
    """Print the inventory; see the module docstring."""
    from engine.settings import SettingsError

    try:
        root = policy_root(args.root)
    except SettingsError as exc:
        report(str(exc))
        return 2
    rows, problems = inventory_rows(root)
    for p in problems:
        report(p)
    if args.json:
        write_out(json.dumps(rows, indent=2) + "\n", sys.stdout)
    else:
        cols = ("model", "state", "owner", "validated", "approved", "restriction", "metric", "fairness", "flows")
        table = [[r.get(c, "") if c != "flows" else ", ".join(r["flows"]) for c in cols] for r in rows]
        widths = [max(len(c), *(len(str(t[i])) for t in table)) for i, c in enumerate(cols)]
        lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()]
        lines += ["  ".join(str(v).ljust(w) for v, w in zip(t, widths, strict=True)).rstrip() for t in table]
        for r in rows:
            lines += [f"  {r['model']}: {f}" for f in r.get("findings", [])]
        write_out("\n".join(lines) + "\n", sys.stdout)
    sys.stdout.flush()
    return 1 if problems else 0
