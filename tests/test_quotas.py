"""Quotas that stop spending: per user, tenant or site, by USD, tokens or calls.

Every call here goes through the real SDK to the fake API; what the fake
counted is what Anthropic would have been sent.
"""

from __future__ import annotations

import asyncio
import datetime
import time
import zoneinfo
from decimal import Decimal

import anthropic
import pytest
from django.core.checks import run_checks
from django.utils import timezone

import django_claude
from django_claude import shared_cache
from django_claude.conf import conf
from django_claude.models import CallRecord
from django_claude.quotas import config, counters, enforce
from django_claude.quotas.estimate import worst_case
from django_claude.quotas.windows import window_bounds
from django_claude.types import ClaudeLimited, ClaudeUnavailable
from tests.conftest import away_from_a_window_edge

MODEL = "claude-opus-5"  # list price: $5 in, $25 out per million tokens
USAGE = {"input_tokens": 100, "output_tokens": 50}  # $0.00175 a call


@pytest.fixture
def quota_site(claude, settings):
    away_from_a_window_edge()  # (a call after the top of a minute starts a fresh window)
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = MODEL
    settings.DJANGO_CLAUDE_FALLBACK_MODEL = ""
    claude.usage = USAGE
    return claude


# -- the contract ----------------------------------------------------------------------


def test_a_call_over_its_quota_is_not_sent_and_says_when_to_retry(quota_site, settings):
    settings.DJANGO_CLAUDE_QUOTAS = {
        "free-hourly": {"per": "user", "window": "hour", "calls": 2, "feature": "chat"}
    }
    settings.DJANGO_CLAUDE_LIMITED_MESSAGE = "You have used this hour's questions."
    assert django_claude.call("one", feature="chat", user="u1").outcome == "ok"
    assert django_claude.call("two", feature="chat", user="u1").outcome == "ok"
    before = quota_site.count(MODEL)
    limited = django_claude.call("three", feature="chat", user="u1")
    assert quota_site.count(MODEL) == before  # never sent
    assert limited.outcome == "limited" and limited.limited and not limited.ok
    assert limited.text == "You have used this hour's questions."
    assert limited.quota == "free-hourly"
    _, end = window_bounds("hour")
    assert 0 < limited.retry_after <= (end - timezone.now()).total_seconds() + 1
    assert limited.cost_usd == 0
    record = CallRecord.objects.get(id=limited.request_id)
    assert (record.outcome, record.cost_usd, record.attempts) == ("limited", 0, 0)
    assert record.upstream_request_id == ""
    assert record.error_type == "QuotaExceeded"
    assert record.attempt_log == [
        {"quota": "free-hourly", "error": "limited", "retry_after": round(limited.retry_after)}
    ]
    # another user, and another feature, are not limited
    assert django_claude.call("hi", feature="chat", user="u2").outcome == "ok"
    assert django_claude.call("hi", feature="search", user="u1").outcome == "ok"


def test_raise_on_failure_raises_claude_limited(quota_site, settings):
    settings.DJANGO_CLAUDE_QUOTAS = {"site-minute": {"window": "minute", "calls": 1}}
    settings.DJANGO_CLAUDE_RAISE_ON_FAILURE = True
    django_claude.call("one", feature="chat")
    with pytest.raises(ClaudeLimited) as caught:
        django_claude.call("two", feature="chat")
    assert isinstance(caught.value, ClaudeUnavailable)
    assert caught.value.quota == "site-minute"
    assert 0 < caught.value.retry_after <= 60
    assert CallRecord.objects.get(id=caught.value.request_id).outcome == "limited"


# An async call's ending runs in asgiref's thread, outside a test's transaction.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_every_entry_point_is_limited(quota_site, settings):
    settings.DJANGO_CLAUDE_QUOTAS = {"none-left": {"window": "day", "calls": 1}}
    django_claude.call("spend it", feature="chat")
    before = quota_site.count(MODEL)
    assert asyncio.run(django_claude.acall("a", feature="chat")).outcome == "limited"
    with django_claude.stream("s", feature="chat") as stream:
        assert "".join(stream.text_stream) == conf.LIMITED_MESSAGE
    assert stream.result.outcome == "limited" and stream.result.quota == "none-left"

    async def astream() -> tuple[str, str]:
        async with django_claude.astream("s", feature="chat") as s:
            text = "".join([part async for part in s.text_stream])
        assert s.result is not None
        return text, s.result.outcome

    assert asyncio.run(astream()) == (conf.LIMITED_MESSAGE, "limited")
    assert quota_site.count(MODEL) == before


