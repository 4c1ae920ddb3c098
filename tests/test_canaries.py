"""Canary rollouts: who lands in which arm, what every change leaves behind,
and that no two canaries ever run on one route."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from decimal import Decimal

import pytest
from django.contrib.admin.models import LogEntry
from django.core.exceptions import ValidationError
from django.db import OperationalError, connection, transaction
from django.test.utils import CaptureQueriesContext

import django_claude
from django_claude import routing
from django_claude.models import CallRecord, Canary, ModelRoute, ModelRouteChange
from django_claude.routing import (
    CanaryAlreadyRunning,
    NoCanaryRunning,
    promote_canary,
    rollback,
    serving_route,
    set_canary_percent,
    set_route,
    start_canary,
    stop_canary,
)
from django_claude.signals import (
    canary_percent_changed,
    canary_promoted,
    canary_started,
    canary_stopped,
    model_route_changed,
)
from django_claude.testing import flush_pending
from tests.test_multiprocess import _test_database_url
from tests.test_streaming import run_async

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"
USERS = [f"user-{n}" for n in range(5000)]


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")


def _arms(feature: str, keys: list[str]) -> dict[str, str]:
    return {key: serving_route(feature, f"user:{key}").arm for key in keys}


# -- who lands where ------------------------------------------------------------------


def test_ten_percent_of_5000_users_land_in_the_canary_and_stay(db):
    set_route(feature="support", model=SONNET, fallback_model=HAIKU)
    canary = start_canary(feature="support", model=OPUS, percent=10, reason="try Opus")
    first = _arms("support", USERS)
    share = sum(arm == "canary" for arm in first.values()) / len(USERS) * 100
    assert 8.5 <= share <= 11.5
    assert set(first.values()) == {"canary", "control"}
    # Sticky: the same arm on every later call, and the arm's models.
    for _ in range(3):
        assert _arms("support", USERS) == first
    some_canary = next(key for key, arm in first.items() if arm == "canary")
    route = serving_route("support", f"user:{some_canary}")
    assert (route.model, route.fallback_model, route.canary_id) == (OPUS, HAIKU, canary.pk)
    some_control = next(key for key, arm in first.items() if arm == "control")
    assert serving_route("support", f"user:{some_control}").model == SONNET

    promote_canary(feature="support", reason="better")
    assert {serving_route("support", f"user:{k}").model for k in USERS} == {OPUS}
    assert {serving_route("support", f"user:{k}").arm for k in USERS} == {""}


def test_after_a_stop_nobody_is_in_the_canary(db):
    set_route(feature="support", model=SONNET, fallback_model=HAIKU)
    start_canary(feature="support", model=OPUS, percent=30)
    stop_canary(feature="support", reason="enough")
    routes = [serving_route("support", f"user:{k}") for k in USERS]
    assert {(r.model, r.arm, r.canary_id) for r in routes} == {(SONNET, "", None)}


def test_raising_the_share_keeps_everyone_already_in_the_canary(db):
    set_route(feature="f", model=SONNET)
    start_canary(feature="f", model=OPUS, percent=10)
    before = {k for k, arm in _arms("f", USERS).items() if arm == "canary"}
    set_canary_percent(feature="f", percent=50)
    after = {k for k, arm in _arms("f", USERS).items() if arm == "canary"}
    assert before < after
    assert 47 <= len(after) / len(USERS) * 100 <= 53


def test_each_canary_draws_its_own_users(db):
    set_route(feature="f", model=SONNET)
    first = start_canary(feature="f", model=OPUS, percent=20)
    chosen = {k for k, arm in _arms("f", USERS).items() if arm == "canary"}
    stop_canary(feature="f")
    second = start_canary(feature="f", model=OPUS, percent=20)
    again = {k for k, arm in _arms("f", USERS).items() if arm == "canary"}
    assert first.pk != second.pk
    # Not the same fifth of users twice: overlap near 20% of 20%.
    assert len(chosen & again) < len(chosen) / 2


def test_tenants_are_sticky_and_anonymous_calls_are_drawn(db):
    set_route(feature="f", model=SONNET)
    start_canary(feature="f", model=OPUS, percent=25)
    tenants = [f"tenant:org-{n}" for n in range(400)]
    first = [serving_route("f", t).arm for t in tenants]
    assert [serving_route("f", t).arm for t in tenants] == first
    anonymous = [serving_route("f", "").arm for _ in range(4000)]
    share = anonymous.count("canary") / len(anonymous) * 100
    assert 21 <= share <= 29


def test_calls_are_served_and_recorded_by_arm(claude):
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    canary = start_canary(feature="f", model=OPUS, percent=50)
    users = [f"u{n}" for n in range(60)]
    for user in users * 2:
        django_claude.call("hi", feature="f", user=user)
    flush_pending()
    rows = CallRecord.objects.filter(feature="f")
    assert rows.count() == 120
    by_user: dict[str, set[tuple[str, str, int | None]]] = {}
    for row in rows:
        by_user.setdefault(row.user_ref, set()).add((row.arm, row.model, row.canary_id))
    assert all(len(seen) == 1 for seen in by_user.values())  # nobody changes arm
    arms = {next(iter(seen)) for seen in by_user.values()}
    assert arms == {("canary", OPUS, canary.pk), ("control", SONNET, canary.pk)}
    # A tenant's calls without a user follow the tenant.
    for _ in range(5):
        django_claude.call("hi", feature="f", tenant="acme")
    flush_pending()
    assert rows.filter(tenant="acme").values("arm").distinct().count() == 1


def test_calls_of_a_route_without_a_canary_say_no_arm(claude):
    set_route(feature="f", model=SONNET)
    django_claude.call("hi", feature="f", user="u1")
    flush_pending()
    row = CallRecord.objects.get()
    assert (row.arm, row.canary_id) == ("", None)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_async_calls_and_streams_honour_the_canary(fake_anthropic):
    set_route(feature="f", model=SONNET)
    start_canary(feature="f", model=OPUS, percent=100)

    async def calls() -> list[str]:
        result = await django_claude.acall("hi", feature="f", user="u1")
        async with django_claude.astream("hi", feature="f", user="u2") as stream:
            async for _ in stream.text_stream:
                pass
        assert stream.result is not None
        return [result.model, stream.result.model]

    assert run_async(calls()) == [OPUS, OPUS]
    with django_claude.stream("hi", feature="f", user="u3") as sync_stream:
        for _ in sync_stream.text_stream:
            pass
    assert sync_stream.result is not None and sync_stream.result.model == OPUS
    flush_pending()
    assert sorted(CallRecord.objects.values_list("arm", flat=True)) == ["canary"] * 3


def test_choosing_an_arm_costs_no_query(claude):
    set_route(feature="f", model=SONNET)
    start_canary(feature="f", model=OPUS, percent=50)
    django_claude.call("warm up", feature="f", user="u0")
    with CaptureQueriesContext(connection) as queries:
        for n in range(20):
            serving_route("f", f"user:u{n}")
            django_claude.call("hi", feature="f", user=f"u{n}")
    route_reads = [q for q in queries if "modelroute" in q["sql"] or 'canary"' in q["sql"]]
    assert route_reads == []


def test_a_canary_on_the_default_route_serves_features_without_their_own(db):
    set_route(feature="", model=SONNET)
    set_route(feature="own", model=HAIKU)
    canary = start_canary(feature="", model=OPUS, percent=100)
    assert serving_route("anything", "user:u1").canary_id == canary.pk
    assert serving_route("own", "user:u1") == routing.Route("own", HAIKU, "")


# -- starting, changing, promoting, stopping ----------------------------------------


def test_every_action_is_history_a_log_entry_and_a_signal(
    db, admin_user, django_capture_on_commit_callbacks
):
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    seen = []

    def note(signal_name):
        def receiver(sender, **kwargs):
            seen.append((signal_name, kwargs["feature"], kwargs.get("user")))

        return receiver

    receivers = {
        canary_started: note("started"),
        canary_percent_changed: note("percent"),
        canary_promoted: note("promoted"),
        canary_stopped: note("stopped"),
        model_route_changed: note("route"),
    }
    for signal, receiver in receivers.items():
        signal.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            start_canary(feature="f", model=OPUS, percent=5, user=admin_user, reason="try")
        with django_capture_on_commit_callbacks(execute=True):
            set_canary_percent(feature="f", percent=25, user=admin_user, reason="looks fine")
        with django_capture_on_commit_callbacks(execute=True):
            promote_canary(feature="f", user=admin_user, reason="ship it")
        with django_capture_on_commit_callbacks(execute=True):
            start_canary(feature="f", model=SONNET, percent=1, user=admin_user, reason="back?")
        with django_capture_on_commit_callbacks(execute=True):
            stop_canary(feature="f", user=admin_user, reason="no")
    finally:
        for signal, receiver in receivers.items():
            signal.disconnect(receiver)
    assert [name for name, *_ in seen] == [
        "started",
        "percent",
        "promoted",
        "route",
        "started",
        "stopped",
    ]
    assert all(user == admin_user for *_, user in seen)
    history = list(ModelRouteChange.objects.filter(feature="f").order_by("id"))[1:]
    assert [(h.canary_action, h.old_percent, h.new_percent, h.reason) for h in history] == [
        ("start", None, Decimal("5.00"), "try"),
        ("percent", Decimal("5.00"), Decimal("25.00"), "looks fine"),
        ("promote", None, Decimal("25.00"), "ship it"),
        ("start", None, Decimal("1.00"), "back?"),
        ("stop", None, Decimal("1.00"), "no"),
    ]
    assert all(h.changed_by == admin_user and not h.automatic for h in history)
    assert (history[2].old_model, history[2].new_model) == (SONNET, OPUS)
    messages = list(
        LogEntry.objects.filter(object_id=str(ModelRoute.objects.get(feature="f").pk))
        .order_by("id")
        .values_list("change_message", flat=True)
    )
    assert len(messages) == 5  # one per canary action
    assert "Started a canary: claude-opus-4-7 for 5.00% of calls" in messages[0]
    assert "Reason: ship it" in messages[2]
    assert [c.status for c in Canary.objects.order_by("id")] == ["promoted", "stopped"]


def test_a_rollback_undoes_a_promotion_but_never_a_canary_start(db):
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    start_canary(feature="f", model=OPUS, percent=10)
    promote_canary(feature="f")
    rollback(feature="f", reason="regret")
    assert routing.active_route("f") == routing.Route("f", SONNET, HAIKU)
    # A canary start is not a change a rollback undoes: the route's own first
    # change (from the settings) is what is left.
    start_canary(feature="f", model=OPUS, percent=10)
    assert routing.rollback_target("f") == routing.Route("f", SONNET, HAIKU)


def test_a_change_of_the_route_stops_its_canary(db):
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    canary = start_canary(feature="f", model=OPUS, percent=10)
    set_route(feature="f", model=HAIKU)
    canary.refresh_from_db()
    assert canary.status == "stopped" and "the route was changed" in canary.end_reason
    assert serving_route("f", "user:any").arm == ""
    stop_row = ModelRouteChange.objects.get(canary=canary, canary_action="stop")
    later = ModelRouteChange.objects.filter(feature="f", id__gt=stop_row.id).get()
    assert (later.old_model, later.new_model) == (SONNET, HAIKU)


def test_removing_or_rolling_back_a_route_stops_its_canary(db):
    set_route(feature="f", model=SONNET)
    set_route(feature="f", model=HAIKU)
    first = start_canary(feature="f", model=OPUS, percent=10)
    rollback(feature="f")
    second = start_canary(feature="f", model=OPUS, percent=10)
    routing.remove_route(feature="f")
    assert [c.status for c in Canary.objects.filter(pk__in=[first.pk, second.pk])] == [
        "stopped",
        "stopped",
    ]
    assert not Canary.objects.filter(ended_at__isnull=True).exists()


def test_a_feature_without_its_own_route_gets_one_for_its_canary(db):
    canary = start_canary(feature="new", model=OPUS, percent=10)
    route = ModelRoute.objects.get(feature="new")
    assert (route.model, route.fallback_model) == (SONNET, HAIKU)  # the settings' models
    assert (canary.control_model, canary.control_fallback_model) == (SONNET, HAIKU)
    # The pinning is in the history, before the start.
    pinned, started = ModelRouteChange.objects.filter(feature="new").order_by("id")
    assert (pinned.canary_action, pinned.reason) == ("", "a route of its own, for a canary")
    assert started.canary_action == "start"


@pytest.mark.parametrize(
    "percent",
    [
        0,
        -5,
        100.5,
        101,
        "abc",
        "",
        None,
        True,
        float("nan"),
        float("inf"),
        0.001,
        "99.999",  # never rounded up to everyone
        "0.015",
        "1_0",
        "\u0661\u0660",  # Arabic-Indic digits
        "1e1",
        Decimal("NaN"),
        [10],
    ],
)
def test_a_bad_share_is_refused_and_nothing_changes(db, percent):
    set_route(feature="f", model=SONNET)
    with pytest.raises(ValidationError) as caught:
        start_canary(feature="f", model=OPUS, percent=percent)
    assert "percent" in caught.value.message_dict
    assert not Canary.objects.exists()


def test_the_shares_people_type_are_taken(db):
    set_route(feature="f", model=SONNET)
    canary = start_canary(feature="f", model=OPUS, percent="2.5")
    assert canary.percent == Decimal("2.50")
    for typed, share in (
        (" 12.5 % ", "12.5"),
        ("10%", "10"),
        (Decimal("0.01"), "0.01"),
        (7.25, "7.25"),
    ):
        assert set_canary_percent(feature="f", percent=typed).percent == Decimal(share)
    assert set_canary_percent(feature="f", percent=100).percent == Decimal(100)
    assert {serving_route("f", f"user:{k}").arm for k in USERS[:200]} == {"canary"}


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"feature": "f ", "model": OPUS}, "feature"),
        ({"feature": "f\n", "model": OPUS}, "feature"),
        ({"feature": "f\x00", "model": OPUS}, "feature"),
        ({"feature": "x" * 101, "model": OPUS}, "feature"),
        ({"feature": None, "model": OPUS}, "feature"),
        ({"feature": "f", "model": 123}, "model"),
        ({"feature": "f", "model": None}, "model"),
        ({"feature": "f", "model": OPUS, "fallback_model": 5}, "fallback_model"),
        ({"feature": "f", "model": OPUS, "reason": 5}, "reason"),
    ],
)
def test_arguments_of_the_wrong_kind_are_clear_errors(db, kwargs, field):
    set_route(feature="f", model=SONNET)
    with pytest.raises(ValidationError) as caught:
        start_canary(percent=10, **kwargs)
    assert field in caught.value.message_dict
    assert not Canary.objects.exists()
    assert ModelRoute.objects.count() == 1


def test_no_fallback_and_no_reason_are_fine(db):
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    canary = start_canary(feature="f", model=OPUS, percent=10, fallback_model=None, reason=None)
    assert (canary.fallback_model, canary.reason) == ("", "")


def test_bad_canaries_are_refused(db):
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    with pytest.raises(ValidationError) as same:
        start_canary(feature="f", model=SONNET, percent=10)
    assert "model" in same.value.message_dict
    with pytest.raises(ValidationError):
        start_canary(feature="f", model=" claude-opus-4-7", percent=10)
    with pytest.raises(ValidationError):
        start_canary(feature="f", model="claude-nobody-knows", percent=10)
    with pytest.raises(ValidationError):
        start_canary(feature="f", model=OPUS, fallback_model=OPUS, percent=10)
    assert not Canary.objects.exists()
    start_canary(feature="f", model="claude-nobody-knows", percent=10, allow_unpriced=True)
    with pytest.raises(CanaryAlreadyRunning):
        start_canary(feature="f", model=OPUS, percent=10)


def test_actions_without_a_canary_say_so(db):
    set_route(feature="f", model=SONNET)
    for action in (
        lambda: set_canary_percent(feature="f", percent=5),
        lambda: promote_canary(feature="f"),
        lambda: stop_canary(feature="f"),
        lambda: stop_canary(feature="nowhere"),
    ):
        with pytest.raises(NoCanaryRunning):
            action()
    canary = start_canary(feature="f", model=OPUS, percent=5)
    with pytest.raises(NoCanaryRunning):
        stop_canary(feature="f", canary_id=canary.pk + 1)
    stop_canary(feature="f", canary_id=canary.pk)
    with pytest.raises(NoCanaryRunning):
        stop_canary(feature="f", canary_id=canary.pk)  # once only


# -- many processes -------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_starts_and_stops_never_leave_two_canaries():
    set_route(feature="race", model=SONNET, fallback_model=HAIKU)
    barrier = threading.Barrier(8)
    outcomes: list[str] = []

    def worker(n: int) -> None:
        from django.db import connections

        try:
            barrier.wait()
            for round_ in range(6):
                try:
                    if (n + round_) % 2:
                        start_canary(feature="race", model=OPUS, percent=10 + n)
                        outcomes.append("started")
                    else:
                        stop_canary(feature="race")
                        outcomes.append("stopped")
                except (CanaryAlreadyRunning, NoCanaryRunning):
                    outcomes.append("refused")
                running = Canary.objects.filter(feature="race", ended_at__isnull=True).count()
                assert running <= 1
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 48 and "started" in outcomes and "refused" in outcomes
    assert Canary.objects.filter(feature="race", ended_at__isnull=True).count() <= 1
    # The history tells the same story as the rows: starts and stops alternate.
    actions = list(
        ModelRouteChange.objects.filter(feature="race", canary_action__in=["start", "stop"])
        .order_by("id")
        .values_list("canary_action", flat=True)
    )
    assert all(a != b for a, b in zip(actions, actions[1:], strict=False))
    assert actions.count("start") == outcomes.count("started")


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_another_process_sees_a_start_and_a_stop_within_two_seconds():
    set_route(feature="live", model=SONNET, fallback_model=HAIKU)
    script = "import django; django.setup()\n" + textwrap.dedent(
        """
        import sys, time
        from django_claude.routing import serving_route
        def arm():
            return serving_route("live", "user:someone").arm or "none"
        print("ready", arm(), flush=True)
        for wanted in ("canary", "none"):
            ends = time.monotonic() + 10
            while time.monotonic() < ends and arm() != wanted:
                time.sleep(0.02)
            print("saw", arm(), flush=True)
        """
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **_test_database_url()},
        cwd=os.path.dirname(os.path.dirname(__file__)),
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["ready", "none"]
        started = time.monotonic()
        start_canary(feature="live", model=OPUS, percent=100)
        seen_start = child.stdout.readline().split()
        start_took = time.monotonic() - started
        stopped = time.monotonic()
        stop_canary(feature="live")
        seen_stop = child.stdout.readline().split()
        stop_took = time.monotonic() - stopped
    finally:
        child.kill()
        child.wait()
    assert seen_start == ["saw", "canary"] and seen_stop == ["saw", "none"]
    assert start_took < 2.0 and stop_took < 2.0


# -- what a process believes -----------------------------------------------------------


def test_a_failed_reload_is_tried_again_a_second_later(db, monkeypatch):
    set_route(feature="f", model=SONNET)
    assert serving_route("f", "user:u").arm == ""
    routing.table.publish(1)
    start_canary(feature="f", model=OPUS, percent=100)
    routing.table.publish(2)  # another process's start, as this one sees it
    real_load = routing.table._load

    def down():
        raise OperationalError("database is down")

    monkeypatch.setattr(routing.table, "_load", down)
    assert serving_route("f", "user:u").arm == ""  # the last known table
    monkeypatch.setattr(routing.table, "_load", real_load)
    routing.table._table.checked_at = float("-inf")  # a second later
    assert serving_route("f", "user:u").arm == "canary"


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_start_rolled_back_by_the_caller_leaves_no_canary_behind():
    set_route(feature="f", model=SONNET)
    with pytest.raises(RuntimeError), transaction.atomic():
        start_canary(feature="f", model=OPUS, percent=100)
        assert serving_route("f", "user:u").arm == "canary"  # seen inside at once
        raise RuntimeError("the caller's transaction fails")
    assert not Canary.objects.exists()
    routing.table._table.checked_at = float("-inf")  # a second later
    assert serving_route("f", "user:u") == routing.Route("f", SONNET, "")
    # And once committed data is read, the table trusts its version again.
    assert routing.table._table.tentative is False


def test_an_unchanged_route_saved_again_keeps_its_canary(db):
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    canary = start_canary(feature="f", model=OPUS, percent=10)
    set_route(feature="f", model=SONNET, fallback_model=HAIKU, reason="saved the form")
    canary.refresh_from_db()
    assert canary.running
