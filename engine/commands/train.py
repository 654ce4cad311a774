"""``verdict train`` (train, validate and export a model from a CSV) and ``verdict models rebuild``.

``verdict train --data CSV --target COLUMN --positive LABEL --name NAME --out DIR`` reads any
tabular CSV, infers column types, cross-validates, trains a final model, exports it to ONNX, checks
ONNX against the native model on the training rows (refusing to write a model that disagrees by
more than 1e-5) and writes ``DIR/model.onnx``, ``DIR/card.json`` and ``DIR/report.md`` with a ROC
curve and a score histogram. Exit codes: 0 written, 1 training or parity failure (or an unexpected
error, in one line), 2 bad usage or data (including too few rows for a split and a model that learned
nothing). A failed run writes nothing. How the CSV is read and typed: docs/training.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.commands._io import UsageError, report
from engine.extras import require

__all__ = ["parse_monotone", "register", "run_baseline", "run_rebuild", "run_train"]


def _csv_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def parse_monotone(text: str) -> dict[str, int]:
    """``"income:-1,debt:+1"`` -> ``{"income": -1, "debt": 1}``."""
    out: dict[str, int] = {}
    for item in _csv_list(text):
        name, sep, direction = item.rpartition(":")
        if not sep or not name or direction.strip() not in ("+1", "1", "-1"):
            raise UsageError(f"--monotone expects feature:+1 or feature:-1, got {item!r}")
        out[name.strip()] = -1 if direction.strip() == "-1" else 1
    return out


# Long (74 lines): the argparse registration of two commands, one flag after another.
def register(subparsers: Any) -> None:
    """Add ``train`` and ``models rebuild``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "train",
        help="train, validate and export a model (ONNX + card + report) from a CSV",
        description=__doc__.split("\n\n")[1] if __doc__ else None,
    )
    p.add_argument("--data", type=Path, default=None, help="CSV file with a header row (or --from-log)")
    p.add_argument("--target", default=None, help="target column (with --from-log: label)")
    p.add_argument("--positive", default=None, help="label of the positive class in the target column (with --from-log: bad)")
    p.add_argument("--from-log", metavar="DIR|DSN", default=None,
                   help="train on the point-in-time training set of a decision log: --flow's decisions with an "
                        "outcome label (docs/review-queue.md); written to --export first")
    p.add_argument("--flow", default=None, help="with --from-log: the flow whose decisions to use")
    p.add_argument("--outcomes-store", metavar="PATH|DSN", default=None,
                   help="with --from-log: the case store holding the labels (default: the cases setting)")
    p.add_argument("--export", type=Path, default=None, metavar="FILE.csv|FILE.parquet",
                   help="with --from-log: where the training set is written (required)")
    p.add_argument("--root", type=Path, default=None, help="with --from-log: policy root, for the derived features (default as serve)")
    p.add_argument("--name", required=True, help="model name (lower_snake_case)")
    p.add_argument("--out", type=Path, required=True, help="output directory")
    p.add_argument("--version", default="1", help="model version recorded in the card (default 1)")
    p.add_argument("--features", type=_csv_list, default=None, help="columns to use, comma-separated")
    p.add_argument("--drop", type=_csv_list, default=(), help="columns to leave out, comma-separated")
    p.add_argument("--categorical", type=_csv_list, default=(), help="columns to treat as categorical")
    p.add_argument("--keep-column", dest="keep", action="append", type=_csv_list, default=[], metavar="NAME",
                   help="train on a column even though it looks like a row identifier (repeatable, or comma-separated)")
    p.add_argument("--number-format", choices=("auto", "plain", "thousands_comma", "decimal_comma"), default="auto",
                   help="how numbers are written: detected per column (auto), plain 1234.5, thousands_comma "
                        "1,234.5 or decimal_comma 1.234,5")
    p.add_argument("--protected", type=_csv_list, default=(), metavar="COL[,COL]",
                   help="protected attributes (e.g. marital): kept out of the features; approval rate, adverse "
                        "impact ratio, score distribution and AUC reported per group (docs/compliance.md)")
    p.add_argument("--age", default=None, metavar="COL",
                   help="the applicant's age column: a feature constrained so risk never rises with age, checked "
                        "against Reg B's 62-and-over rule, and reported per age band (docs/compliance.md)")
    p.add_argument("--cutoff", dest="cutoffs", action="append", type=float, default=[], metavar="SCORE",
                   help="score cut-off below which an application counts as approved in the fairness report "
                        "(repeatable; default 0.5)")
    p.add_argument("--monotone", default="", help="monotone constraints, e.g. income:-1,debt:+1 (lightgbm)")
    p.add_argument("--algorithm", choices=("lightgbm", "logistic"), default="lightgbm")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--folds", type=int, default=5)
    p.add_argument("--learning-rate", type=float, default=0.05)
    p.add_argument("--num-leaves", type=int, default=15)
    p.add_argument("--min-data-in-leaf", type=int, default=20)
    p.add_argument("--max-rounds", type=int, default=300)
    p.add_argument("--no-tune", dest="tune", action="store_false",
                   help="lightgbm: skip the small tuning grid (leaves 7/15/31, min_data_in_leaf 20/50, "
                        "feature_fraction 0.6/0.9, then one-vs-rest categorical splits at the best point) "
                        "and use the given hyper-parameters")
    p.add_argument("--iteration-selection", choices=("auto", "holdout", "inner_cv"), default="auto",
                   help="lightgbm: how each CV fold's tree count is chosen: early stopping on a 15%% slice of "
                        "the training fold (holdout) or on an inner 3-fold CV of it (inner_cv, refit on the whole "
                        "fold); auto = inner_cv below 10,000 rows")
    p.add_argument("--description", default="", help="one sentence for the card")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.set_defaults(run=run_train)

    models = subparsers.add_parser("models", help="bundled model maintenance")
    sub = models.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    rb = sub.add_parser("rebuild", help="retrain every bundled model in model_artifacts/ from data in the repo")
    rb.add_argument("names", nargs="*", help="models to rebuild (default: all)")
    rb.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    rb.add_argument("--quiet", action="store_true")
    rb.set_defaults(run=run_rebuild)
    bl = sub.add_parser("baseline", help="write the drift baseline (baseline.json) of bundled models without retraining")
    bl.add_argument("names", nargs="*", help="models (default: all)")
    bl.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    bl.set_defaults(run=run_baseline)

    from engine.commands.models import register_list

    register_list(sub)