def test_tenants_explicit_or_derived_from_the_user(quota_site, settings):
    settings.DJANGO_CLAUDE_QUOTAS = {"org": {"per": "tenant", "window": "month", "calls": 1}}
    settings.DJANGO_CLAUDE_TENANT = "tests.test_quotas.tenant_of"
    assert django_claude.call("a", feature="chat", user="alice@acme").outcome == "ok"
    assert django_claude.call("b", feature="chat", user="bob@acme").outcome == "limited"
    assert django_claude.call("c", feature="chat", user="carol@other").outcome == "ok"
    assert django_claude.call("d", feature="chat", tenant="acme").outcome == "limited"
    assert django_claude.call("e", feature="chat", tenant="third").outcome == "ok"
    # no user, no tenant: a per-tenant quota does not apply
    assert django_claude.call("f", feature="chat").outcome == "ok"


def tenant_of(user: str) -> str:
    return str(user).split("@")[-1]


# -- settling: the reservation becomes what was used -------------------------------------


def test_usd_and_token_quotas_count_what_was_used_not_the_worst_case(quota_site, settings):
    settings.DJANGO_CLAUDE_QUOTAS = {
        "usd": {"per": "user", "window": "day", "usd": "1"},
        "tokens": {"per": "user", "window": "day", "tokens": 100_000},
    }
    django_claude.call("hello", feature="chat", user="u1", max_tokens=4000)
    status = {s.name: s for s in django_claude.quota_status(user="u1", feature="chat")}
    assert status["usd"].used == Decimal("0.00175")  # 100 * $5/M + 50 * $25/M
    assert status["usd"].remaining == Decimal("0.99825")
    assert status["tokens"].used == 150
    assert status["tokens"].limit == 100_000 and status["tokens"].unit == "tokens"
    _, end = window_bounds("day")
    assert status["usd"].resets_at == end


def test_a_call_that_was_not_answered_releases_its_reservation(quota_site, settings):
    settings.DJANGO_CLAUDE_QUOTAS = {
        "usd": {"window": "day", "usd": "1"},
        "calls": {"window": "day", "calls": 5},
    }
    quota_site.always(MODEL, 500)
    assert django_claude.call("hello", feature="chat").outcome == "degraded"
    status = {s.name: s for s in django_claude.quota_status(feature="chat")}
    assert status["usd"].used == 0 and status["calls"].used == 0


def test_a_caller_error_releases_its_reservation(quota_site, settings):
    settings.DJANGO_CLAUDE_QUOTAS = {"calls": {"window": "day", "calls": 5}}
    quota_site.always(MODEL, 400)
    with pytest.raises(anthropic.BadRequestError):
        django_claude.call("hello", feature="chat")
    assert django_claude.quota_status(feature="chat")[0].used == 0


def test_calls_are_served_until_less_than_one_reservation_is_left(quota_site, settings):
    """A USD quota of 3 worst cases serves calls whose real cost is far lower
    until what is left is below one worst case, and never spends past it."""
    worst = worst_case(
        {"messages": [{"role": "user", "content": "q"}], "max_tokens": 1000},
        [MODEL],
        on=timezone.now().date(),
    ).usd
    assert worst is not None
    limit = (worst * 3).quantize(Decimal("0.000001"))
    settings.DJANGO_CLAUDE_QUOTAS = {"tight": {"window": "day", "usd": str(limit)}}
    outcomes = [django_claude.call("q", feature="chat", max_tokens=1000).outcome for _ in range(40)]
    assert outcomes[0] == "ok" and outcomes[-1] == "limited"
    served = outcomes.count("ok")
    spent = Decimal("0.00175") * served
    assert spent <= limit
    assert limit - spent < worst  # stopped only when one more could overspend
    assert outcomes == ["ok"] * served + ["limited"] * (40 - served)


def test_budgets_can_block(quota_site, settings):
    settings.DJANGO_CLAUDE_BUDGETS = {"chat": {"usd": "0.03", "block": True}, "search": 10}
    results = [django_claude.call("q", feature="chat", max_tokens=100).outcome for _ in range(30)]
    assert results[0] == "ok" and results[-1] == "limited"
    limited = django_claude.call("q", feature="chat", max_tokens=100)
    assert limited.quota == "budget:chat"
    spent = sum(r.cost_usd for r in CallRecord.objects.filter(feature="chat") if r.cost_usd)
    assert spent <= Decimal("0.03")
    # a budget without block only alerts, as before
    assert django_claude.call("q", feature="search").outcome == "ok"


