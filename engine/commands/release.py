"""``verdict release FLOW VERSION``: freeze a flow version by writing its release.lock."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.commands._io import report, write_out

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``release FLOW VERSION [--root DIR]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "release",
        help="mark a flow version released (immutable) by writing its release.lock",
        description="Lint the root and run the version's tests; if all is well, write "
        "policies/FLOW/VERSION/release.lock recording the content behind the version. From then on "
        "any change to that content fails lint and is refused by the server.",
    )
    p.add_argument("flow", help="flow name, e.g. credit_application")
    p.add_argument("version", help="version to release, e.g. 2")
    p.add_argument("--root", type=Path, default=None, help="directory holding policies/, rules/, model_artifacts/")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Release; 0 released (or already released unchanged), 1 refused, 2 bad usage."""
    from engine.lint import format_problem
    from engine.loader import load
    from engine.policytest import format_report, run
    from engine.release import lock_path, read_lock, render_lock
    from engine.settings import Settings, SettingsError
    from engine.testcases import discover

    try:
        root = Settings.load(root=args.root).root
    except SettingsError as exc:
        report(str(exc))
        return 2
    result = load(root)
    key = (args.flow, args.version)
    if key not in result.contents:
        report(f"{args.flow} version {args.version} not found under {root}/policies")
        return 2
    if result.errors:
        write_out("\n".join(format_problem(p) for p in result.errors) + "\n")
        report(f"not released: fix the {len(result.errors)} error(s) above first (verdict lint)")
        return 1
    path = lock_path(root, *key)
    lock, _ = read_lock(path, str(path))
    if lock is not None:
        write_out(f"{args.flow} {args.version} is already released (revision {lock.revision[:12]}); nothing to do\n")
        return 0
    suites, problems = discover(root)
    mine = [s for s in suites if s.flow == args.flow and (s.versions is None or args.version in s.versions)]
    tests = run({key: result.compiled[key]}, mine, problems=problems)
    if not tests.ok or not any((r.flow, r.version) == key for r in tests.results):
        write_out(format_report(tests) + "\n")
        report(f"not released: {args.flow} {args.version} needs passing tests (policies/{args.flow}/{args.version}/tests)")
        return 1
    content = result.contents[key]
    path.write_text(render_lock(args.flow, args.version, content), encoding="utf-8")
    write_out(
        f"released {args.flow} {args.version}: revision {content.revision[:12]}, {len(content.files)} files, "
        f"{len(content.models)} models, {len(tests.results)} tests passed\nwrote {path.relative_to(root)}\n"
    )
    return 0
