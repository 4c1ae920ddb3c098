"""The smell-test pages of the admin: each baseline next to its pass rate now."""

from __future__ import annotations

import datetime
import re

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_claude.models import CallRecord, SmellAlert, SmellBaseline
from django_claude.smell.alerts import WINDOW
from django_claude.types import Outcome, SmellVerdict

URL = "admin:django_claude_smellbaseline_changelist"


def judged(feature: str, verdicts: list[SmellVerdict], *, age: datetime.timedelta) -> None:
    """Calls of ``feature``, newest first, the newest ``age`` ago, a second apart."""
    start = timezone.now() - age
    CallRecord.objects.bulk_create(
        CallRecord(
            created_at=start - datetime.timedelta(seconds=i),
            feature=feature,
            model_requested="claude-sonnet-4-6",
            model="claude-sonnet-4-6",
            outcome=Outcome.OK,
            smell_verdict=verdict,
        )
        for i, verdict in enumerate(verdicts)
    )


def baseline(feature: str) -> SmellBaseline:
    return SmellBaseline.objects.create(
        feature=feature, pass_rate=90.0, sample_size=500, source=SmellBaseline.Source.RECORDS
    )


def cells(page: str, column: str) -> list[str]:
    """The changelist's cells of one ``list_display`` column, top to bottom."""
    return re.findall(rf'<td class="field-{column}">(.*?)</td>', page)


def test_pass_rate_now_is_the_newest_judged_calls_of_the_last_day(admin_client, db):
    minute, day = datetime.timedelta(minutes=1), datetime.timedelta(hours=24)
    # chat: the newest WINDOW judged calls pass; five older ones failed
    judged("chat", [SmellVerdict.PASS] * WINDOW + [SmellVerdict.FAIL] * 5, age=minute)
    # search: 3 of 4 pass; pending, errors and calls older than a day do not count
    judged("search", [SmellVerdict.PASS] * 3 + [SmellVerdict.FAIL], age=minute)
    judged("search", [SmellVerdict.PENDING, SmellVerdict.ERROR], age=minute)
    judged("search", [SmellVerdict.FAIL] * 3, age=day + minute)
    # support: nothing judged lately, and an alert still open
    judged("support", [SmellVerdict.NOT_SAMPLED], age=minute)
    for feature in ("chat", "search", "support"):
        baseline(feature)
    SmellAlert.objects.create(
        feature="support", baseline_pass_rate=90, recent_pass_rate=70, judged=100
    )
    SmellAlert.objects.create(
        feature="chat",
        baseline_pass_rate=90,
        recent_pass_rate=70,
        judged=100,
        ended_at=timezone.now(),
    )

    page = admin_client.get(reverse(URL)).content.decode()
    assert cells(page, "recent_pass_rate") == ["100.0%", "75.0%", "—"]
    assert cells(page, "recent_judged") == [str(WINDOW), "4", "0"]
    assert ['alt="True"' in cell for cell in cells(page, "alert_open")] == [False, False, True]
    assert cells(page, "pass_rate_display") == ["90.0%"] * 3


def changelist_queries(client: Client, baselines: int) -> int:
    """Queries for the baseline list once there are ``baselines`` features."""
    for i in range(SmellBaseline.objects.count(), baselines):
        judged(f"feature-{i}", [SmellVerdict.PASS, SmellVerdict.FAIL], age=datetime.timedelta())
        baseline(f"feature-{i}")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(URL))
    assert cells(response.content.decode(), "recent_pass_rate") == ["50.0%"] * baselines
    return len(queries)


def test_baseline_changelist_queries_do_not_grow_with_its_rows(admin_client, db):
    assert changelist_queries(admin_client, 1) == changelist_queries(admin_client, 8)