def test_an_unpriced_model_under_a_usd_quota_is_refused(quota_site, settings):
    settings.DJANGO_CLAUDE_DEFAULT_MODEL = "claude-internal-unknown"
    settings.DJANGO_CLAUDE_QUOTAS = {"usd": {"window": "day", "usd": "5"}}
    result = django_claude.call("q", feature="chat")
    assert result.outcome == "limited" and result.quota == "usd"
    assert CallRecord.objects.get(id=result.request_id).error_type == "QuotaUnpriced"


# -- the cache ---------------------------------------------------------------------------


def test_with_the_cache_down_a_quota_refuses_or_allows_as_configured(quota_site, settings):
    settings.CACHES = {
        **settings.CACHES,
        "broken": {"BACKEND": "tests.broken_cache.BrokenCache"},
    }
    settings.DJANGO_CLAUDE_CACHE = "broken"
    settings.DJANGO_CLAUDE_QUOTAS = {"calls": {"window": "day", "calls": 100}}
    shared_cache.reset()
    try:
        refused = django_claude.call("q", feature="chat")
        assert refused.outcome == "limited" and refused.retry_after > 0
        assert CallRecord.objects.get(id=refused.request_id).error_type == "QuotaStoreDown"
        settings.DJANGO_CLAUDE_QUOTAS_WHEN_CACHE_DOWN = "allow"
        assert django_claude.call("q", feature="chat").outcome == "ok"
    finally:
        settings.DJANGO_CLAUDE_CACHE = "default"
        shared_cache.reset()


def test_counters_are_all_or_none(fake_anthropic, db):
    shared_cache.reset()  # an earlier test's outage is not this one's
    first = counters.Charge(key="django_claude:quota:t:a", amount=5, limit=10, ttl=60)
    second = counters.Charge(key="django_claude:quota:t:b", amount=5, limit=7, ttl=60)
    assert counters.reserve([first, second]) == []
    assert counters.reserve([first, second]) == [2]  # b would pass 7: neither moves
    assert counters.read([first.key, second.key]) == {first.key: 5, second.key: 5}
    counters.adjust([(first.key, -5), (second.key, -9)])  # never below zero
    assert counters.read([first.key, second.key]) == {first.key: 0, second.key: 0}


# -- windows -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("window", "now", "start", "end"),
    [
        ("minute", "2026-03-08 01:59:30", "2026-03-08 01:59", "2026-03-08 03:00"),
        ("hour", "2026-11-01 01:30:00-04:00", "2026-11-01 01:00-04:00", "2026-11-01 01:00-05:00"),
        ("day", "2026-03-08 12:00", "2026-03-08 00:00", "2026-03-09 00:00"),
        ("month", "2026-12-31 23:59", "2026-12-01 00:00", "2027-01-01 00:00"),
        ("month", "2026-02-10 08:00", "2026-02-01 00:00", "2026-03-01 00:00"),
    ],
)
def test_windows_are_calendar_windows_in_the_site_time_zone(settings, window, now, start, end):
    settings.TIME_ZONE = "America/New_York"
    zone = zoneinfo.ZoneInfo("America/New_York")

    def at(text: str) -> datetime.datetime:
        parsed = datetime.datetime.fromisoformat(text)
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)

    # Timestamps: Python never calls a time in a DST fold equal to one in another zone.
    bounds = [moment.timestamp() for moment in window_bounds(window, at(now))]
    assert bounds == [at(start).timestamp(), at(end).timestamp()]


