"""Hostile log files: every good line becomes a record once, bad lines and
unreadable files are counted and named, and none of them costs a good line."""

from __future__ import annotations

import builtins
import datetime
import gzip
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DataError, OperationalError, connection

from django_claude.models import CallRecord
from django_claude.recording import logfiles

DAY = "2026-11-20"
INT_MAX = 2**31 - 1


def good(n: int, **changes: Any) -> dict[str, Any]:
    """A complete call line, as ``log_line`` writes it, with request id number ``n``."""
    line: dict[str, Any] = {
        "event": "claude.call",
        "request_id": str(uuid.UUID(int=n)),
        "created_at": f"{DAY}T{n % 24:02d}:{n % 60:02d}:00+00:00",
        "feature": "support",
        "user_id": None,
        "user_ref": "u1",
        "model_requested": "claude-sonnet-4-6",
        "model": "claude-sonnet-4-6",
        "outcome": "ok",
        "attempts": 1,
        "attempt_log": [{"model": "claude-sonnet-4-6", "status": 200, "latency_ms": 100}],
        "fallback_used": False,
        "latency_ms": 100,
        "input_tokens": 10,
        "output_tokens": 5,
        "cache_creation_input_tokens": 0,
        "cache_creation_1h_input_tokens": 0,
        "cache_read_input_tokens": 0,
        "stop_reason": "end_turn",
        "cost_usd": "0.0001050000",
        "priced": True,
        "prompt_prefix": "hello",
        "error_type": "",
        "error_status": None,
        "upstream_request_id": "req_1",
        "smell_verdict": "not_sampled",
        "tags": {"team": "a"},
        "idempotency_key": "",
    }
    line.update(changes)
    return line


def without(line: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in line.items() if k != name}


def dumps(line: Any) -> str:
    return json.dumps(line)  # NaN and Infinity written as JSON NaN, NUL as \u0000