def _validate(args: argparse.Namespace) -> None:
    import re

    if (args.data is None) == (args.from_log is None):
        raise UsageError("give --data CSV (with --target and --positive) or --from-log LOG (with --flow and --export)")
    if not re.fullmatch(r"[a-z][a-z0-9_]*", args.name):
        raise UsageError(f"--name must be lower_snake_case, got {args.name!r}")
    if args.folds < 2:
        raise UsageError("--folds must be at least 2")
    if args.monotone and args.algorithm != "lightgbm":
        raise UsageError("--monotone applies to --algorithm lightgbm only")
    if (args.protected or args.age or args.cutoffs) and args.algorithm != "lightgbm":
        raise UsageError("--protected, --age and --cutoff apply to --algorithm lightgbm only")
    bad = [c for c in args.cutoffs if not 0 < c <= 1]
    if bad:
        raise UsageError(f"--cutoff must be a score in (0, 1], got {', '.join(f'{c:g}' for c in bad)}")
    if args.from_log is not None:
        missing = [flag for flag, value in (("--flow", args.flow), ("--export", args.export)) if not value]
        if missing:
            raise UsageError(f"--from-log needs {' and '.join(missing)}")
        if args.export.suffix.lower() not in (".csv", ".parquet"):
            raise UsageError(f"--export must end in .csv or .parquet, got {args.export.name!r}")
        return
    if not args.target or not args.positive:
        raise UsageError("--data needs --target and --positive")
    if not args.data.is_file():
        raise UsageError(f"--data {args.data}: no such file")