def test_a_dst_day_is_23_hours(settings):
    settings.TIME_ZONE = "Europe/Paris"
    zone = zoneinfo.ZoneInfo("Europe/Paris")
    start, end = window_bounds("day", datetime.datetime(2026, 3, 29, 12, tzinfo=zone))
    assert end.timestamp() - start.timestamp() == 23 * 3600


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quotas", "says"),
    [
        ({"a": {"window": "week", "calls": 1}}, "window must be one of"),
        ({"a": {"window": "day"}}, "exactly one limit"),
        ({"a": {"window": "day", "calls": 1, "usd": 1}}, "exactly one limit"),
        ({"a": {"window": "day", "calls": 0}}, "positive whole number"),
        ({"a": {"window": "day", "calls": 1.5}}, "positive whole number"),
        ({"a": {"window": "day", "calls": True}}, "must be a number"),
        ({"a": {"window": "day", "usd": "-1"}}, "positive amount"),
        ({"a": {"window": "day", "usd": "NaN"}}, "positive amount"),
        ({"a": {"window": "day", "usd": "lots"}}, "an amount"),
        ({"a": {"window": "day", "tokens": 10, "per": "team"}}, "per must be"),
        ({"a": {"window": "day", "tokens": 10, "feature": []}}, "feature must be"),
        ({"a": {"window": "day", "tokens": 10, "feature": [""]}}, "feature must hold"),
        ({"a": {"window": "day", "tokens": 10, "limit": 5}}, "unknown key"),
        ({"a": "2 dollars"}, "must be a dict"),
        ({"": {"window": "day", "calls": 1}}, "name must be"),
        (["not", "a", "dict"], "must be a dict of quotas"),
    ],
)
def test_check_names_every_malformed_quota(settings, quotas, says):
    settings.DJANGO_CLAUDE_QUOTAS = quotas
    errors = [m for m in run_checks() if m.id == "django_claude.E009"]
    assert len(errors) == 1, errors
    assert says in errors[0].msg and errors[0].hint


@pytest.mark.parametrize(
    "budget",
    [{"usd": "5", "block": "yes"}, {"block": True}, {"usd": "5", "stop": True}, "-3", None],
)
def test_check_names_every_malformed_budget(settings, budget):
    settings.DJANGO_CLAUDE_BUDGETS = {"chat": budget}
    assert [m.id for m in run_checks() if m.id == "django_claude.E007"] == ["django_claude.E007"]


def test_a_well_formed_configuration_passes_check(settings):
    settings.DJANGO_CLAUDE_QUOTAS = {
        "user-daily": {"per": "user", "window": "day", "usd": "2.00"},
        "org-monthly": {"per": "tenant", "window": "month", "usd": 500},
        "free-hourly": {"per": "user", "window": "hour", "calls": 50, "feature": "chat"},
        "site-minute": {"window": "minute", "tokens": 2_000_000},
        "two": {"window": "day", "calls": 9, "feature": ["chat", "search"]},
    }
    settings.DJANGO_CLAUDE_BUDGETS = {"chat": {"usd": "50", "block": True}, "search": 25}
    settings.DJANGO_CLAUDE_TENANT = "tests.test_quotas.tenant_of"
    ids = {m.id for m in run_checks()}
    assert not ids & {"django_claude.E007", "django_claude.E009", "django_claude.E010"}
    assert {q.name for q in config.quotas()} == {
        "user-daily",
        "org-monthly",
        "free-hourly",
        "site-minute",
        "two",
        "budget:chat",
    }


def test_a_broken_quota_is_logged_when_read(settings, caplog):
    settings.DJANGO_CLAUDE_QUOTAS = {"bad": {"window": "fortnight", "calls": 1}}
    assert config.quotas() == ()
    assert "'bad' is ignored" in caplog.text


def test_counter_keys_hold_no_user_or_tenant(settings):
    quota = config.parse_quota("user-daily", {"per": "user", "window": "day", "usd": "2"})
    key = enforce.counter_key(quota, "alice@example.com", timezone.now())
    assert "alice" not in key and "example" not in key and " " not in key


def test_limited_calls_are_counted_in_the_report_and_the_dashboard(quota_site, settings):
    import json
    from io import StringIO

    from django.core.management import call_command

    from django_claude.admin.dashboard import build_dashboard

    settings.TIME_ZONE = "UTC"
    settings.DJANGO_CLAUDE_QUOTAS = {"one": {"window": "day", "calls": 1}}
    outcomes = [django_claude.call("q", feature="chat").outcome for _ in range(3)]
    assert outcomes == ["ok", "limited", "limited"]
    out = StringIO()
    today = timezone.now().date().isoformat()
    call_command("claude_cost_report", "--date", today, "--format", "json", stdout=out)
    (row,) = json.loads(out.getvalue())["rows"]
    assert (row["calls"], row["limited_calls"], row["cost_usd"]) == (3, 2, "0.0017500000")
    day = build_dashboard(days=1).days[-1]
    assert (day.calls, day.limited_calls, day.ok_calls) == (3, 2, 1)


# -- what the review found: no reservation is kept, none is lost -----------------------


