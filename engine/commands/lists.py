"""``verdict lists add|remove|show|import|history``: the custom block and allow lists (docs/lists.md).

Changes go straight to the list store a server reads (``custom_lists.sqlite`` in ``--dir``, by
default the decision log directory ``./audit``); a running server sees them within a second. Every
change needs ``--actor`` and ``--reason`` and is audited. A card number may be given as ``-`` to be
read from stdin, so that it appears in no shell history or process list; it is never printed.
Exit codes: 0 done; 1 the audit trail is broken (``history``); 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import csv
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.commands._io import ROOT_HELP, note, policy_root, print_json, report

if TYPE_CHECKING:
    from engine.custom_lists.store import ListStore

__all__ = ["parse_time", "register"]

_HELP = "change and read the custom block and allow lists (docs/lists.md)"
_DESCRIPTION = (
    "Add, remove, show and import entries of the custom lists declared in policies/custom_lists.yaml, and read their "
    "audited history. A running server sees a change within a second, without a new flow version."
)
_DIR_HELP = "directory of the list store custom_lists.sqlite (default: VERDICT_LISTS, else the decision log directory VERDICT_AUDIT, ./audit)"


def register(subparsers: Any) -> None:
    """Add ``lists`` and its actions."""
    p: argparse.ArgumentParser = subparsers.add_parser("lists", help=_HELP, description=_DESCRIPTION)
    sub = p.add_subparsers(dest="lists_command", metavar="ACTION", required=True)

    # action -> (help, its own arguments as (name, kwargs), whether it changes a list, its runner)
    actions: dict[str, tuple[str, list[tuple[str, dict[str, Any]]], bool, Any]] = {
        "add": ("add an entry (or renew its expiry and note)", [
            ("list", {"help": "list name, as policies/custom_lists.yaml declares it"}),
            ("value", {"help": "the entry; '-' reads it from stdin (use it for card numbers)"}),
            ("--expires", {"help": "when it stops counting: ISO-8601 (2026-12-31, 2026-12-31T18:00:00Z) or a duration (90m, 12h, 30d)"}),
            ("--note", {"default": "", "help": "a note shown with the entry"}),
        ], True, _run_add),
        "remove": ("remove an entry", [
            ("list", {"help": "list name"}),
            ("value", {"help": "the entry, as it was added (any spelling of the same normal form); '-' reads stdin"}),
        ], True, _run_remove),
        "show": ("print a list's entries as JSON (card numbers masked)", [("list", {"help": "list name"})], False, _run_show),
        "import": ("add every entry of a CSV file in one transaction (all or none)", [
            ("list", {"help": "list name"}),
            ("file", {"help": "CSV with a header: value[,expires][,note] ('-' for stdin)"}),
        ], True, _run_import),
        "history": ("print the audited changes and verify their hash chain",
                    [("list", {"nargs": "?", "help": "only this list's changes"})], False, _run_history),
    }
    for action, (text, arguments, change, runner) in actions.items():
        q = sub.add_parser(action, help=text)
        for name, kwargs in arguments:
            q.add_argument(name, **kwargs)
        q.add_argument("--root", type=Path, help=ROOT_HELP)
        q.add_argument("--dir", type=Path, help=_DIR_HELP)
        if change:
            q.add_argument("--actor", required=True, help="who makes the change (audited)")
            q.add_argument("--reason", required=True, help="why (audited)")
        q.set_defaults(run=runner)


def parse_time(text: str | None, now: float) -> float | None:
    """Unix seconds of an ``--expires`` value: ISO-8601 (UTC when no zone is given) or ``N[smhd]`` from ``now``.

    Raises ValueError naming the accepted forms.
    """
    if text is None or not text.strip():
        return None
    text = text.strip()
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text[-1:] in units and text[:-1].isdigit():
        return now + int(text[:-1]) * units[text[-1]]
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--expires {text!r}: give an ISO-8601 time (2026-12-31T18:00:00Z) or a duration (90m, 12h, 30d)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _value(text: str) -> str:
    return sys.stdin.readline().strip() if text == "-" else text


def _open(args: argparse.Namespace) -> ListStore | None:
    """The store of the root's declared lists, or None (reported) when it cannot be opened."""
    from engine.audit.errors import AuditError
    from engine.audit.wiring import hash_key
    from engine.custom_lists.declarations import read_declarations
    from engine.custom_lists.store import ListStore
    from engine.errors import Problem
    from engine.settings import Settings, SettingsError

    root = policy_root(args.root)
    problems: list[Problem] = []
    declared = read_declarations(root, problems)
    if problems:
        for problem in problems:
            report(str(problem))
        return None
    try:
        settings = Settings.load(root=root, lists=str(args.dir) if args.dir else None)
        directory = settings.lists_dir
        if directory is None:
            report("no list store: --dir (or VERDICT_LISTS) is off and there is no decision log directory")
            return None
        key = hash_key(settings, directory)
        store = ListStore(directory, lambda: declared, key)
    except (SettingsError, AuditError, OSError) as exc:
        report(str(exc))
        return None
    note(f"list store {store.path}")
    return store


def _done(run: Any) -> int:
    """Run ``run()``; report InvalidInput (every bad field) and sqlite errors as exit 2."""
    import sqlite3

    from engine.errors import InvalidInput

    try:
        run()
    except InvalidInput as exc:
        for error in exc.errors:
            report(str(error))
        return 2
    except (ValueError, sqlite3.Error) as exc:
        report(str(exc))
        return 2
    return 0


def _run_add(args: argparse.Namespace) -> int:
    import time

    store = _open(args)
    if store is None:
        return 2

    def run() -> None:
        expires = parse_time(args.expires, time.time())
        change = store.add(args.list, _value(args.value), actor=args.actor, reason=args.reason, expires_at=expires, note=args.note,
                           via="cli")
        print_json(change.record)

    return _done(run)


def _run_remove(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return 2
    return _done(lambda: print_json(store.remove(args.list, _value(args.value), actor=args.actor, reason=args.reason, via="cli").record))


def _run_show(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return 2
    return _done(lambda: print_json([e.as_dict() for e in store.entries(args.list)]))


def _run_import(args: argparse.Namespace) -> int:
    import time

    store = _open(args)
    if store is None:
        return 2

    def run() -> None:
        now = time.time()
        handle = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8", newline="")  # noqa: SIM115 (closed below)
        try:
            rows = [(r.get("value") or "", parse_time(r.get("expires"), now), r.get("note") or "") for r in csv.DictReader(handle)]
        finally:
            if handle is not sys.stdin:
                handle.close()
        changes = store.import_entries(args.list, rows, actor=args.actor, reason=args.reason, via="cli")
        print_json({"list": args.list, "imported": len(changes), "first_seq": changes[0].seq if changes else None})

    return _done(run)


def _run_history(args: argparse.Namespace) -> int:
    store = _open(args)
    if store is None:
        return 2
    status = _done(lambda: print_json([{"seq": c.seq, **c.record} for c in store.history(args.list)]))
    if status:
        return status
    problems = store.verify()
    for problem in problems:
        report(f"audit trail broken: {problem}")
    if not problems:
        note("audit trail verified: every change's hash and chain link hold")
    return 1 if problems else 0
