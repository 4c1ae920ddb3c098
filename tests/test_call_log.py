"""``DJANGO_CLAUDE_CALL_LOG``: the call lines appended to a file, one write each."""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import call_command

import django_claude
from django_claude.checks import check_call_log
from django_claude.models import CallRecord
from django_claude.recording import calllog
from django_claude.recording.writer import flush_records
from tests.conftest import CallLines


@pytest.fixture
def log_path(tmp_path: Path, settings) -> Iterator[Path]:
    path = tmp_path / "calls.jsonl"
    settings.DJANGO_CLAUDE_CALL_LOG = str(path)
    yield path
    for log_file in list(calllog._files.values()):
        log_file.close()
    calllog._files.clear()


@pytest.fixture
def look_at_once(monkeypatch) -> None:
    """Look for a rotated (or mended) file on every line, not once a second."""
    monkeypatch.setattr(calllog, "LOOK_EVERY", 0.0)


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_call_appends_its_line_and_ingest_rebuilds_the_records(fake_anthropic, log_path):
    results = [django_claude.call(f"Mail me at a{n}@example.com", feature="f") for n in range(3)]
    assert [r.outcome for r in results] == ["ok"] * 3
    lines = _lines(log_path)
    assert [line["request_id"] for line in lines] == [str(r.request_id) for r in results]
    assert all(line["event"] == "claude.call" and line["feature"] == "f" for line in lines)
    assert "example.com" not in log_path.read_text()  # redacted, as on the logger
    flush_records()
    CallRecord.objects.all().delete()
    call_command("claude_ingest_log", str(log_path), verbosity=0)
    assert set(CallRecord.objects.values_list("id", flat=True)) == {r.request_id for r in results}


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_logger_gets_the_line_only_when_the_site_gives_it_a_handler(
    fake_anthropic, log_path, capsys
):
    logger = logging.getLogger("django_claude.calls")
    django_claude.call("hello", feature="quiet")
    assert capsys.readouterr().err == ""  # not on stderr too
    handler = CallLines()
    logger.addHandler(handler)
    try:
        result = django_claude.call("hello", feature="both")
    finally:
        logger.removeHandler(handler)
    assert [line["request_id"] for line in handler.lines] == [str(result.request_id)]
    assert [line["feature"] for line in _lines(log_path)] == ["quiet", "both"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_rotated_file_is_followed_to_the_new_one(fake_anthropic, log_path, look_at_once):
    first = django_claude.call("one", feature="rot")
    log_path.rename(log_path.with_suffix(".1"))
    second = django_claude.call("two", feature="rot")
    assert [x["request_id"] for x in _lines(log_path.with_suffix(".1"))] == [str(first.request_id)]
    assert [x["request_id"] for x in _lines(log_path)] == [str(second.request_id)]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_file_that_cannot_be_written_loses_no_line(
    fake_anthropic, tmp_path, settings, look_at_once, capsys, caplog
):
    missing = tmp_path / "not-yet" / "calls.jsonl"
    settings.DJANGO_CLAUDE_CALL_LOG = str(missing)
    try:
        with caplog.at_level(logging.ERROR, logger="django_claude.recording.calllog"):
            lost = [django_claude.call("hello", feature="lost") for _ in range(2)]
        assert [r.outcome for r in lost] == ["ok", "ok"]  # the call never fails for its log
        on_stderr = [json.loads(x) for x in capsys.readouterr().err.splitlines()]
        assert [x["request_id"] for x in on_stderr] == [str(r.request_id) for r in lost]
        errors = [r for r in caplog.records if r.name == "django_claude.recording.calllog"]
        assert len(errors) == 1 and "cannot be written" in errors[0].getMessage()  # once
        missing.parent.mkdir()
        back = django_claude.call("hello", feature="back")
        assert [x["request_id"] for x in _lines(missing)] == [str(back.request_id)]
        assert capsys.readouterr().err == ""
    finally:
        for log_file in list(calllog._files.values()):
            log_file.close()
        calllog._files.clear()


def test_lines_from_many_threads_are_never_interleaved(tmp_path):
    path = tmp_path / "calls.jsonl"
    log_file = calllog.CallLogFile(str(path))

    def write(thread: int) -> None:
        for n in range(200):
            # Up to 200 KB: far past a pipe's atomic size and logging's buffer.
            log_file.append(json.dumps({"t": thread, "n": n, "pad": "x" * (n * 1000)}))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    log_file.close()
    lines = _lines(path)
    assert len(lines) == 1200
    assert {(x["t"], x["n"]) for x in lines} == {(t, n) for t in range(6) for n in range(200)}


def _append_from_a_process(path: str, who: int) -> None:
    log_file = calllog.log_file(path)
    for n in range(150):
        log_file.append(json.dumps({"p": who, "n": n, "pad": "y" * (n * 700)}))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="processes that share a descriptor")
def test_processes_that_share_the_file_never_interleave_lines(tmp_path):
    path = str(tmp_path / "calls.jsonl")
    calllog.log_file(path).append('{"p": -1}')  # opened before the fork: the same descriptor
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_append_from_a_process, args=(path, p)) for p in range(3)]
    for child in children:
        child.start()
    _append_from_a_process(path, 9)
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    calllog._files.pop(path).close()
    lines = _lines(Path(path))
    assert len(lines) == 1 + 4 * 150
    assert {x["p"] for x in lines} == {-1, 0, 1, 2, 9}


def test_a_line_that_is_not_valid_utf8_text_is_written_as_valid_json(tmp_path):
    path = tmp_path / "calls.jsonl"
    log_file = calllog.CallLogFile(str(path))
    assert log_file.append(json.dumps({"feature": "a\ud800b"}, ensure_ascii=False))
    log_file.close()
    assert _lines(path) == [{"feature": "a\ud800b"}]


def test_the_check_names_a_call_log_that_cannot_work(tmp_path):
    assert check_call_log(None) == []
    assert check_call_log(str(tmp_path / "calls.jsonl")) == []
    assert check_call_log(tmp_path / "calls.jsonl") == []  # a Path is a path
    [not_a_path] = check_call_log(True)
    assert not_a_path.id == "django_claude.E017"
    [directory] = check_call_log(str(tmp_path))
    assert directory.id == "django_claude.E017" and "directory" in directory.msg
    [missing] = check_call_log(str(tmp_path / "nowhere" / "calls.jsonl"))
    assert missing.id == "django_claude.W008" and "does not exist" in missing.msg


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_setting_that_is_no_path_leaves_the_lines_on_the_logger(
    fake_anthropic, call_lines, settings
):
    settings.DJANGO_CLAUDE_CALL_LOG = 42
    result = django_claude.call("hello", feature="odd")
    assert result.outcome == "ok"
    assert [x["request_id"] for x in call_lines.lines] == [str(result.request_id)]