@pytest.fixture
def slow_cache(quota_site, settings):
    """django-claude's cache answers each incr after ``delay`` seconds."""

    def use(delay: float) -> None:
        settings.CACHES = {
            **settings.CACHES,
            "slow": {"BACKEND": "tests.broken_cache.SlowCache", "OPTIONS": {"DELAY": delay}},
        }
        settings.DJANGO_CLAUDE_CACHE = "slow"
        shared_cache.reset()

    yield use
    settings.DJANGO_CLAUDE_CACHE = "default"
    shared_cache.reset()


def test_a_reservation_made_after_the_caller_gave_up_is_given_back(slow_cache, settings):
    slow_cache(1.3)  # longer than a reservation may take
    settings.DJANGO_CLAUDE_QUOTAS = {"slow-calls": {"window": "day", "calls": 100}}
    refused = django_claude.call("q", feature="slow")
    assert refused.outcome == "limited"
    assert CallRecord.objects.get(id=refused.request_id).error_type == "QuotaStoreDown"
    time.sleep(2.0)  # the cache answers late: charged, then given back
    shared_cache.reset()
    assert django_claude.quota_status(feature="slow")[0].used == 0


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_async_call_cancelled_while_reserving_gives_its_reservation_back(slow_cache, settings):
    slow_cache(0.4)  # the reservation runs in a thread, off the event loop
    settings.DJANGO_CLAUDE_QUOTAS = {"cancel-calls": {"window": "day", "calls": 100}}

    async def cancel_while_reserving() -> None:
        task = asyncio.ensure_future(django_claude.acall("q", feature="cancelled"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await asyncio.sleep(1.0)  # the thread finishes its reservation, then gives it back

    asyncio.run(cancel_while_reserving())
    shared_cache.reset()
    assert django_claude.quota_status(feature="cancelled")[0].used == 0


def test_retry_after_waits_for_every_quota_that_refuses(quota_site, settings):
    settings.DJANGO_CLAUDE_QUOTAS = {
        "per-minute": {"window": "minute", "calls": 1},
        "per-day": {"window": "day", "calls": 1},
    }
    django_claude.call("one", feature="chat")
    limited = django_claude.call("two", feature="chat")
    _, end_of_day = window_bounds("day")
    assert limited.quota == "per-day"
    assert limited.retry_after == pytest.approx(
        (end_of_day - timezone.now()).total_seconds(), abs=2
    )


def test_a_call_whose_cost_is_unknown_keeps_its_worst_case(quota_site, settings):
    """A request that timed out may still be billed: its reservation stays."""
    from django_claude.testing import Fault

    settings.DJANGO_CLAUDE_QUOTAS = {"unknown": {"window": "day", "calls": 10}}
    settings.DJANGO_CLAUDE_TIMEOUT = 0.2
    settings.DJANGO_CLAUDE_DEADLINE = 0.3
    quota_site.always(MODEL, Fault(delay=1.0))
    result = django_claude.call("slow", feature="chat")
    assert result.outcome == "degraded"
    attempts = CallRecord.objects.get(id=result.request_id).attempts
    assert attempts >= 1
    # each attempt that timed out was reserved before it was sent, and stays charged
    assert django_claude.quota_status(feature="chat")[0].used == attempts


def test_a_retry_after_a_timeout_is_reserved_again_and_may_be_refused(quota_site, settings):
    from django_claude.testing import Fault

    settings.DJANGO_CLAUDE_QUOTAS = {"two-calls": {"window": "day", "calls": 2}}
    settings.DJANGO_CLAUDE_TIMEOUT = 0.3
    quota_site.script(MODEL, [Fault(delay=1.0), Fault(delay=1.0), Fault(delay=1.0)])
    result = django_claude.call("slow", feature="chat")
    assert quota_site.count(MODEL) == 2  # the third attempt would pass the quota
    assert result.outcome == "limited" and result.quota == "two-calls"
    assert django_claude.quota_status(feature="chat")[0].used == 2


def test_a_retry_after_a_timeout_that_answers_settles_only_its_own_reservation(
    quota_site, settings
):
    from django_claude.testing import Fault

    settings.DJANGO_CLAUDE_QUOTAS = {"calls": {"window": "day", "calls": 10}}
    settings.DJANGO_CLAUDE_TIMEOUT = 0.3
    quota_site.script(MODEL, [Fault(delay=1.0)])  # then answers
    assert django_claude.call("q", feature="chat").outcome == "ok"
    # the timed-out attempt may be billed (kept), the answer is counted: 2
    assert django_claude.quota_status(feature="chat")[0].used == 2


def test_a_stream_cut_off_keeps_its_worst_case(quota_site, settings):
    from django_claude.testing import Fault

    settings.DJANGO_CLAUDE_QUOTAS = {"tokens": {"window": "day", "tokens": 10**9}}
    quota_site.always(MODEL, Fault(cut_after=1))
    with django_claude.stream("q", feature="chat", max_tokens=500) as stream:
        "".join(stream.text_stream)
    assert stream.result is not None and stream.result.outcome == "interrupted"
    request = {"messages": [{"role": "user", "content": "q"}], "max_tokens": 500}
    worst = worst_case(request, [MODEL], on=timezone.now().date())
    assert django_claude.quota_status(feature="chat")[0].used == worst.tokens


def test_windows_work_without_time_zone_support(settings):
    settings.USE_TZ = False
    settings.TIME_ZONE = "Europe/Paris"
    start, end = window_bounds("day", datetime.datetime(2026, 3, 29, 12))
    assert end.timestamp() - start.timestamp() == 23 * 3600


def test_the_worst_case_counts_structure_not_only_text():
    numbers = list(range(5000))
    request = {
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "sum these"}]},
            {
                "role": "assistant",
                "content": [{"type": "tool_use", "id": "t1", "name": "f", "input": {}}],
            },
            {
                "role": "user",
                "content": [{"type": "tool_result", "tool_use_id": "t1", "content": str(numbers)}],
            },
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "and these"},
                    {"type": "text", "text": repr(numbers)},
                ],
            },
        ],
        "max_tokens": 10,
    }
    worst = worst_case(request, [MODEL], on=timezone.now().date())
    import json

    assert worst.input_tokens >= len(json.dumps(request["messages"])) // 2
    structured = {
        "messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]}],
        "tools": [
            {
                "name": "t",
                "input_schema": {
                    "type": "object",
                    "properties": {str(i): {"type": "number", "default": i} for i in range(500)},
                },
            }
        ],
        "max_tokens": 1,
    }
    assert worst_case(structured, [MODEL], on=timezone.now().date()).input_tokens >= len(
        json.dumps(structured["tools"])
    )