class Corpus:
    """Log files of good lines with hostile ones between them.

    ``good_ids``: lines that must each become exactly one record. ``bad_ids``:
    lines that must never become one. ``either_ids``: hostile values that
    ``record_from_line`` may clamp into a storable record or refuse; either is
    fine, as long as what is stored fits its column.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.good_ids: list[uuid.UUID] = []
        self.bad_ids: list[uuid.UUID] = []
        self.either_ids: list[uuid.UUID] = []
        self.bad_without_id = 0  # bad lines with no usable request id
        self.other_lines = 0
        self.lines: list[str] = []
        self.n = 0

    def next_id(self) -> int:
        self.n += 1
        return self.n

    def add_good(self, prefix: str = "") -> None:
        n = self.next_id()
        self.good_ids.append(uuid.UUID(int=n))
        self.lines.append(prefix + dumps(good(n)))

    def add_bad(self, build: Any) -> None:
        n = self.next_id()
        self.bad_ids.append(uuid.UUID(int=n))
        self.lines.append(build(n))
        self.add_good()

    def add_raw_bad(self, text: str) -> None:
        self.bad_without_id += 1
        self.lines.append(text)
        self.add_good()

    def add_either(self, **changes: Any) -> None:
        n = self.next_id()
        self.either_ids.append(uuid.UUID(int=n))
        self.lines.append(dumps(good(n, **changes)))
        self.add_good()

    def add_other(self, text: str) -> None:
        self.other_lines += 1
        self.lines.append(text)


def build_corpus(root: Path) -> tuple[Corpus, list[str]]:
    c = Corpus(root)
    c.add_good()
    c.add_good(prefix="2026-11-20 10:00:00,123 INFO django_claude.calls ")
    c.add_other("2026-11-20 10:00:01 INFO django.request GET /health 200")
    c.add_other(dumps({"event": "claude.budget", "feature": "support", "threshold": 80}))
    c.add_other("")
    # -- never a record
    c.add_bad(lambda n: dumps(good(n))[:70])  # truncated JSON
    c.add_bad(lambda n: dumps(good(n, created_at=None)))
    c.add_bad(lambda n: dumps(good(n, created_at="2026-13-45T99:00:00")))
    c.add_bad(lambda n: dumps(good(n, created_at="yesterday at noon")))
    c.add_bad(lambda n: dumps(without(good(n), "created_at")))
    c.add_bad(lambda n: dumps(good(n, created_at="9999-12-31T23:59:59-12:00")))  # past year 9999
    c.add_bad(lambda n: dumps(good(n, prompt_prefix="x" * (logfiles.MAX_LINE_CHARS + 10))))
    c.add_bad(lambda n: dumps(good(n)).replace("support", "sup\x00port"))  # a raw NUL: not JSON
    c.add_raw_bad(dumps(good(0, request_id="not-a-uuid")))
    c.add_raw_bad(dumps(without(good(0), "request_id")))
    c.add_raw_bad(dumps(good(0, request_id=None)))
    c.add_raw_bad(dumps(["claude.call", good(0)]))  # not an object
    c.add_raw_bad(dumps("claude.call"))
    c.add_raw_bad('{"event": "claude.call", "request_id": ')
    # -- stored if record_from_line makes them fit, else counted: never a crash
    c.add_either(tags={"score": float("nan")})
    c.add_either(tags={"score": float("inf"), "low": float("-inf")})
    c.add_either(input_tokens="lots")
    c.add_either(output_tokens=-5)
    c.add_either(input_tokens=2**31)
    c.add_either(cache_read_input_tokens=2**40)
    c.add_either(latency_ms=2**70)
    c.add_either(attempts=40_000)
    c.add_either(error_status="teapot")
    c.add_either(cost_usd="NaN")
    c.add_either(cost_usd="1e30")
    c.add_either(feature="f" * 500)
    c.add_either(user_ref="u" * 500)
    c.add_either(feature="sup\x00port")
    c.add_either(tags={"team": "a\x00b"})
    c.add_either(tags={"te\x00am": "a"})
    c.add_either(user_ref="\ud800")  # a lone surrogate, as JSON "\ud800"
    c.add_either(tags="not a dict")
    c.add_either(attempt_log={"not": "a list"})
    c.add_either(fallback_used="maybe")
    c.add_either(created_at=1_763_640_000)
    c.add_either(user_id="abc")
    c.add_either(user_id=2**40)
    plain = root / "calls.log"
    plain.write_text("\n".join(c.lines) + "\n", encoding="utf-8")

    zipped = root / "calls.log.1.gz"
    lines = []
    for _ in range(5):
        n = c.next_id()
        c.good_ids.append(uuid.UUID(int=n))
        lines.append(dumps(good(n)))
    with gzip.open(zipped, "wt", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")

    # A .gz cut off mid-stream: the lines before the cut are kept.
    truncated = root / "calls.log.2.gz"
    cut_ids = []
    lines = []
    for i in range(400):
        n = c.next_id()
        cut_ids.append(uuid.UUID(int=n))
        lines.append(dumps(good(n, prompt_prefix=f"line {i} " + uuid.uuid4().hex)))
    data = gzip.compress(("\n".join(lines) + "\n").encode())
    truncated.write_bytes(data[: len(data) * 2 // 3])
    c.truncated_ids = cut_ids  # type: ignore[attr-defined]

    folder = root / "a-directory"
    folder.mkdir()
    missing = root / "missing.log"
    return c, [str(plain), str(zipped), str(truncated), str(folder), str(missing)]


def assert_fits(record: CallRecord) -> None:
    """What is stored is what every supported database can hold."""
    for name in ("feature", "user_ref", "model", "model_requested", "outcome", "stop_reason"):
        value = getattr(record, name)
        max_length = getattr(CallRecord._meta.get_field(name), "max_length", 0)
        assert "\x00" not in value and len(value) <= max_length, name
    for name in (
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
        "latency_ms",
    ):
        assert 0 <= getattr(record, name) <= INT_MAX, name
    assert 0 <= record.attempts <= 32767
    assert isinstance(record.tags, dict)
    json.dumps(record.tags, allow_nan=False)
    assert "\\u0000" not in json.dumps(record.tags)


@pytest.fixture
def corpus(tmp_path: Path) -> tuple[Corpus, list[str]]:
    return build_corpus(tmp_path)


def ingest_command(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("claude_ingest_log", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_every_good_line_becomes_one_record_and_bad_ones_are_counted(db, corpus):
    c, paths = corpus
    out, err = ingest_command(*paths, "--batch-size", "7")
    ids = set(CallRecord.objects.values_list("id", flat=True))
    assert set(c.good_ids) <= ids
    assert not ids & set(c.bad_ids)
    kept = [i for i in c.truncated_ids if i in ids]
    assert kept, "the lines before the cut are kept"
    assert kept == c.truncated_ids[: len(kept)]
    assert ids <= set(c.good_ids) | set(c.either_ids) | set(kept)
    for record in CallRecord.objects.filter(id__in=c.either_ids):
        assert_fits(record)
    stored_either = len(ids & set(c.either_ids))
    corrupt = len(c.bad_ids) + c.bad_without_id + len(c.either_ids) - stored_either
    assert (
        f"{len(ids)} records created, 0 already present, {c.other_lines} other lines skipped, "
        f"{corrupt} corrupt lines"
    ) in out
    assert CallRecord.objects.count() == len(ids)
    # the files it could not read, one line each, and the first bad lines with file:line
    assert "a-directory: is a directory; skipped" in err
    assert "missing.log: no such file; skipped" in err
    assert "calls.log.2.gz: truncated compressed data after line" in err
    assert f"{paths[0]}:6: not valid JSON" in err  # the truncated line
    assert f"{paths[0]}:8: no created_at" in err
    assert f"... and {corrupt - 10} more" in err
    # idempotent: a second run creates nothing and counts the same
    out, _ = ingest_command(*paths)
    assert f"0 records created, {len(ids)} already present" in out
    assert f"{corrupt} corrupt lines" in out
    assert CallRecord.objects.count() == len(ids)


def test_good_values_are_stored_as_written(db, tmp_path):
    log = tmp_path / "calls.log"
    line = good(1, user_id=None, tags={"team": "a", "n": 2}, error_status=None)
    log.write_text(dumps(line) + "\n")
    ingest_command(str(log))
    record = CallRecord.objects.get()
    assert record.created_at == datetime.datetime(2026, 11, 20, 1, 1, tzinfo=datetime.UTC)
    assert record.cost_usd == Decimal("0.000105")
    assert (record.input_tokens, record.tags, record.attempt_log) == (
        10,
        {"team": "a", "n": 2},
        line["attempt_log"],
    )


def test_nothing_readable_is_a_command_error(db, tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    with pytest.raises(CommandError, match="no file could be read.*is a directory.*no such file"):
        ingest_command(str(folder), str(tmp_path / "nope.log"))


def test_an_empty_file_is_read(db, tmp_path):
    empty = tmp_path / "empty.log"
    empty.write_text("")
    out, _ = ingest_command(str(empty), str(tmp_path / "nope.log"))
    assert "0 records created" in out


def test_permission_denied_and_corrupt_gzip_are_skipped(db, tmp_path, monkeypatch):
    log = tmp_path / "calls.log"
    log.write_text(dumps(good(1)) + "\n")
    secret = tmp_path / "secret.log"
    secret.write_text(dumps(good(2)) + "\n")
    not_gzip = tmp_path / "fake.gz"
    not_gzip.write_bytes(b"\x1f\x8b" + b"\x00garbage" * 20)
    real_open = builtins.open

    def refusing_open(path: Any, *args: Any, **kwargs: Any) -> Any:
        if str(path) == str(secret):  # as a file of another user would, even for root
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(logfiles, "open", refusing_open, raising=False)
    out, err = ingest_command(str(log), str(secret), str(not_gzip))
    assert "1 records created" in out
    assert "secret.log: permission denied; skipped" in err
    assert "fake.gz: corrupt compressed data; skipped" in err


def test_a_compressed_file_is_read_whatever_its_name(db, tmp_path):
    rotated = tmp_path / "calls.log.1"
    rotated.write_bytes(gzip.compress((dumps(good(1)) + "\n").encode()))
    out, _ = ingest_command(str(rotated))
    assert "1 records created" in out


def test_duplicate_lines_make_one_record(db, tmp_path):
    log = tmp_path / "calls.log"
    log.write_text((dumps(good(1)) + "\n") * 3 + dumps(good(2)) + "\n")
    out, _ = ingest_command(str(log), "--batch-size", "2")
    assert "2 records created, 2 already present" in out


# -- a row the database refuses costs only itself ------------------------------------------


def _flatten(params: Any) -> Iterator[Any]:
    if isinstance(params, list | tuple):
        for item in params:
            yield from _flatten(item)
    else:
        yield params


def _refuse(marker: str, error: type[Exception] = DataError) -> Any:
    def wrapper(execute, sql, params, many, context):
        if (
            sql.lstrip().upper().startswith("INSERT")
            and "django_claude_callrecord" in sql
            and any(isinstance(p, str) and marker in p for p in _flatten(params))
        ):
            raise error(f"refused: {marker}")
        return execute(sql, params, many, context)

    return wrapper


def test_a_refused_row_is_counted_and_its_batch_inserted_row_by_row(db, tmp_path):
    log = tmp_path / "calls.log"
    lines = [good(n) for n in range(1, 11)]
    lines[3]["feature"] = "refuse-me"
    lines[8]["feature"] = "refuse-me"
    log.write_text("".join(dumps(line) + "\n" for line in lines))
    with connection.execute_wrapper(_refuse("refuse-me")):
        out, err = ingest_command(str(log), "--batch-size", "4")
    assert "8 records created, 0 already present, 0 other lines skipped, 2 corrupt lines" in out
    assert f"{log}:4: the database refused it" in err and f"{log}:9:" in err
    assert set(CallRecord.objects.values_list("id", flat=True)) == {
        uuid.UUID(int=n) for n in (1, 2, 3, 5, 6, 7, 8, 10)
    }


def test_a_database_that_fails_is_a_command_error_and_keeps_earlier_batches(db, tmp_path):
    log = tmp_path / "calls.log"
    lines = [good(n) for n in range(1, 7)]
    lines[4]["feature"] = "database-down"
    log.write_text("".join(dumps(line) + "\n" for line in lines))
    with (
        connection.execute_wrapper(_refuse("database-down", OperationalError)),
        pytest.raises(CommandError, match="the database failed.*run the command again"),
    ):
        ingest_command(str(log), "--batch-size", "2")
    assert CallRecord.objects.count() == 4


# -- check_record: the same answer on every database ---------------------------------------


def record(**changes: Any) -> CallRecord:
    values: dict[str, Any] = {
        "id": uuid.uuid4(),
        "created_at": datetime.datetime(2026, 11, 20, 9, tzinfo=datetime.UTC),
        "feature": "support",
        "model_requested": "claude-sonnet-4-6",
        "outcome": "ok",
        **changes,
    }
    return CallRecord(**values)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"feature": "f" * 101}, "feature: longer than 100"),
        ({"feature": "a\x00b"}, "feature: contains a NUL"),
        ({"feature": 12}, "feature: int, not text"),
        ({"user_ref": "\ud800"}, "user_ref: is not valid Unicode"),
        ({"input_tokens": -1}, "input_tokens: -1 is out of range"),
        ({"input_tokens": 2**31}, "input_tokens: 2147483648 is out of range"),
        ({"input_tokens": "lots"}, "input_tokens: "),
        ({"input_tokens": float("nan")}, "input_tokens: nan is not a number"),
        ({"input_tokens": True}, "input_tokens: true/false"),
        ({"attempts": 40_000}, "attempts: 40000 is out of range"),
        ({"tags": {"x": float("nan")}}, "tags: holds nan"),
        ({"tags": {"x": "a\x00"}}, "tags: a string contains a NUL"),
        ({"tags": ["a"]}, "tags: list, not dict"),
        ({"attempt_log": {}}, "attempt_log: dict, not list"),
        ({"cost_usd": Decimal("NaN")}, "cost_usd: "),
        ({"cost_usd": Decimal("1e8")}, "cost_usd: out of range"),
        ({"cost_usd": Decimal("99999999.99999999999")}, "cost_usd: out of range"),
        ({"created_at": None}, "created_at: missing"),
        ({"created_at": "soon"}, "created_at: "),
        (
            {"created_at": datetime.datetime(9999, 12, 31, 23, tzinfo=datetime.timezone.min)},
            "created_at: ",
        ),
        ({"user_id": 2**40}, "user: 1099511627776 is out of range"),
        ({"error_status": 70_000}, "error_status: 70000 is out of range"),
    ],
)
def test_check_record_refuses_what_a_database_would(changes, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        logfiles.check_record(record(**changes))


def test_check_record_normalises_what_it_keeps():
    checked = logfiles.check_record(
        record(
            input_tokens="12",
            cost_usd=Decimal("0.123456789012345"),
            created_at=datetime.datetime(2026, 11, 20, 9),
        )
    )
    assert checked.input_tokens == 12
    assert checked.cost_usd == Decimal("0.1234567890")
    assert checked.created_at == datetime.datetime(2026, 11, 20, 9, tzinfo=datetime.UTC)


# -- reading -------------------------------------------------------------------------------


def test_read_call_lines_counts_without_raising(tmp_path):
    log = tmp_path / "calls.log"
    log.write_text(
        dumps(good(1))
        + "\n"
        + dumps({"event": ["claude.call"]})  # not a call event: another line
        + "\n[1, 2]\n"  # no "claude." in it: another logger's
        + dumps([{"event": "claude.call"}])
        + "\n"
    )
    stats = logfiles.ReadStats()
    lines = list(logfiles.read_call_lines([str(log), str(tmp_path)], stats))
    assert [line["request_id"] for line in lines] == [str(uuid.UUID(int=1))]
    assert (stats.lines, stats.skipped, stats.corrupt, stats.files_read) == (4, 2, 1, 1)
    assert stats.corrupt_at == [logfiles.BadLine(str(log), 4, "a JSON list, not an object")]
    assert [u.reason for u in stats.unreadable] == ["is a directory"]


def test_reasons_are_printable_and_short(tmp_path):
    log = tmp_path / "calls.log"
    log.write_text(dumps(good(1, created_at="\x1b[2J" + "x" * 500)) + "\n")
    stats = logfiles.ReadStats()
    assert not list(logfiles.read_call_records([str(log)], stats))
    [bad] = stats.corrupt_at
    assert "\x1b" not in bad.reason and len(bad.reason) <= logfiles.REASON_CHARS


def test_ingest_refuses_a_batch_size_out_of_range(db):
    for size in (0, logfiles.MAX_BATCH_SIZE + 1):
        with pytest.raises(ValueError, match="batch size"):
            logfiles.ingest([], batch_size=size)


@pytest.mark.postgres
def test_postgresql_takes_every_checked_record(db, corpus):
    """What check_record lets through, PostgreSQL stores: no row falls back to one by one."""
    c, paths = corpus
    summary = logfiles.ingest(paths, batch_size=10_000)
    assert not [bad for bad in summary.corrupt_at if "database refused" in bad.reason]
    assert summary.created == CallRecord.objects.count()
