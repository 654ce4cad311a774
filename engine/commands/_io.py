"""Helpers the commands share: reading a JSON input document, printing JSON, reporting errors.

Everything a command prints goes through ``print_json``, ``write_out`` or ``report``, which mask
card numbers (``engine.runtime.privacy``) on the way out: a PAN in an input, a request id or a log record
is never echoed to a terminal, a pipe or a CI log.
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from engine.runtime.privacy import scrub_text, scrub_value

if TYPE_CHECKING:
    from engine.runtime.service import Decider

__all__ = ["ROOT_HELP", "UsageError", "as_doubles", "load_decider_or_report", "note", "policy_root", "print_json", "read_input", "report", "write_out"]


ROOT_HELP = (
    "directory holding policies/, rules/, model_artifacts/ (default: VERDICT_ROOT, else the current "
    "directory if it holds policies/, else the bundled examples; the root used is printed on stderr)"
)


class UsageError(ValueError):
    """The command line or its input is unusable; the message says why (exit code 2)."""


def read_input(source: str, stdin: TextIO | None = None) -> dict[str, Any]:
    """The JSON object in file ``source`` (``-`` for stdin), its numbers exactly as written: whole
    numbers as ``int``, others as ``Decimal`` (so that validation can refuse a number no double
    holds instead of deciding on another one; ``as_doubles`` gives what a request carries)."""
    try:
        text = (stdin or sys.stdin).read() if source == "-" else Path(source).read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read input {source}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"input {source} is not UTF-8 text") from None
    try:
        data = json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        where = "stdin" if source == "-" else source
        raise UsageError(f"input {where} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise UsageError(f"input must be a JSON object of field values, got {type(data).__name__}")
    return data


def as_doubles(value: Any) -> Any:
    """`value` with every ``Decimal`` as the nearest float, as a google.protobuf.Struct carries it."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {k: as_doubles(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_doubles(v) for v in value]
    return value


def print_json(data: Any, stream: TextIO | None = None) -> None:
    """Write ``data`` as one indented JSON document (card numbers masked)."""
    out = stream or sys.stdout
    out.write(json.dumps(scrub_value(data), indent=2, ensure_ascii=False) + "\n")
    out.flush()


def write_out(text: str, stream: TextIO | None = None) -> None:
    """Write command output ``text`` (card numbers masked) to stdout, without flushing."""
    (stream or sys.stdout).write(scrub_text(text))


def report(message: str) -> None:
    """Tell the user what went wrong, on stderr (card numbers masked)."""
    sys.stderr.write(scrub_text(f"verdict: {message}\n"))
    sys.stderr.flush()


def note(message: str) -> None:
    """Tell the user something about the run (not an error), on stderr, so stdout stays parseable."""
    sys.stderr.write(f"verdict: {message}\n")
    sys.stderr.flush()


def policy_root(flag: Path | None) -> Path:
    """The policy root a command reads (``--root``, ``VERDICT_ROOT``, the current directory when it
    holds ``policies/``, else the bundled examples), absolute; says which on stderr.

    Raises ``engine.settings.SettingsError`` when ``VERDICT_ROOT`` or the flag is unusable.
    """
    from engine.settings import Settings, root_origin

    root = Settings.load(root=flag).root.resolve()
    note(f"policy root {root} ({root_origin(flag)})")
    return root


def load_decider_or_report(root: Path) -> Decider | None:
    """The policies at ``root`` loaded as a server loads them (flow by flow), or None once the
    reason is reported on stderr (the command then exits 1)."""
    from engine.errors import PolicyError
    from engine.runtime.service import load_decider

    try:
        return load_decider(root)
    except PolicyError as exc:
        report(f"cannot load policies from {root}:\n{exc}")
        return None
