"""A site with ``USE_TZ = False``: its calls are recorded in its local time,
its lines say which time that is, and the admin, budgets and
``claude_ingest_log`` work with both."""

from __future__ import annotations

import asyncio
import datetime
from io import StringIO
from zoneinfo import ZoneInfo

import pytest
from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import connections
from django.test import override_settings
from django.utils import timezone

import django_claude
from django_claude.costs.budgets import check_budgets
from django_claude.models import CallRecord

ZONE = "America/New_York"


def _forget_time_zones() -> None:
    """What Django's ``setting_changed`` handler does, in the calling thread."""
    for connection in connections.all(initialized_only=True):
        connection.close()
        for name in ("timezone", "timezone_name"):
            connection.__dict__.pop(name, None)


async def _astream() -> None:
    async with django_claude.astream("hi", feature="f") as stream:
        async for _ in stream.text_stream:
            pass


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_site_without_time_zones(claude, call_lines, admin_client, settings, tmp_path):
    settings.DJANGO_CLAUDE_BUDGETS = {"f": "1.00"}
    with override_settings(USE_TZ=False, TIME_ZONE=ZONE):
        # Django resets a connection's time zone when USE_TZ changes in this
        # thread only: asgiref's thread, which an earlier test connected,
        # would store naive times as UTC on PostgreSQL. (A site does not
        # change USE_TZ while it runs.)
        asyncio.run(sync_to_async(_forget_time_zones)())
        before = timezone.now()  # naive: New York time
        assert django_claude.call("hi", feature="f").outcome == "ok"
        assert asyncio.run(django_claude.acall("hi", feature="f")).outcome == "ok"
        with django_claude.stream("hi", feature="f") as stream:
            "".join(stream.text_stream)
        asyncio.run(_astream())
        recorded = sorted(CallRecord.objects.values_list("created_at", flat=True))
        assert len(recorded) == 4
        for when in recorded:
            assert timezone.is_naive(when)
            assert abs(when - before) < datetime.timedelta(minutes=1)
        # The lines say which time it is: an offset, not a bare local time.
        stamps = [datetime.datetime.fromisoformat(line["created_at"]) for line in call_lines.lines]
        assert all(stamp.tzinfo is not None for stamp in stamps)
        assert admin_client.get("/admin/django_claude/callrecord/").status_code == 200
        check_budgets()  # (raised: Django's localdate refuses a naive now)
        log = tmp_path / "calls.log"
        log.write_text("".join(r.getMessage() + "\n" for r in call_lines.records))
        CallRecord.objects.all().delete()
        call_command("claude_ingest_log", str(log), stdout=StringIO(), stderr=StringIO())
        assert sorted(CallRecord.objects.values_list("created_at", flat=True)) == recorded
    asyncio.run(sync_to_async(_forget_time_zones)())  # (back to the tests' UTC there)
    # The same lines, once the site turns time zones on: the same moments.
    CallRecord.objects.all().delete()
    with override_settings(TIME_ZONE=ZONE):
        call_command("claude_ingest_log", str(log), stdout=StringIO(), stderr=StringIO())
        moments = sorted(CallRecord.objects.values_list("created_at", flat=True))
    new_york = ZoneInfo(ZONE)
    assert moments == [when.replace(tzinfo=new_york) for when in recorded]