def run_train(args: argparse.Namespace) -> int:
    """Train and write the model; see the module docstring for exit codes."""
    require("train", "verdict train")
    from engine.errors import VerdictError
    from engine.training.errors import DataError, TrainingError
    from engine.training.progress import TextProgress, silent

    try:
        _validate(args)
        monotone = parse_monotone(args.monotone)
        if args.from_log is not None:  # the point-in-time training set becomes --data
            _export_from_log(args)
    except (UsageError, VerdictError) as exc:  # bad usage (2); the log, store or policies unreadable (1)
        report(str(exc))
        return 2 if isinstance(exc, UsageError) else 1
    from engine.training.dataset import reading_messages

    progress = silent if args.quiet else TextProgress(sys.stderr)
    try:
        trained = _train(args, monotone, progress)
        card = trained.write(args.out, report=True)
    except DataError as exc:
        report(f"cannot train: [{exc.code}] {exc}")
        return 2
    except TrainingError as exc:
        report(f"training failed: [{exc.code}] {exc}")
        return 1
    except Exception as exc:  # noqa: BLE001 (a bug: one line and exit 1, never a traceback; nothing was written)
        report(f"training failed: [internal_error] {type(exc).__name__}: {exc} (nothing was written; please report this)")
        return 1
    m = card.metrics
    faith = m.get("faithfulness", {})
    lines = [f"wrote {args.out}/model.onnx, card.json, report.md"]
    lines += [f"  note: {line}" for line in reading_messages(trained.prepared)]
    lines += [f"  WARNING: {w}" for w in m.get("warnings", [])]
    if card.fairness is not None:
        lines += [f"  FAIR LENDING: AIR {f['air']:.3f} < 0.8 for {f['attribute']} = {f['group']} at cut-off {f['cutoff']:g}"
                  for f in card.fairness["flagged"]] or ["  fair lending: no group's adverse impact ratio is below 0.8"]
    lines += [
        f"  cv_auc {m['cv_auc']:.4f}  cv_ks {m['cv_ks']:.4f}  cv_gini {m['cv_gini']:.4f}  "
        f"cv_brier {m['cv_brier']:.4f}  cv_logloss {m['cv_logloss']:.4f}",
        f"  parity max |diff| {card.parity.max_abs_diff:.2e} on {card.parity.rows} rows",
        f"  reason faithfulness {faith.get('lowered', 'n/a')}/{faith.get('tested', 'n/a')} declines lowered by "
        "fixing the top reason",
    ]
    print("\n".join(lines))
    return 0


def _write_set(path: Path, header: list[str], rows: list[list[Any]]) -> None:
    """Write a training set as CSV or Parquet (by suffix) through engine.batch.table.Writer (pyarrow):
    columns whose values are all numbers are doubles, the others text (booleans as true/false)."""
    try:
        import pyarrow  # noqa: F401 - the writer's dependency, named here so its absence is a clear error
    except ImportError:
        raise UsageError("verdict train --from-log writes the training set with pyarrow: pip install -e '.[batch]'") from None
    from engine.batch.table import Writer

    def number(v: Any) -> bool:
        return isinstance(v, int | float) and not isinstance(v, bool)

    floats = frozenset(n for i, n in enumerate(header) if any(r[i] is not None for r in rows) and all(r[i] is None or number(r[i]) for r in rows))

    def cell(name: str, v: Any) -> Any:
        if v is None or name in floats:
            return None if v is None else float(v)
        return str(v).lower() if isinstance(v, bool) else str(v)

    path.parent.mkdir(parents=True, exist_ok=True)
    writer = Writer(path, header, floats)
    writer.write([{n: cell(n, v) for n, v in zip(header, row, strict=True)} for row in rows])
    writer.close()


