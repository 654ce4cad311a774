"""``verdict test``: run the policy test cases that sit beside the flows and rules."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from engine.commands._io import ROOT_HELP, policy_root, report, write_out

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``test [--root DIR] [-k PATTERN] [-v] [--fail-uncovered]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "test",
        help="run the policy tests (policies/<flow>/<version>/tests, rules/**/tests)",
        description="Decide every test case with the version it targets and compare with what it "
        "expects. Exit 0 when all pass; 1 when one fails, when policies or tests do not load, or "
        "when no test ran.",
    )
    p.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    p.add_argument("-k", dest="pattern", default=None, help="run only cases whose 'file flow version :: name' contains this text")
    p.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    p.add_argument("--fail-uncovered", action="store_true", help="also fail when a rule of a tested version is fired by no case")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the tests and print the report."""
    from engine.policy.policytest import format_report, run_root
    from engine.settings import SettingsError

    try:
        root = policy_root(args.root)
    except SettingsError as exc:
        report(str(exc))
        return 2
    result = run_root(root, pattern=args.pattern)
    write_out(format_report(result, verbose=args.verbose) + "\n")
    if not result.ok:
        return 1
    if args.fail_uncovered and (result.uncovered or result.untested):
        write_out("failed: some rules are fired by no test case (--fail-uncovered)\n")
        return 1
    return 0