@pytest.mark.django_db
def test_a_worst_case_follows_a_price_the_site_changes():
    from tests.prices import site_price

    today = timezone.now().date()
    request = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 1000}
    before = worst_case(request, [MODEL], on=today)
    assert worst_case(request, [MODEL], on=today) == before  # the same request: the same
    # An admin makes the model ten times dearer: the next reservation is priced on it.
    site_price(MODEL, today - datetime.timedelta(days=1), "30", "150", "37.5", "60", "3")
    after = worst_case(request, [MODEL], on=today)
    assert after.usd is not None and before.usd is not None
    assert after.usd > 5 * before.usd
    assert after.tokens == before.tokens


@pytest.mark.django_db
def test_a_price_saved_while_a_worst_case_is_priced_is_not_kept_stale(monkeypatch):
    from django_claude.quotas import estimate
    from tests.prices import site_price

    today = timezone.now().date()
    request = {"messages": [{"role": "user", "content": "hello"}], "max_tokens": 1000}
    real = estimate.price_detail
    saved: list[bool] = []

    def priced_then_an_admin_saves_a_price(*args, **kwargs):
        priced = real(*args, **kwargs)  # on the prices in force when it began
        if not saved:  # meanwhile, in another request, the model becomes ten times dearer
            saved.append(True)
            site_price(MODEL, today - datetime.timedelta(days=1), "30", "150", "37.5", "60", "3")
        return priced

    monkeypatch.setattr(estimate, "price_detail", priced_then_an_admin_saves_a_price)
    before = worst_case(request, [MODEL], on=today)
    monkeypatch.setattr(estimate, "price_detail", real)
    after = worst_case(request, [MODEL], on=today)  # the next reservation
    assert before.usd is not None and after.usd is not None
    assert after.usd > 5 * before.usd


def test_without_time_zones_a_refused_call_is_limited(quota_site, settings):
    settings.USE_TZ = False
    settings.TIME_ZONE = "Asia/Tokyo"
    settings.DJANGO_CLAUDE_QUOTAS = {"q": {"per": "user", "window": "minute", "calls": 1}}
    assert django_claude.call("hi", feature="chat", user="u1").outcome == "ok"
    refused = django_claude.call("hi", feature="chat", user="u1")
    assert refused.outcome == "limited"
    assert refused.retry_after is not None and 0 < refused.retry_after <= 60


