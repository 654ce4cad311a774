"""``verdict auth``: manage the bearer tokens a server accepts (``verdict serve --auth-tokens FILE``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.commands._io import report

__all__ = ["register", "run_add", "run_revoke"]


def register(subparsers: Any) -> None:
    """Add ``auth add-token NAME --file FILE`` and ``auth revoke NAME --file FILE``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "auth",
        help="add or revoke bearer tokens of callers",
        description="Manage the token file of 'verdict serve --auth-tokens FILE'. The file keeps only the "
        "SHA-256 of each token; a new token is printed once. A running server reads the file at start.",
    )
    sub = p.add_subparsers(dest="auth_command", metavar="ACTION", required=True)
    add = sub.add_parser("add-token", help="make a token for a caller and print it once")
    add.add_argument("name", help="caller name, as the authorization file names it (letters, digits, ._@:/+-)")
    add.add_argument("--file", type=Path, required=True, help="token file (created, mode 0600, if missing)")
    add.set_defaults(run=run_add)
    revoke = sub.add_parser("revoke", help="remove every token of a caller")
    revoke.add_argument("name", help="caller name")
    revoke.add_argument("--file", type=Path, required=True, help="token file")
    revoke.set_defaults(run=run_revoke)


def run_add(args: argparse.Namespace) -> int:
    """Print the new token on stdout (only it, so scripts can capture it); 2 on a bad name or file."""
    from engine.errors import PolicyError
    from engine.tokens import add_token

    try:
        token = add_token(args.file, args.name)
    except ValueError as exc:
        report(str(exc))
        return 2
    except PolicyError as exc:
        for problem in exc.problems:
            report(str(problem))
        return 2
    sys.stdout.write(token + "\n")
    report(f"added a token for {args.name} to {args.file}; it is shown only now (restart the server to use it)")
    return 0


def run_revoke(args: argparse.Namespace) -> int:
    """Remove the caller's tokens; 1 when it had none, 2 on a broken file."""
    from engine.errors import PolicyError
    from engine.tokens import revoke_tokens

    try:
        removed = revoke_tokens(args.file, args.name)
    except PolicyError as exc:
        for problem in exc.problems:
            report(str(problem))
        return 2
    if not removed:
        report(f"{args.file} holds no token of {args.name}")
        return 1
    report(f"removed {removed} token(s) of {args.name} from {args.file} (restart the server to apply)")
    return 0
