"""The ``verdict`` command line: one sub-command per module of ``engine.commands``.

Sub-commands are registered explicitly below (no discovery by import strings); each module
exposes ``register(subparsers)``, which adds its parser and sets ``run(args) -> int`` as the
handler. Exit codes: 0 success, 1 failure of the service or its policies, 2 bad usage or input.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from engine.commands import (
    audit,
    auth,
    backtest,
    batch,
    bench,
    cases,
    client,
    console,
    decide,
    events,
    lint,
    lists,
    monitor,
    notice,
    outcomes,
    release,
    reload,
    replay,
    serve,
    status,
    testing,
    train,
)
from engine.extras import MissingExtra

__all__ = ["build_parser", "console_main", "main"]

COMMANDS = (
    serve, decide, client, status, reload, train, lint, testing, release, audit, replay, bench, auth, monitor, notice, batch,
    backtest, cases, lists, outcomes, console, events,
)


def build_parser() -> argparse.ArgumentParser:
    """The parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="verdict",
        description="Verdict: a low-latency decision engine for financial risk.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on bad usage, 0 on --help
        return exc.code if isinstance(exc.code, int) else 2
    try:
        return int(args.run(args))
    except MissingExtra as exc:  # an optional part of the installation (engine/extras.py): one line, exit 2
        print(f"verdict: {exc}", file=sys.stderr)
        return 2


def console_main() -> int:
    """The ``verdict`` executable: ``main`` with the process's logging set up first.

    Log lines of one-shot commands go to stderr, warnings and worse only: stdout carries their
    answer (often JSON). `verdict serve` configures its own structured logging from its settings.
    (``main`` itself leaves logging alone, so tests can call it in-process.)
    """
    from engine.logging import configure

    configure("warning", "console")
    return main()


if __name__ == "__main__":
    sys.exit(console_main())
