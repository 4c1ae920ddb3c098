"""The call lines' default handler and ``JsonFormatter``."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

import django_claude
from django_claude import logs
from django_claude.recording.logfiles import read_call_records


def test_json_formatter_does_not_double_encode_a_call_line(claude, call_lines, tmp_path):
    django_claude.call("Mail me at someone@example.com", feature="chat")
    [record] = call_lines.records
    text = logs.JsonFormatter().format(record)
    line = json.loads(text)
    assert "\n" not in text
    assert line == {"level": "INFO", "logger": "django_claude.calls", **record.claude}
    assert line["feature"] == "chat" and "someone@example.com" not in text  # redacted
    # claude_ingest_log reads it back as it reads the plain line
    path = tmp_path / "calls.log"
    path.write_text(text + "\n")
    [read] = read_call_records([str(path)])
    assert str(read.id) == line["request_id"] and read.feature == "chat"


def test_json_formatter_for_other_records():
    formatter = logs.JsonFormatter()
    record = logging.LogRecord(
        "django_claude.smell", logging.WARNING, __file__, 1, "hi %s", ("you",), None
    )
    line = json.loads(formatter.format(record))
    assert line["message"] == "hi you" and line["level"] == "WARNING"
    assert line["logger"] == "django_claude.smell" and line["time"].endswith("+00:00")
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert "ValueError: boom" in json.loads(formatter.format(record))["exc_info"]


@pytest.fixture
def bare_logging(monkeypatch, settings):
    """No handler on the root logger or ours (a project without LOGGING); the
    root's are emptied again by ``no_root_handlers()`` in the test's body, as
    pytest adds its own for each phase."""
    calls = logging.getLogger(logs.CALLS_LOGGER)
    monkeypatch.setattr(calls, "handlers", [])
    monkeypatch.setattr(calls, "level", logging.NOTSET)
    monkeypatch.setattr(logging.getLogger("django_claude"), "handlers", [])
    settings.LOGGING = {}
    return calls


@pytest.fixture
def no_root_handlers(monkeypatch):
    return lambda: monkeypatch.setattr(logging.getLogger(), "handlers", [])


def test_show_call_lines_attaches_once_to_a_bare_project(
    bare_logging, no_root_handlers, monkeypatch
):
    no_root_handlers()
    stream = io.StringIO()
    assert logs.show_call_lines()
    assert logs.show_call_lines()  # idempotent
    [handler] = bare_logging.handlers
    monkeypatch.setattr(handler, "stream", stream)
    bare_logging.info('{"event": "claude.call"}')
    assert stream.getvalue() == '{"event": "claude.call"}\n'
    assert bare_logging.getEffectiveLevel() == logging.INFO


@pytest.mark.parametrize(
    "logging_setting",
    [
        {"version": 1, "loggers": {"django_claude.calls": {"handlers": []}}},
        {"version": 1, "loggers": {"django_claude": {"level": "INFO"}}},
    ],
)
def test_a_site_that_names_our_loggers_keeps_control(
    bare_logging, no_root_handlers, settings, logging_setting
):
    no_root_handlers()
    settings.LOGGING = logging_setting
    assert not logs.show_call_lines()
    assert bare_logging.handlers == []


def test_logging_config_none_keeps_control(bare_logging, no_root_handlers, settings):
    no_root_handlers()
    settings.LOGGING_CONFIG = None
    assert not logs.show_call_lines()


def test_a_root_handler_keeps_control_and_takes_over_later(
    bare_logging, no_root_handlers, monkeypatch
):
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.NullHandler()])
    assert not logs.show_call_lines()  # the site's root handler gets the lines
    no_root_handlers()
    stream = io.StringIO()
    assert logs.show_call_lines()
    [handler] = bare_logging.handlers
    monkeypatch.setattr(handler, "stream", stream)
    root_handler = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logging.getLogger(), "handlers", [root_handler])
    bare_logging.info("a line")
    assert stream.getvalue() == ""  # not twice
    assert root_handler.stream.getvalue() == "a line\n"
