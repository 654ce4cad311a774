"""``verdict release FLOW VERSION``: freeze a flow version by writing its release.lock."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.commands._io import ROOT_HELP, policy_root, report, write_out

if TYPE_CHECKING:
    from engine.errors import Problem
    from engine.policy.loader import LoadResult

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``release FLOW VERSION [--root DIR]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "release",
        help="mark a flow version released (immutable) by writing its release.lock",
        description="Lint the root (load and lint errors of the flow refuse it, as they refuse activation) and "
        "run the version's tests; if all is well, write "
        "policies/FLOW/VERSION/release.lock recording the content behind the version. From then on "
        "any change to that content fails lint and is refused by the server.",
    )
    p.add_argument("flow", help="flow name, e.g. credit_application")
    p.add_argument("version", help="version to release, e.g. 2")
    p.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    p.add_argument("--reissue", action="store_true",
                   help="rewrite the lock of an already released version whose model files changed while its flow "
                   "and rule files did not (a serving fix); needs --reason, recorded in the lock")
    p.add_argument("--reason", default=None, help="why the lock is re-issued (with --reissue)")
    p.set_defaults(run=run)


def _holds_back(problem: Problem, flow: str, result: LoadResult) -> bool:
    """Whether `problem` keeps `flow` from activating (engine.policy.activation.owners; None: every flow)."""
    from engine.policy.activation import owners

    who = owners(problem, result)
    return who is None or flow in who


def run(args: argparse.Namespace) -> int:
    """Release; 0 released (or already released unchanged), 1 refused, 2 bad usage."""
    from engine.errors import format_problem
    from engine.policy.lint import lint
    from engine.policy.loader import load
    from engine.policy.release import lock_path, read_lock, render_lock
    from engine.settings import SettingsError

    try:
        root = policy_root(args.root)
    except SettingsError as exc:
        report(str(exc))
        return 2
    if args.reissue and not (args.reason or "").strip():
        report("--reissue needs --reason TEXT: the lock records why it was re-issued")
        return 2
    result = load(root)
    key = (args.flow, args.version)
    if key not in result.contents:
        report(f"{args.flow} version {args.version} not found under {root}/policies")
        return 2
    if args.reissue:
        return _reissue(root, args, result)
    linted = lint(root, result)
    errors = [p for p in linted.errors if _holds_back(p, args.flow, result)]  # load and lint errors, as at activation
    if errors:
        write_out("\n".join(format_problem(p) for p in errors) + "\n")
        report(f"not released: fix the {len(errors)} error(s) above first (verdict lint)")
        return 1
    path = lock_path(root, *key)
    lock, _ = read_lock(path, str(path))
    if lock is not None:
        write_out(f"{args.flow} {args.version} is already released (revision {lock.revision[:12]}); nothing to do\n")
        return 0
    passed = _tests_pass(args, result, root)
    if passed is None:
        return 1
    content = result.contents[key]
    path.write_text(render_lock(args.flow, args.version, content), encoding="utf-8")
    write_out(
        f"released {args.flow} {args.version}: revision {content.revision[:12]}, {len(content.files)} files, "
        f"{len(content.models)} models, {passed} tests passed\nwrote {path.relative_to(root)}\n"
    )
    return 0


def _tests_pass(args: argparse.Namespace, result: Any, root: Path) -> int | None:
    """Run the version's policy tests: how many passed, or None (report printed) unless some ran and all passed."""
    from engine.policy.policytest import format_report, run
    from engine.policy.testcases import discover

    key = (args.flow, args.version)
    suites, problems = discover(root)
    mine = [s for s in suites if s.flow == args.flow and (s.versions is None or args.version in s.versions)]
    tests = run({key: result.compiled[key]}, mine, problems=problems)
    if not tests.ok or not any((r.flow, r.version) == key for r in tests.results):
        write_out(format_report(tests) + "\n")
        report(f"not released: {args.flow} {args.version} needs passing tests (policies/{args.flow}/{args.version}/tests)")
        return None
    return len(tests.results)


def _reissue(root: Path, args: argparse.Namespace, result: Any) -> int:
    """Rewrite the lock of a released version after a model-serving fix; 0 done, 1 refused."""
    import datetime as dt

    from engine.errors import format_problem
    from engine.policy.release import Reissue, changed_files, lock_path, read_lock, reissue_refusals, render_lock

    key = (args.flow, args.version)
    path = lock_path(root, *key)
    rel = f"policies/{args.flow}/{args.version}/release.lock"
    lock, problems = read_lock(path, rel)
    if lock is None:
        report(f"{args.flow} {args.version} is not released: nothing to re-issue" if not problems else problems[0].message)
        return 1
    content = result.contents[key]
    # The lock's own complaints are what a re-issue answers; any other error must be fixed first.
    others = [p for p in result.errors if p.code != "released_version_changed"]
    if others:
        write_out("\n".join(format_problem(p) for p in others) + "\n")
        report(f"not re-issued: fix the {len(others)} error(s) above first (verdict lint)")
        return 1
    if lock.revision == content.revision:
        write_out(f"{args.flow} {args.version}: the lock already matches (revision {lock.revision[:12]}); nothing to do\n")
        return 0
    refusals = reissue_refusals(lock, content)
    if refusals:
        write_out("".join(f"{rel}: {r}\n" for r in refusals))
        report(f"not re-issued: put the change in a new version of {args.flow}")
        return 1
    if key not in result.compiled or _tests_pass(args, result, root) is None:
        return 1
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    entry = Reissue(at=when, reason=args.reason.strip(), previous_revision=lock.revision,
                    changed=changed_files(lock, content))
    path.write_text(render_lock(args.flow, args.version, content, released_at=lock.released_at,
                                reissued=(*lock.reissued, entry)), encoding="utf-8")
    write_out(
        f"re-issued {args.flow} {args.version}: revision {lock.revision[:12]} -> {content.revision[:12]} "
        f"({len(entry.changed)} changed files: {', '.join(entry.changed)})\nwrote {rel}\n"
    )
    return 0
