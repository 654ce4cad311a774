"""``verdict events import FILE``: record a file of events (CSV or JSON Lines) in the state store;
``verdict events send TYPE --fields JSON``: one event to a running server (RecordEvent).

Import:

Each row is one event: a ``type`` column naming its declared type (events/<type>.yaml), an optional
``event_time`` (Unix seconds; empty: now) and the type's fields. Rows are recorded in event-time
order (the file is read whole first), each validated like a RecordEvent call; a refused row is
reported with its line and bad fields, and the rest are still recorded. The store is the one a
server uses (``--state``, ``VERDICT_STATE``; an SQLite file may be shared with a running server).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from engine.commands._channel import add_connection_flags
from engine.commands._io import ROOT_HELP, load_decider_or_report, policy_root, report, write_out

__all__ = ["read_events", "register", "run", "run_send"]

MAX_EVENTS_FILE_BYTES = 1 << 30  # read whole and sorted by time: a bound on the memory it takes


def register(subparsers: Any) -> None:
    """Add ``events import FILE [--root DIR] [--state FILE]``."""
    p: argparse.ArgumentParser = subparsers.add_parser(
        "events", help="record events (logins, password resets, ...) for stateful features",
        description="Record events of declared types (events/<type>.yaml) in the state store, as RecordEvent does.",
    )
    sub = p.add_subparsers(dest="events_command", required=True)
    imp = sub.add_parser("import", help="record every event of a CSV or JSON Lines file",
                         description=__doc__.split("Import:\n", 1)[1] if __doc__ else None)
    imp.add_argument("file", type=Path, help="CSV (header row) or .jsonl/.ndjson file: type, event_time and the fields")
    imp.add_argument("--root", type=Path, help=ROOT_HELP)
    imp.add_argument("--state", metavar="FILE", help="SQLite state file (default: VERDICT_STATE, else state/state.db)")
    imp.set_defaults(run=run)
    send = sub.add_parser("send", help="send one event to a running server (RecordEvent)",
                          description="Call DecisionService.RecordEvent of a running server with one event.")
    send.add_argument("type", help="the event type, e.g. password_reset")
    send.add_argument("--fields", required=True, help="the fields as JSON, a JSON file, or - for stdin")
    send.add_argument("--time", type=float, default=0.0, help="event time in Unix seconds (default: the server's clock)")
    send.add_argument("--target", default="127.0.0.1:50051", help="server address (default 127.0.0.1:50051)")
    send.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer (default 10)")
    add_connection_flags(send)
    send.set_defaults(run=run_send)


def run_send(args: argparse.Namespace) -> int:
    """Print what the server recorded; 2 when it refused the event (every bad field named), 1 when the call failed."""
    from engine.commands._channel import CallFailed, call_policy_service
    from engine.commands._io import UsageError, read_input
    from engine.grpc.gen.verdict.v1 import decision_pb2 as pb

    try:
        fields = json.loads(args.fields) if args.fields.lstrip().startswith("{") else read_input(args.fields)
        request = pb.RecordEventRequest(type=args.type, event_time=args.time)
        request.fields.update(fields)
    except (UsageError, ValueError, TypeError) as exc:
        report(f"--fields: {exc}")
        return 2
    try:
        reply = call_policy_service(args, "RecordEvent", request, service="DecisionService")
    except CallFailed as exc:
        return exc.exit_code
    write_out(f"{args.type}: recorded at {reply.event_time:.3f} in {reply.recorded} key histories\n")
    return 0


def read_events(path: Path, kinds: dict[str, dict[str, str]]) -> list[tuple[str, str, float, dict[str, Any]]]:
    """(where, type, event_time, fields) of every row, in file order; CSV cells typed by the type's
    field kinds ("number", "bool", text). Raises ValueError naming the file when it cannot be read."""
    if path.stat().st_size > MAX_EVENTS_FILE_BYTES:
        raise ValueError(f"{path}: larger than {MAX_EVENTS_FILE_BYTES} bytes; split it")
    if path.suffix in (".jsonl", ".ndjson"):
        out = []
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if line.strip():
                row = json.loads(line)
                if not isinstance(row, dict):
                    raise ValueError(f"{path}:{n}: expected a JSON object")
                out.append(_event(f"{path}:{n}", row))
        return out
    from engine.tabular import read_rows

    table = read_rows(path)
    rows = []
    for i, cells in enumerate(table.rows):
        row = {name: cell for name, cell in zip(table.header, cells, strict=True) if cell is not None}
        fields = kinds.get(str(row.get("type", "")), {})
        rows.append(_event(table.where(i), {k: _typed(v, fields.get(k)) for k, v in row.items()}))
    return rows


def _typed(cell: str, kind: str | None) -> Any:
    if kind == "number":
        try:
            return float(cell)
        except ValueError:
            return cell  # the validator names it
    if kind == "bool":
        return {"true": True, "false": False, "1": True, "0": False}.get(cell.lower(), cell)
    return cell


def _event(where: str, row: dict[str, Any]) -> tuple[str, str, float, dict[str, Any]]:
    kind = str(row.pop("type", ""))
    at = row.pop("event_time", 0.0)
    try:
        when = float(at) if at not in (None, "") else 0.0
    except (TypeError, ValueError):
        when = -1.0  # refused by the validation of the event time, naming it
    return where, kind, when, row


def run(args: argparse.Namespace) -> int:
    """0 when every event was recorded, 1 when a row was refused or the file could not be read, 2 on bad usage."""
    from engine.errors import InvalidInput
    from engine.settings import Settings
    from engine.state.sqlite import open_store

    root = policy_root(args.root)
    setting = Settings.load(state=args.state).state
    if setting.strip().lower() == "memory":
        report("events import needs a state file (--state FILE): a 'memory' store ends with this command")
        return 2
    decider = load_decider_or_report(root)
    if decider is None:
        return 1
    decider = type(decider)(decider.policies, state=open_store(setting))
    kinds = {name: dict(e.kinds) for name, e in decider.policies.events.items()}
    try:
        rows = read_events(args.file, kinds)
    except (OSError, ValueError) as exc:
        report(f"cannot read {args.file}: {exc}")
        return 1
    rows.sort(key=lambda r: r[2])  # event-time order (stable: the file's order among equal times)
    recorded = placed = refused = 0
    for where, kind, at, fields in rows:
        try:
            _, n = decider.record_event(kind, fields, event_time=at)
        except InvalidInput as exc:
            refused += 1
            report(f"{where}: refused: {'; '.join(str(e) for e in exc.errors)}")
            continue
        recorded += 1
        placed += n
    decider.close()
    write_out(f"events: {recorded} recorded ({placed} key histories updated), {refused} refused, into {setting}\n")
    return 1 if refused else 0
