"""Training rows from an event stream, with the features the serving code computes (no skew).

``replay_features(events, plan)`` replays a stream (``engine.training.fraud_stream``) in
event-time order through the serving path's own state code: each event is one
``engine.state.store.decide_with_state`` call on a ``MemoryStore`` with the flow's compiled
``behaviour:`` plan, so a row holds exactly the stateful feature values a live decision of that
flow version would have read as of just before itself (every earlier event counted, never a later
one), then records itself as the live decision would. Nothing here re-implements a window or a
count: the plan and the store are imported, as Feast and Tecton require of a training set
(point-in-time, one feature definition for training and serving).

The flow's derived features that a model reads (``new_device``, ``amount_to_avg``,
``cross_border``, ``ip_mismatch``) are added by the trainer from ``engine.training.derived``, whose
formulas mirror the flow's expressions; ``tests/unit/test_stream_features.py`` decides a slice of
a stream through a real ``Decider`` and checks the logged values equal these rows.

``write_stream_csv`` writes the rows the committed ``data/card_payment_stream.csv`` holds:
``python -m engine.training.stream_features --seed 7 --out data/card_payment_stream.csv``.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import Problem
from engine.models.runtime import load_model
from engine.policy.compiler import flow_env
from engine.policy.documents import read_document
from engine.policy.schema import FlowFile
from engine.state.plan import StatePlan
from engine.state.plan_compile import compile_plan
from engine.state.store import MemoryStore, decide_with_state
from engine.training.derived import CARD_FRAUD_STREAM_DERIVED, add_derived
from engine.training.errors import DataError
from engine.training.fraud_stream import EVENT_FIELDS, LABELS, StreamParams, generate_stream
from engine.training.metrics import auc
from engine.types import Action, Outcome

__all__ = [
    "HOLDOUT", "STREAM_FLOW", "TRAINING_SALT", "behaviour_plan", "columns", "holdout_auc", "main", "replay_features", "stream_rows",
    "to_csv", "write_stream_csv",
]

STREAM_FLOW = "policies/card_payment/3/flow.yaml"  # whose behaviour: section the training rows are computed with
TRAINING_SALT = b"verdict-training"  # the key of the state's keyed hashes in a training replay (counts do not depend on it)
HOLDOUT = StreamParams(seed=8, customers=1000)  # a stream no bundled model was trained on (seed 8, ~27,000 payments)
LEFT_OUT = ("card_number",)  # in the replay (cards per device, customers per card), never in the CSV: a PAN


def behaviour_plan(flow_path: Path, root: Path | None = None) -> StatePlan:
    """The compiled ``behaviour:`` section of one flow file, as the policy compiler builds it.

    Only the input fields and the behaviour section are read, so the plan exists before the
    models the flow names (a model version trained on these rows). Raises DataError naming every
    problem of the file (with its line) or when it has no ``behaviour:`` section.
    """
    flow_path = Path(flow_path)
    problems: list[Problem] = []
    _, flow = read_document(root or flow_path.parent, flow_path, FlowFile, problems)
    if flow is None or problems:
        raise DataError("; ".join(str(p) for p in problems) or f"{flow_path} could not be read", "flow_invalid")
    if flow.behaviour is None:
        raise DataError(f"{flow_path} has no behaviour: section to compute features with", "flow_without_behaviour")
    found: list[str] = []

    def report(message: str, code: str, loc: tuple[str | int, ...], hint: str | None) -> None:
        found.append(f"{'.'.join(map(str, loc))}: {message} ({code})")

    plan = compile_plan(flow.behaviour, flow.flow, flow_env(flow), report)
    if found:
        raise DataError(f"{flow_path}: " + "; ".join(found), "flow_invalid")
    if plan.events != "attempts":
        raise DataError(f"{flow_path}: behaviour.events is {plan.events!r}; a training replay counts every attempt "
                        "(it cannot know the action a decision would get)", "events_not_attempts")
    return plan


_RECORDED = Outcome(Action.APPROVE, (), (), {})


def _record_only(values: dict[str, Any]) -> Outcome:
    """The evaluation of a training replay: nothing to decide; the plan records every attempt."""
    return _RECORDED


def replay_features(events: Iterable[Mapping[str, Any]], plan: StatePlan, salt: bytes = TRAINING_SALT) -> list[dict[str, Any]]:
    """Each event (in the given order, which must be event-time order) with ``plan``'s features as
    of just before it; the event time is the plan's ``time_field`` (Unix seconds).

    Raises DataError when an event lacks the time field or goes back in time.
    """
    field = plan.time_field
    if field is None:
        raise DataError("the flow's behaviour has no time_field: a stream replay needs each event's time", "no_time_field")
    store = MemoryStore(salt)
    rows: list[dict[str, Any]] = []
    last = float("-inf")
    for n, event in enumerate(events, start=1):
        at = event.get(field)
        if not isinstance(at, (int, float)) or at < last:
            raise DataError(f"event {n}: {field} must be Unix seconds, not before the previous event's", "event_order")
        last = float(at)
        values = {k: v for k, v in event.items() if k not in LABELS}
        _, features = decide_with_state(store, plan, values, last, _record_only)
        rows.append({**event, **features})
    return rows


def stream_rows(params: StreamParams, plan: StatePlan) -> list[dict[str, Any]]:
    """The generated stream of ``params`` with ``plan``'s features, in event-time order."""
    return replay_features(generate_stream(params), plan)


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def columns(plan: StatePlan) -> tuple[str, ...]:
    """The CSV's header: the event fields (but the card number), the plan's features, the labels."""
    return (*(f for f in EVENT_FIELDS if f not in LEFT_OUT), *(f.name for f in plan.features), *LABELS)