def _export_from_log(args: argparse.Namespace) -> None:
    """Write the point-in-time training set (engine/training/from_log.py) to ``--export`` and point
    the trainer at it (target ``label``, positive ``bad``, the id columns dropped)."""
    from engine.audit.source import open_source
    from engine.cases import open_store
    from engine.commands._io import note, policy_root
    from engine.commands.cases import store_location
    from engine.policy.loader import load_policies
    from engine.training.from_log import ID_COLUMNS, LABEL_COLUMN, training_set

    try:
        location = store_location(args.outcomes_store)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    store = open_store(location)
    try:
        labels = store.outcomes()
    finally:
        store.close()
    policies = load_policies(policy_root(args.root))
    entry = policies.flows.get(args.flow)
    source = open_source(args.from_log)
    try:
        built = training_set(source.decisions(flow=args.flow), labels, entry.versions if entry is not None else {})
    finally:
        source.close()
    if not built.rows:
        raise UsageError(f"no decision of {args.flow} in {args.from_log} has an outcome label in {location} "
                         f"({built.unlabelled} without one): import outcomes first (verdict outcomes import)")
    csv_path = args.export
    _write_set(args.export, built.header, built.rows)
    if args.export.suffix.lower() == ".parquet":  # the trainer reads CSV: a copy beside the model
        args.out.mkdir(parents=True, exist_ok=True)
        csv_path = args.out / "training_set.csv"
        _write_set(csv_path, built.header, built.rows)
    note(f"training set: {len(built.rows)} labelled decisions ({built.unlabelled} without a label left out), "
         f"{len(built.header) - len(ID_COLUMNS) - 1} columns, masked fields left out: {', '.join(built.masked_fields) or 'none'}; "
         f"written to {args.export}")
    if built.no_derived:
        note(f"{built.no_derived} row(s) without derived features: their version is no longer loaded with the same revision")
    args.data, args.target, args.positive = csv_path, LABEL_COLUMN, "bad"
    args.drop = (*args.drop, *ID_COLUMNS)


def _train(args: argparse.Namespace, monotone: dict[str, int], progress: Any) -> Any:
    from engine.training.dataset import DataOptions

    data = DataOptions(
        args.data, target=args.target, positive=args.positive, features=args.features,
        drop=tuple(args.drop), categorical=tuple(args.categorical),
        keep=tuple(name for group in args.keep for name in group), number_format=args.number_format,
        protected=tuple(args.protected), age=args.age,
    )
    if args.algorithm == "logistic":
        from engine.training.logistic import LogisticSpec, train_logistic

        return train_logistic(
            LogisticSpec(name=args.name, data=data, version=args.version, description=args.description,
                         seed=args.seed, folds=args.folds),
            progress,
        )
    from engine.training.binary import TUNING_GRID, ModelSpec, train_lightgbm
    from engine.training.lightgbm_trainer import LightGBMSettings

    settings = LightGBMSettings(
        learning_rate=args.learning_rate, num_leaves=args.num_leaves, min_data_in_leaf=args.min_data_in_leaf,
        max_rounds=args.max_rounds, folds=args.folds, seed=args.seed,
        iteration_selection=args.iteration_selection,
    )
    spec = ModelSpec(name=args.name, data=data, version=args.version, description=args.description,
                     monotone=monotone, settings=settings, tuning_grid=TUNING_GRID if args.tune else (),
                     cutoffs=tuple(args.cutoffs))
    return train_lightgbm(spec, progress)


def run_rebuild(args: argparse.Namespace) -> int:
    """Rebuild bundled models; 2 for an unknown name, 1 for a training failure."""
    require("train", "verdict models rebuild")
    from engine.training.errors import TrainingError
    from engine.training.progress import TextProgress, silent
    from engine.training.rebuild import BUNDLED, rebuild

    unknown = [n for n in args.names if n not in BUNDLED]
    if unknown:
        report(f"unknown bundled model(s): {', '.join(unknown)}; known: {', '.join(BUNDLED)}")
        return 2
    try:
        rebuild(args.root, args.names or None, silent if args.quiet else TextProgress(sys.stderr))
    except TrainingError as exc:
        report(f"rebuild failed: [{exc.code}] {exc}")
        return 1
    return 0


def run_baseline(args: argparse.Namespace) -> int:
    """``verdict models baseline``: write baseline.json of the bundled models; exit 2 on a bad name or data."""
    from engine.training.errors import DataError
    from engine.training.rebuild import write_baselines

    try:
        written = write_baselines(args.root, args.names or None)
    except (ValueError, DataError) as exc:
        report(str(exc))
        return 2
    print("\n".join(f"wrote {path}" for path in written.values()))
    return 0
