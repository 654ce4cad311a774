"""structlog is configured as JSON lines (the server's default) or for a console, at a level."""

import io
import json

import pytest
import structlog

from engine.logging import configure


@pytest.fixture(autouse=True)
def _reset_structlog():
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers  # configure() also routes the stdlib's logging: undo it
    root.setLevel(level)
    logging.captureWarnings(False)


def test_json_lines_with_level_and_timestamp():
    """In json format every event is one JSON object with event, level and timestamp."""
    out = io.StringIO()
    configure("info", "json", stream=out)
    structlog.get_logger("t").info("serving", port=1)
    record = json.loads(out.getvalue())
    assert record["event"] == "serving" and record["port"] == 1 and record["level"] == "info"
    assert "timestamp" in record


def test_level_filters_lower_events():
    """Events below the configured level are dropped."""
    out = io.StringIO()
    configure("warning", "json", stream=out)
    log = structlog.get_logger("t")
    log.info("hidden")
    log.warning("shown")
    assert [json.loads(line)["event"] for line in out.getvalue().splitlines()] == ["shown"]


def test_console_format_is_not_json():
    """The console format renders for humans."""
    out = io.StringIO()
    configure("info", "console", stream=out)
    structlog.get_logger("t").info("serving", port=1)
    assert "serving" in out.getvalue() and not out.getvalue().startswith("{")


def test_stdlib_loggers_and_warnings_are_json_lines():
    """A library's stdlib logger record and a Python warning come out as JSON objects with level, logger and timestamp."""
    import logging
    import warnings

    out = io.StringIO()
    configure("info", "json", stream=out)
    logging.getLogger("grpc._server").error("Exception calling application: %s", "boom")
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("a library warning", UserWarning, stacklevel=1)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [(r["logger"], r["level"]) for r in records] == [("grpc._server", "error"), ("py.warnings", "warning")]
    assert records[0]["event"] == "Exception calling application: boom"
    assert "a library warning" in records[1]["event"] and all("timestamp" in r for r in records)


def test_stdlib_records_are_scrubbed_and_configure_replaces_its_handler():
    """Card numbers in a library's log message are masked, and configuring twice leaves one handler (no duplicate lines)."""
    import logging

    out = io.StringIO()
    configure("info", "json", stream=out)
    configure("info", "json", stream=out)
    logging.getLogger("somelib").warning("card 4111111111111111 refused")
    (line,) = out.getvalue().splitlines()
    assert "4111111111111111" not in line and json.loads(line)["logger"] == "somelib"
