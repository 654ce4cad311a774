"""Structured logging with structlog: JSON lines (the server's default) or a console renderer.

``configure`` is called once by each command at start-up; library code only calls
``structlog.get_logger(name)``. Logs go to stderr so that stdout stays for command output.

Every line a server writes through Python is one JSON object (with ``json``): structlog's own
events, and also the records of the standard library's ``logging`` (grpc, onnxruntime's Python
side, asyncio, pydantic, ...) and Python warnings (``warnings.warn``, routed through
``logging.captureWarnings`` to the ``py.warnings`` logger). Those are rendered by
``structlog.stdlib.ProcessorFormatter`` with the same processors, so they carry ``level``,
``timestamp``, ``logger`` and are scrubbed of card numbers like every other event. Text written
straight to the process's file descriptor 2 by C libraries (gRPC core's own log) does not pass
through Python and is left as it is.
"""

from __future__ import annotations

import logging
import sys
from typing import Literal, TextIO, cast

import structlog
from structlog.tracebacks import ExceptionDictTransformer

from engine.runtime.privacy import scrub_event

__all__ = ["configure"]

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure(
    level: str = "info",
    fmt: Literal["json", "console"] = "json",
    stream: TextIO | None = None,
) -> None:
    """Route structlog, stdlib logging and warnings to ``stream`` (stderr) at ``level``, as JSON lines or for a console."""
    out = stream or cast(TextIO, _Stderr())  # duck-typed: write, flush, isatty
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    tail: list[structlog.typing.Processor] = []
    if fmt == "json":  # tracebacks as data, without local variables (they hold request input)
        tail.append(structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)))
    else:
        tail.append(structlog.processors.format_exc_info)
    tail.append(scrub_event)  # last before rendering: no card number reaches a log line
    structlog.configure(
        processors=[*shared, *tail, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        # one write() per line: lines from several worker processes sharing stderr never interleave
        logger_factory=structlog.WriteLoggerFactory(file=out),
        cache_logger_on_first_use=False,
    )
    _route_stdlib(level, out, shared, tail, renderer)


class _Stderr:
    """Whatever ``sys.stderr`` is at each write (a test's capture, a redirected stream), never the
    stream that was current at ``configure``: a thread logging later must not write to a closed file."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def _route_stdlib(
    level: str,
    out: TextIO,
    shared: list[structlog.typing.Processor],
    tail: list[structlog.typing.Processor],
    renderer: structlog.typing.Processor,
) -> None:
    """Send stdlib ``logging`` records and Python warnings through the same processors as structlog's events."""
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name, structlog.stdlib.ExtraAdder()],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail, renderer],
    )
    handler = logging.StreamHandler(out)  # StreamHandler writes each line with one write()
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_verdict", False):
            root.removeHandler(old)
    handler._verdict = True  # type: ignore[attr-defined]  # ours, replaced by the next configure()
    root.addHandler(handler)
    root.setLevel(_LEVELS[level])
    logging.captureWarnings(False)  # undo an earlier capture whose hook was since replaced (e.g. by warnings.catch_warnings)
    logging.captureWarnings(True)
