"""``verdict console``: the web console (docs/console.md), and ``verdict console users add``.

``verdict console --port PORT [--host H] [--root DIR] [--log-dir DIR] [--users FILE]
[--reload-target HOST:PORT ...]`` serves the console until interrupted; ``verdict console users
add NAME --role ROLE`` reads the password from stdin (prompting when it is a terminal) and writes
its Argon2id hash to the users file. Needs the ``[console]`` extra (one line and exit 2 without
it). Exit codes: 0 done, 2 bad usage.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path
from typing import Any

from engine.commands._channel import add_connection_flags
from engine.commands._io import ROOT_HELP, note, policy_root, report

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``console [--port ...]`` and ``console users add NAME --role ROLE``."""
    from engine.console.users import ROLES

    p: argparse.ArgumentParser = subparsers.add_parser(
        "console", help="serve the web console for analysts, policy owners, approvers and auditors",
        description="The web console (its own process): decision search, flows and diffs, backtests, model cards, "
        "releases with maker-checker approval. See docs/console.md.",
    )
    p.add_argument("--port", type=int, default=8080, help="TCP port (default 8080; 0: any free port, printed)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; put a TLS proxy in front otherwise)")
    p.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    p.add_argument("--log-dir", type=Path, default=None, help="the decision log to search (a directory or a PostgreSQL DSN)")
    p.add_argument("--users", type=Path, default=None, help="users file (default ROOT/console/users.yaml)")
    p.add_argument("--cases", default=None, metavar="LOCATION",
                   help="the review-queue store `verdict serve` writes (a SQLite file or a PostgreSQL DSN); without it, no queue pages")
    p.add_argument("--data-dir", type=Path, default=None, help="history files offered to backtests (default ROOT/data)")
    p.add_argument("--idle-minutes", type=float, default=15.0, help="sign out after this many idle minutes (default 15)")
    p.add_argument("--secure-cookies", action="store_true", help="mark the session cookie Secure (when served over https)")
    p.add_argument("--reload-target", action="append", default=[], metavar="HOST:PORT",
                   help="a Decide server to call Reload on after an approved routing change (repeatable); "
                        "without one, servers pick the change up by their file watch or SIGHUP")
    add_connection_flags(p)
    sub = p.add_subparsers(dest="console_command", metavar="users")
    users = sub.add_parser("users", help="manage console users").add_subparsers(dest="users_command", metavar="add|list", required=True)
    add = users.add_parser("add", help="add or replace a user; the password is read from stdin")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    add.add_argument("--users", type=Path, default=None, help="users file (default ROOT/console/users.yaml)")
    listing = users.add_parser("list", help="list users and roles")
    listing.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    listing.add_argument("--users", type=Path, default=None, help="users file (default ROOT/console/users.yaml)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Serve the console, or manage its users."""
    from engine.extras import require
    from engine.settings import SettingsError

    require("console", "verdict console")
    from engine.console.users import UserError, Users

    try:
        root = policy_root(args.root)
    except SettingsError as exc:
        report(str(exc))
        return 2
    users = Users(args.users or root / "console" / "users.yaml")
    if args.console_command == "users":
        try:
            return _users(args, users)
        except UserError as exc:
            report(str(exc))
            return 2
    return _serve(args, root, users)


def _users(args: argparse.Namespace, users: Any) -> int:
    if args.users_command == "list":
        for user in users.list():
            sys.stdout.write(f"{user.name}\t{user.role}\n")
        return 0
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.name}: ")
        if getpass.getpass("again: ") != password:
            report("the passwords differ")
            return 2
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    user = users.add(args.name, args.role, password)
    note(f"{user.name} ({user.role}) written to {users.path}")
    return 0


def build(args: argparse.Namespace, root: Path, users: Any) -> Any:
    """The console's ASGI application for these arguments (also used by the tests)."""
    from engine.console.app import Console, create_app, new_secret
    from engine.console.jobs import BacktestJobs
    from engine.console.releases import Releases, reload_servers
    from engine.console.security import SessionCodec

    reload = reload_servers(args, args.reload_target) if args.reload_target else None
    ctx = Console(
        root=root, log_dir=args.log_dir, users=users, codec=SessionCodec(new_secret(), idle=args.idle_minutes * 60.0),
        releases=Releases(root, reload), jobs=BacktestJobs(_runner(root, args.log_dir, args.cases)), data_dir=args.data_dir,
        secure_cookies=args.secure_cookies, cases=_case_store(args.cases),
    )
    return create_app(ctx)


def _case_store(location: str | None) -> Any:
    if not location:
        return None
    from engine.cases import open_store

    return open_store(location)


def _runner(root: Path, log: Path | None, cases: str | None) -> Any:
    """The console's job: a backtest of a history file (engine.batch.backtest) or a replay of the log over a period (engine.audit.replay)."""
    def run(spec: Any, progress: Any) -> tuple[dict[str, Any], str]:
        if spec.kind == "replay":
            return _replay(root, log, cases, spec, progress)
        from engine.batch.backtest import backtest
        from engine.runtime.service import load_decider

        decider = load_decider(root)
        result = backtest(decider, spec.flow, list(spec.versions), spec.source, id_column=spec.id_column,
                          outcome_column=spec.outcome_column, outcomes=spec.outcomes, root=root, progress=progress)
        return result.as_dict(), result.render()

    return run


def _replay(root: Path, log: Path | None, cases: str | None, spec: Any, progress: Any) -> tuple[dict[str, Any], str]:
    """``verdict replay`` over the decisions of [since, until): outcomes from the upload, completed by the case store's labels."""
    from engine.audit.follow import Gap
    from engine.audit.replay import replay
    from engine.audit.report import render_table
    from engine.audit.source import open_source
    from engine.commands.outcomes import with_store_outcomes
    from engine.policy.loader import load_policies

    if log is None:
        raise ValueError("the console was started without --log-dir: there is no decision log to replay")
    compiled = load_policies(root).flows[spec.flow].versions[spec.versions[0]]
    outcomes = with_store_outcomes(dict(spec.outcomes) if spec.outcomes else None, cases)
    source = open_source(log)
    gaps: list[Gap] = []
    try:
        records = (r for r in source.decisions(flow=spec.flow, gaps=gaps)
                   if (not spec.since or r["ts"] >= spec.since) and (not spec.until or r["ts"][: len(spec.until)] <= spec.until))
        result = replay(records, compiled, outcomes=outcomes, location=source.describe(), progress=progress, gaps=gaps)
    finally:
        source.close()
    return result.as_dict(), render_table(result)


def _serve(args: argparse.Namespace, root: Path, users: Any) -> int:
    import socket

    import uvicorn

    from engine.cases import CaseStoreError

    try:
        app = build(args, root, users)
    except CaseStoreError as exc:
        report(str(exc))
        return 2
    sock = socket.socket(socket.AF_INET6 if ":" in args.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        report(f"cannot listen on {args.host}:{args.port}: {exc.strerror or exc}")
        return 2
    host, port = sock.getsockname()[:2]
    sys.stdout.write(f"verdict console on http://{host}:{port}/ (root {root}, decision log {args.log_dir or 'none'})\n")
    sys.stdout.flush()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, server_header=False))
    server.run(sockets=[sock])
    return 0