def to_csv(rows: Sequence[Mapping[str, Any]], plan: StatePlan) -> str:
    """The rows as CSV text (empty cells for missing, true/false booleans, whole numbers without ``.0``)."""
    header = columns(plan)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow([_cell(r.get(k)) for k in header])
    return buf.getvalue()


def write_stream_csv(out: Path, root: Path, params: StreamParams) -> Path:
    """Generate the stream of ``params``, compute its features with ``root``'s STREAM_FLOW, write the CSV."""
    plan = behaviour_plan(root / STREAM_FLOW, root)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_csv(stream_rows(params, plan), plan), encoding="utf-8")
    return out


def holdout_auc(root: Path, models: Sequence[str] = ("card_fraud/1", "card_fraud/2"), params: StreamParams = HOLDOUT) -> dict[str, float]:
    """The ROC AUC of each model (``name/version`` under ``root/model_artifacts``) on one held-out
    stream, its features computed as card_payment version 3 serves them (STREAM_FLOW) and the
    derived features as the flow derives them (CARD_FRAUD_STREAM_DERIVED): what each model would
    score in production on the same payments. AUC by engine.training.metrics.auc (Mann-Whitney).
    """
    plan = behaviour_plan(root / STREAM_FLOW, root)
    rows = stream_rows(params, plan)
    add_derived(rows, CARD_FRAUD_STREAM_DERIVED)
    y = np.array([int(r["is_fraud"]) for r in rows], dtype=np.int8)
    out: dict[str, float] = {}
    for name in models:
        model = load_model(root / "model_artifacts" / name)
        x = np.vstack([model.encode(r) for r in rows])
        out[name] = auc(y, model.score_batch(x))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write a seeded stream with its served features as a training CSV."""
    ap = argparse.ArgumentParser(prog="python -m engine.training.stream_features", description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--customers", type=int, default=StreamParams.customers)
    ap.add_argument("--days", type=int, default=StreamParams.days)
    ap.add_argument("--root", type=Path, default=Path.cwd(), help="repository root (default: .)")
    ap.add_argument("--out", type=Path, default=Path("data/card_payment_stream.csv"))
    ap.add_argument("--compare", action="store_true",
                    help="write nothing: print the AUC of card_fraud/1 and /2 on the held-out stream (seed 8)")
    args = ap.parse_args(argv)
    try:
        if args.compare:
            for name, value in holdout_auc(args.root).items():
                print(f"{name}: AUC {value:.4f} on the held-out stream (seed {HOLDOUT.seed}, {HOLDOUT.customers} customers)")
            return 0
        path = write_stream_csv(args.out, args.root, StreamParams(seed=args.seed, customers=args.customers, days=args.days))
    except (ValueError, DataError) as exc:  # bad parameters, a flow that cannot give the features
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
