"""Helpers the commands share: reading a JSON input document, printing JSON, reporting errors."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

__all__ = ["UsageError", "as_doubles", "print_json", "read_input", "report"]


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
    """Write ``data`` as one indented JSON document."""
    out = stream or sys.stdout
    out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    out.flush()


def report(message: str) -> None:
    """Tell the user what went wrong, on stderr."""
    sys.stderr.write(f"verdict: {message}\n")
    sys.stderr.flush()
