"""``verdict backtest``: decide a history file with several flow versions side by side and compare them.

``verdict backtest FLOW --versions A[,B,...] --input HISTORY.csv|parquet [--outcome-column COL |
--outcomes CSV --id-column COL] [--protected COL[,COL]] [--age COL] [--engine local|spark] [--json FILE|-]
[--plots DIR] [--root DIR]``
prints every version's action rates (and, with outcomes, approval rate, bad rate of approved
business, precision and recall), the rules it fired and the reasons it gave, then each later version against the first: the transition
matrix, the rules behind the changes, rule hits and mean scores (engine.batch.backtest); with
``--protected``/``--age``, each version's approval rate, adverse impact ratio and bad rate of
approved per group (docs/compliance.md). Nothing is written to the decision log. Exit codes: 0 done,
1 broken policies, 2 bad usage (unknown flow or version, unreadable input or outcomes, an outcome
that is neither good nor bad, a protected column the flow declares as an input).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from engine.commands._io import ROOT_HELP, load_decider_or_report, note, policy_root, report, write_out

__all__ = ["register", "run"]


def register(subparsers: Any) -> None:
    """Add ``backtest FLOW --versions A,B --input FILE [...]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "backtest",
        help="decide a history file with one version, or several side by side, and report what they do",
        description="Backtest: decide every row of --input with each of --versions (the first is the baseline) "
        "and compare rates, transitions, the rules behind the changes and, with outcomes, precision/recall "
        "and the bad rate of approved business. See docs/batch.md.",
    )
    p.add_argument("flow", help="flow name, e.g. credit_application")
    p.add_argument("--versions", required=True,
                   help="comma-separated versions, the baseline first, e.g. 1,2; one version alone (e.g. a new flow's 1) "
                        "gives its rates, rules fired and reasons; OTHER@V is version V of another flow, "
                        "e.g. 1,credit_application@3 for a new flow against the one it would replace")
    p.add_argument("--input", "-i", required=True, type=Path, help="history: .csv or .parquet")
    p.add_argument("--outcome-column", default=None, help="column of the history holding the outcome (good/bad, 0/1)")
    p.add_argument("--outcomes", type=Path, default=None, metavar="CSV",
                   help="outcomes file (id,outcome) joined on --id-column")
    p.add_argument("--outcomes-store", metavar="PATH|DSN", default=None,
                   help="also use the outcome labels of this case store, joined on --id-column by decision or request id (--outcomes rows win)")
    p.add_argument("--id-column", default=None, help="column of the history identifying each row")
    p.add_argument("--protected", default="", metavar="COL[,COL]",
                   help="protected attribute columns of the history (e.g. marital status): never sent to the flow; "
                        "the report gains approval rate, adverse impact ratio and bad rate of approved per group")
    p.add_argument("--age", default=None, metavar="COL",
                   help="an age column of the history, reported like --protected in age bands (62 and over: Reg B)")
    p.add_argument("--engine", choices=("local", "spark"), default="local", help="local (default) or spark")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE (- for stdout, no table)")
    p.add_argument("--plots", type=Path, metavar="DIR", help="write PNG plots (actions by version, transitions) to DIR")
    p.add_argument("--root", type=Path, default=None, help=ROOT_HELP)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run the backtest and print the report."""
    from engine.audit.replay import OutcomesError
    from engine.batch.backtest import OutcomeError, backtest, read_outcomes
    from engine.batch.backtest_plots import plot
    from engine.batch.table import TableFormatError
    from engine.commands.outcomes import with_store_outcomes
    from engine.errors import FlowNotFound, FlowUnavailable, VersionNotFound
    from engine.settings import SettingsError
    from engine.tabular import TableError

    versions = [v.strip() for v in args.versions.split(",") if v.strip()]
    if (args.outcomes is not None or args.outcomes_store) and args.outcome_column is not None:
        report("give either --outcomes/--outcomes-store or --outcome-column, not both")
        return 2
    try:
        root = policy_root(args.root)
        outcomes = read_outcomes(args.outcomes) if args.outcomes is not None else None
        outcomes = with_store_outcomes(outcomes, args.outcomes_store, by_request=True)
    except (SettingsError, OutcomesError) as exc:
        report(str(exc))
        return 2
    decider = load_decider_or_report(root)
    if decider is None:
        return 1
    try:
        result = backtest(
            decider, args.flow, versions, args.input, id_column=args.id_column, outcome_column=args.outcome_column,
            outcomes=outcomes, engine=args.engine, root=root,
            protected=[c.strip() for c in args.protected.split(",") if c.strip()], age=args.age,
        )
    except FlowUnavailable as exc:
        report(f"{exc.flow} is not loaded; its problems:\n" + "\n".join(f"  {p}" for p in exc.problems))
        return 1
    except (FlowNotFound, VersionNotFound, TableError, TableFormatError, OutcomeError, ValueError) as exc:
        report(str(exc))
        return 2
    except ImportError as exc:
        report(f"--engine spark needs the [spark] extra (pip install -e '.[spark]'): {exc}")
        return 2
    finally:
        if args.engine == "spark":
            _stop_spark()
    data = result.as_dict()
    if args.json == "-":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        write_out(result.render())
        if args.json:
            Path(args.json).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if args.plots is not None:
        for path in plot(result, args.plots):
            note(f"wrote {path}")
    return 0


def _stop_spark() -> None:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        return
    active = SparkSession.getActiveSession()
    if active is not None:
        active.stop()
