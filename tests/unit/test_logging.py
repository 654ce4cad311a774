"""structlog is configured as JSON lines (the server's default) or for a console, at a level."""

import io
import json

import pytest
import structlog

from engine.logging import configure


@pytest.fixture(autouse=True)
def _reset_structlog():
    yield
    structlog.reset_defaults()


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
