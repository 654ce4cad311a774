"""The policy root the benchmarks measure: a copy of the bundled one, served by its live versions.

Routing files are reduced to ``live:``: a challenger would split the traffic between versions and
shadow versions add evaluations off the caller's path, and the cases measure one decision per
request. Everything else (flows, rules, models, release locks) is copied unchanged.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from engine.policy.documents import ROOT_DIRS

__all__ = ["PARTS", "copy_root"]

PARTS = ROOT_DIRS


def copy_root(source: Path, dest: Path) -> Path:
    """Copy ``source``'s policy root into ``dest`` with live-only routing; returns ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in PARTS:
        src = source / part
        if src.is_dir():
            shutil.copytree(src, dest / part, dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.png", "report.md", "__pycache__"))
    for routing in (dest / "policies").glob("*/routing.yaml"):
        doc = yaml.safe_load(routing.read_text()) or {}
        routing.write_text(f"live: {str(doc['live'])!r}\n")
    return dest