@pytest.mark.redis  # the local-memory cache is never marked down
def test_settling_goes_through_while_the_cache_is_marked_down(quota_site, settings):
    """One slow breaker read marks the cache down for a few seconds; a call
    that ends meanwhile still gives back what it did not use."""
    settings.DJANGO_CLAUDE_QUOTAS = {"usd": {"window": "day", "usd": "1"}}
    shared_cache.reset()
    quota_site.always(MODEL, 500)
    try:
        original = enforce.Reservation.settle

        def settle_after_an_outage(self, *args, **kwargs):
            shared_cache._health.trip("a breaker read", "was slow")  # as a hiccup would
            return original(self, *args, **kwargs)

        enforce.Reservation.settle = settle_after_an_outage
        assert django_claude.call("q", feature="chat").outcome == "degraded"
        assert counters.settled()  # written while the cache still counts as down
    finally:
        enforce.Reservation.settle = original
        shared_cache.reset()
    assert django_claude.quota_status(feature="chat")[0].used == 0


@pytest.mark.parametrize(
    ("backend", "warned"),
    [
        ("django.core.cache.backends.db.DatabaseCache", True),
        ("django.core.cache.backends.filebased.FileBasedCache", True),
        ("django.core.cache.backends.dummy.DummyCache", True),
        ("django.core.cache.backends.locmem.LocMemCache", True),  # per process, DEBUG off
        ("django.core.cache.backends.redis.RedisCache", False),
        ("django.core.cache.backends.memcached.PyMemcacheCache", False),
    ],
)
def test_check_warns_when_quotas_sit_on_a_cache_that_cannot_hold_them(settings, backend, warned):
    settings.DEBUG = False
    settings.CACHES = {**settings.CACHES, "quota-store": {"BACKEND": backend, "LOCATION": "x"}}
    settings.DJANGO_CLAUDE_CACHE = "quota-store"
    settings.DJANGO_CLAUDE_QUOTAS = {"q": {"window": "day", "calls": 5}}
    from django_claude.checks import check_quotas

    ids = [m.id for m in check_quotas()]
    assert ("django_claude.W007" in ids) is warned
    settings.DJANGO_CLAUDE_QUOTAS = {}
    assert "django_claude.W007" not in [m.id for m in check_quotas()]  # no quotas: no warning


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("DJANGO_CLAUDE_TENANT", 42, "django_claude.E010"),
        ("DJANGO_CLAUDE_TENANT", "nodots", "django_claude.E010"),
        ("DJANGO_CLAUDE_QUOTAS_WHEN_CACHE_DOWN", "maybe", "django_claude.E011"),
    ],
)
def test_check_names_a_bad_tenant_or_cache_down_mode(settings, name, value, code):
    setattr(settings, name, value)
    from django_claude.checks import check_quotas

    assert code in [m.id for m in check_quotas()]


def test_a_cache_marked_down_before_does_not_stop_a_local_memory_one(quota_site, settings):
    # A cache that failed (here a broken one, as in a test of an outage) marks
    # the shared cache down for a while; the local-memory cache configured
    # next cannot be away, and its quotas count as always.
    locmem = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "marked-down-before",
        }
    }
    settings.CACHES = {"default": {"BACKEND": "tests.broken_cache.BrokenCache"}}
    try:
        assert shared_cache.cache_op_here("probe", lambda c: c.get("x"), default="down") == "down"
        settings.CACHES = locmem
        _count_on_local_memory(settings)
    finally:  # the mark would hold the next tests' Redis down too
        shared_cache._health.recovered()


def _count_on_local_memory(settings) -> None:
    from django.core.cache import caches

    assert type(caches["default"]).__name__ == "LocMemCache"
    settings.DJANGO_CLAUDE_QUOTAS = {
        "one-a-minute": {"per": "user", "window": "minute", "calls": 1, "feature": "chat"}
    }
    assert django_claude.call("one", feature="chat", user="u9").outcome == "ok"
    limited = django_claude.call("two", feature="chat", user="u9")
    assert limited.outcome == "limited"
    assert CallRecord.objects.get(id=limited.request_id).error_type == "QuotaExceeded"
