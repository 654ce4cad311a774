"""``verdict lint``: check every flow, rule file, model reference and test file under a root."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.commands._io import ROOT_HELP, policy_root, report, write_out

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``lint [--root DIR]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "lint",
        help="check policies, rules, models and tests; every problem with file and line",
        description="Load and check everything under --root and print one line per problem "
        "(path:line: rule X: [code] message (hint: ...)) and a summary. Exit 0 when there is no "
        "error (warnings allowed), 1 otherwise.",
    )
    p.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Lint and print; 0 clean, 1 errors, 2 bad usage."""
    from engine.policy.lint import format_lint, lint
    from engine.settings import SettingsError

    try:
        root = policy_root(args.root)
    except SettingsError as exc:
        report(str(exc))
        return 2
    result = lint(root)
    write_out(format_lint(result) + "\n")
    return 0 if result.ok else 1
