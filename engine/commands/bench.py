"""``verdict bench``: run the latency benchmark suite (the same as ``python benchmarks/run.py``).

The suite lives in the source checkout's ``benchmarks/`` (its manifest, runner and README with the
latest results); an installation without it says so and exits 1. Options: ``--quick`` (under a
minute), ``--json FILE``, ``--plot DIR``, ``--markdown FILE``, ``--cases a,b`` and profile
overrides; see ``verdict bench --help``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from engine.commands._io import report
from engine.extras import require

__all__ = ["register", "run"]

_CHECKOUT = Path(__file__).resolve().parents[2]


def _suite() -> ModuleType | None:
    """benchmarks.suite.cli from the checkout holding this package, or None when it is absent."""
    if not (_CHECKOUT / "benchmarks" / "suite" / "cli.py").is_file():
        return None
    if str(_CHECKOUT) not in sys.path:
        sys.path.append(str(_CHECKOUT))  # appended: never shadows an installed module
    return importlib.import_module("benchmarks.suite.cli")


def register(subparsers: Any) -> None:
    """Add ``bench`` with the runner's options."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "bench",
        help="run the latency benchmarks (benchmarks/manifest.yaml)",
        description="Run Verdict's benchmark suite: in-process, rules vs zen-engine, models, gRPC echo vs decide "
        "with several workers and concurrencies, scaling; prints a Markdown table, writes JSON and PNG plots.",
    )
    suite = _suite()
    if suite is not None:
        suite.add_arguments(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the suite; 1 when this installation has no benchmarks/ directory."""
    suite = _suite()
    if suite is None:
        report(f"no benchmark suite here: expected {_CHECKOUT / 'benchmarks'} (it ships with the source checkout)")
        return 1
    require("bench", "verdict bench")
    return int(suite.execute(args))
