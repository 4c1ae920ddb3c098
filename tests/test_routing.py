"""Routes: what serves a feature, flips, rollbacks, history, propagation."""

from __future__ import annotations

import json
import threading
from io import StringIO

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test.utils import CaptureQueriesContext

import django_claude
from django_claude import routing
from django_claude.models import CallRecord, ModelRoute, ModelRouteChange
from django_claude.routing import (
    NoRouteToRemove,
    NothingToRollBack,
    Route,
    active_route,
    previous_route,
    remove_route,
    rollback,
    set_route,
)
from django_claude.signals import model_route_changed

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")


def test_no_rows_means_the_settings(db):
    assert active_route("chat") == Route("chat", SONNET, HAIKU)


def test_feature_route_then_default_route(db):
    set_route(feature="", model=OPUS, fallback_model=SONNET)
    set_route(feature="chat", model=HAIKU, fallback_model="")
    assert active_route("chat") == Route("chat", HAIKU, "")
    assert active_route("search") == Route("search", OPUS, SONNET)


def test_set_route_records_history_logentry_and_who(db, admin_user):
    change = set_route(
        feature="chat", model=OPUS, fallback_model=HAIKU, user=admin_user, reason="try opus"
    )
    assert (change.old_model, change.new_model) == (SONNET, OPUS)
    assert change.changed_by == admin_user and change.reason == "try opus"
    route = ModelRoute.objects.get(feature="chat")
    assert route.updated_by == admin_user
    entry = LogEntry.objects.get()
    assert entry.user == admin_user
    assert "claude-opus-4-7" in entry.change_message and "try opus" in entry.change_message


def test_rollback_restores_what_was_in_force(db, admin_user):
    set_route(feature="chat", model=OPUS, fallback_model=HAIKU)
    set_route(feature="chat", model="claude-opus-4-8", fallback_model=SONNET)
    undo = rollback(feature="chat", user=admin_user, reason="4.8 misbehaves")
    assert undo.is_rollback
    assert active_route("chat") == Route("chat", OPUS, HAIKU)
    # a second rollback undoes the change before, it does not flip-flop
    rollback(feature="chat", user=admin_user)
    assert active_route("chat") == Route("chat", SONNET, HAIKU)
    with pytest.raises(NothingToRollBack):
        rollback(feature="chat")
    history = list(ModelRouteChange.objects.order_by("id").values_list("new_model", "is_rollback"))
    assert history == [
        (OPUS, False),
        ("claude-opus-4-8", False),
        (OPUS, True),
        (SONNET, True),
    ]
    assert LogEntry.objects.filter(user=admin_user).count() == 2


def test_rollback_of_unknown_route(db):
    with pytest.raises(NothingToRollBack):
        rollback(feature="never-set")


def test_history_is_a_chain(db):
    set_route(feature="f", model=OPUS, fallback_model=HAIKU)
    set_route(feature="f", model=HAIKU, fallback_model=SONNET)
    rollback(feature="f")
    set_route(feature="f", model=SONNET, fallback_model=HAIKU)
    changes = list(ModelRouteChange.objects.order_by("id"))
    for before, after in zip(changes, changes[1:], strict=False):
        assert after.old_model == before.new_model
        assert after.old_fallback_model == before.new_fallback_model


@pytest.mark.parametrize(
    ("model", "fallback", "code"),
    [
        ("", HAIKU, "blank"),
        ("   ", HAIKU, "blank"),
        (" claude-opus-4-7", HAIKU, "blank"),
        (OPUS, OPUS, "same_as_model"),
        ("claude-unpriced-1", HAIKU, "unpriced"),
        (OPUS, "claude-unpriced-2", "unpriced"),
    ],
)
def test_invalid_routes_are_refused(db, model, fallback, code):
    with pytest.raises(ValidationError) as excinfo:
        set_route(feature="f", model=model, fallback_model=fallback)
    codes = {e.code for errors in excinfo.value.error_dict.values() for e in errors}
    assert code in codes
    assert not ModelRoute.objects.exists()


def test_unpriced_model_with_confirmation(db):
    set_route(feature="f", model="claude-next-1", fallback_model=HAIKU, allow_unpriced=True)
    assert active_route("f").model == "claude-next-1"


def test_signal_sent_on_commit(db, django_capture_on_commit_callbacks, admin_user):
    seen = []

    def receiver(**kwargs):
        seen.append(kwargs)

    model_route_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            set_route(feature="f", model=OPUS, fallback_model=HAIKU, user=admin_user)
        with django_capture_on_commit_callbacks(execute=True):
            rollback(feature="f", user=admin_user)
    finally:
        model_route_changed.disconnect(receiver)
    assert [(s["old"].model, s["new"].model, s["is_rollback"]) for s in seen] == [
        (SONNET, OPUS, False),
        (OPUS, SONNET, True),
    ]
    assert seen[0]["feature"] == "f" and seen[0]["user"] == admin_user


def test_calls_use_the_route(claude):
    set_route(feature="support", model=OPUS, fallback_model=HAIKU)
    result = django_claude.call("hi", feature="support")
    assert result.model == OPUS
    claude.always(OPUS, 529)
    assert django_claude.call("hi", feature="support").model == HAIKU
    rollback(feature="support")
    assert django_claude.call("hi", feature="support").model == SONNET


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_steady_state_call_costs_exactly_its_insert(fake_anthropic):
    set_route(feature="support", model=OPUS, fallback_model=HAIKU)
    django_claude.call("warm up", feature="support")  # loads routes and prices
    with CaptureQueriesContext(connections["default"]) as queries:
        result = django_claude.call("hi", feature="support")
    assert result.model == OPUS
    assert len(queries) == 1, [q["sql"] for q in queries]
    assert queries[0]["sql"].lstrip().upper().startswith("INSERT")
    assert "django_claude_callrecord" in queries[0]["sql"]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_flip_reaches_a_process_that_cached_routes(fake_anthropic, monkeypatch):
    set_route(feature="f", model=OPUS, fallback_model=HAIKU)
    assert active_route("f").model == OPUS
    # Another process flips the route: the row and the shared version change,
    # this process's table does not.
    ModelRoute.objects.filter(feature="f").update(model=HAIKU, fallback_model=SONNET)
    routing.table.publish(10_000)
    routing.table._table.routes = {"f": (OPUS, HAIKU)}
    routing.table._table.version = "stale"
    routing.table._table.checked_at = 0.0
    assert active_route("f").model == HAIKU


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_event_loop_serves_the_table_it_has_while_a_thread_looks_again(
    fake_anthropic, monkeypatch
):
    import asyncio
    import time

    # As when served: under a test runner the table is never served stale (a
    # test's routes are in its transaction, which the looking thread cannot read).
    monkeypatch.setattr(routing.table, "under_test_runner", lambda: False)
    set_route(feature="f", model=OPUS, fallback_model=HAIKU)
    assert active_route("f").model == OPUS  # this process has read the routes
    # Another process flips the route.
    ModelRoute.objects.filter(feature="f").update(model=HAIKU, fallback_model=SONNET)
    routing.table.publish(10_000)
    looking, go_on = threading.Event(), threading.Event()
    real_version = routing.table._shared_version

    def slow_version() -> object:  # a look that takes its time (a busy cache)
        looking.set()
        go_on.wait(5)
        return real_version()

    monkeypatch.setattr(routing.table, "_shared_version", slow_version)
    # This process still holds the route it read, a look ago (as in the test above).
    routing.table._table.routes = {"f": (OPUS, HAIKU)}
    routing.table._table.version = "stale"
    routing.table._table.tentative = False
    routing.table._table.checked_at = time.monotonic() - 2 * routing.CHECK_EVERY
    answered = asyncio.run(django_claude.acall("hi", feature="f"))
    # The call did not wait for the look: it was served by the table it had.
    assert not go_on.is_set()
    assert answered.model == OPUS
    assert looking.wait(5)  # a thread is looking meanwhile
    go_on.set()
    deadline = time.monotonic() + 5
    while not routing.route_table_is_fresh() and time.monotonic() < deadline:
        time.sleep(0.01)
    # Once it has looked, calls go to the new route.
    assert asyncio.run(django_claude.acall("hi", feature="f")).model == HAIKU


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_an_event_loop_reads_a_table_not_looked_at_for_long_before_the_call(
    fake_anthropic, monkeypatch
):
    import asyncio
    import time

    monkeypatch.setattr(routing.table, "under_test_runner", lambda: False)  # as when served
    set_route(feature="f", model=HAIKU, fallback_model=SONNET)
    # The process read OPUS long ago (it was idle): that is not served again.
    routing.table._table.routes = {"f": (OPUS, HAIKU)}
    routing.table._table.version = "stale"
    routing.table._table.tentative = False
    routing.table._table.checked_at = time.monotonic() - routing.table.SERVED_STALE_FOR - 1
    assert asyncio.run(django_claude.acall("hi", feature="f")).model == HAIKU


def test_routes_survive_a_database_outage(db, monkeypatch):
    set_route(feature="f", model=OPUS, fallback_model=HAIKU)
    assert active_route("f").model == OPUS
    from django.db import OperationalError

    def down():
        raise OperationalError("database is down")

    monkeypatch.setattr(routing.table, "_load", down)
    routing.table._table.checked_at = float("-inf")
    routing.table._table.version = "changed"
    assert active_route("f").model == OPUS


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_flips_never_lose_an_update():
    set_route(feature="race", model=SONNET, fallback_model=HAIKU)
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def flip(model: str) -> None:
        try:
            barrier.wait()
            for _ in range(5):
                set_route(feature="race", model=model, fallback_model=HAIKU)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [
        threading.Thread(target=flip, args=(m,))
        for m in (OPUS, SONNET, "claude-opus-4-8", "claude-opus-4-6")
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    changes = list(ModelRouteChange.objects.filter(feature="race").order_by("id"))
    assert len(changes) == 21
    for before, after in zip(changes, changes[1:], strict=False):
        assert after.old_model == before.new_model  # no change saw a stale route
    assert ModelRoute.objects.get(feature="race").model == changes[-1].new_model


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_first_flips_of_a_new_feature():
    barrier = threading.Barrier(3)
    errors: list[BaseException] = []

    def flip(model: str) -> None:
        try:
            barrier.wait()
            set_route(feature="brand-new", model=model, fallback_model=HAIKU)
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=flip, args=(m,)) for m in (OPUS, SONNET, "claude-opus-4-8")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert ModelRoute.objects.filter(feature="brand-new").count() == 1
    assert ModelRouteChange.objects.filter(feature="brand-new").count() == 3


# -- removing a route -------------------------------------------------------------


def test_remove_route_falls_back_to_the_default_route(db, admin_user):
    set_route(feature="", model=OPUS, fallback_model=SONNET)
    set_route(feature="chat", model=HAIKU, fallback_model="")
    removal = remove_route(feature="chat", user=admin_user, reason="follow the default")
    assert active_route("chat") == Route("chat", OPUS, SONNET)
    assert not ModelRoute.objects.filter(feature="chat").exists()
    assert (removal.is_removal, removal.is_rollback, removal.route) == (True, False, None)
    assert (removal.old_model, removal.new_model, removal.new_fallback_model) == (
        HAIKU,
        OPUS,
        SONNET,
    )
    assert removal.changed_by == admin_user and removal.reason == "follow the default"
    # the feature's earlier history stays, under its name
    assert ModelRouteChange.objects.filter(feature="chat").count() == 2
    entry = LogEntry.objects.latest("id")
    assert entry.user == admin_user and entry.action_flag == DELETION
    assert "follow the default" in entry.change_message and HAIKU in entry.change_message


def test_removing_the_default_route_means_the_settings(db):
    set_route(feature="", model=OPUS, fallback_model=HAIKU)
    removal = remove_route(feature="", reason="settings again")
    assert active_route("anything") == Route("anything", SONNET, HAIKU)
    assert active_route("") == Route("", SONNET, HAIKU)
    assert (removal.old_model, removal.new_model) == (OPUS, SONNET)


def test_removing_a_route_that_does_not_exist_records_nothing(db, admin_user):
    with pytest.raises(NoRouteToRemove, match="'chat' has no route of its own"):
        remove_route(feature="chat", user=admin_user, reason="x")
    with pytest.raises(NoRouteToRemove, match="'\\(default\\)'"):
        remove_route(feature="", user=admin_user, reason="x")
    assert not ModelRouteChange.objects.exists() and not LogEntry.objects.exists()


def test_rollback_after_a_removal_restores_the_route(db, admin_user):
    set_route(feature="chat", model=OPUS, fallback_model=HAIKU)
    set_route(feature="chat", model="claude-opus-4-8", fallback_model=SONNET)
    remove_route(feature="chat", reason="try the default")
    assert active_route("chat").model == SONNET
    assert previous_route("chat") == Route("chat", "claude-opus-4-8", SONNET)
    undo = rollback(feature="chat", user=admin_user, reason="default is worse")
    assert undo.is_rollback and (undo.old_model, undo.new_model) == (SONNET, "claude-opus-4-8")
    assert active_route("chat") == Route("chat", "claude-opus-4-8", SONNET)
    route = ModelRoute.objects.get(feature="chat")
    assert route.changes.count() == 4  # the restored route has its whole history back
    assert route.changes.get(is_removal=True).rolled_back
    rollback(feature="chat")  # the next rollback undoes the change before the removal
    assert active_route("chat") == Route("chat", OPUS, HAIKU)


def test_set_after_a_removal_continues_the_history(db):
    set_route(feature="chat", model=OPUS, fallback_model=HAIKU)
    remove_route(feature="chat", reason="r")
    set_route(feature="chat", model=HAIKU, fallback_model=SONNET)
    changes = list(ModelRoute.objects.get(feature="chat").changes.order_by("id"))
    assert [c.is_removal for c in changes] == [False, True, False]
    for before, after in zip(changes, changes[1:], strict=False):
        assert after.old_model == before.new_model


def test_removal_signal_and_version_bump(db, django_capture_on_commit_callbacks, admin_user):
    seen = []

    def receiver(**kwargs):
        seen.append(kwargs)

    set_route(feature="", model=OPUS, fallback_model=HAIKU)
    set_route(feature="f", model=HAIKU, fallback_model=SONNET)
    model_route_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            removal = remove_route(feature="f", user=admin_user, reason="r")
    finally:
        model_route_changed.disconnect(receiver)
    assert [(s["old"], s["new"], s["is_removal"], s["is_rollback"]) for s in seen] == [
        (Route("f", HAIKU, SONNET), Route("f", OPUS, HAIKU), True, False)
    ]
    assert caches["default"].get(routing.VERSION_KEY) == removal.pk
    # a process that still holds the removed route drops it at its next look
    routing.table._table.routes = {"f": (HAIKU, SONNET), "": (OPUS, HAIKU)}
    routing.table._table.version = "stale"
    routing.table._table.checked_at = 0.0
    assert active_route("f") == Route("f", OPUS, HAIKU)


def test_calls_after_a_removal_use_the_default(claude):
    set_route(feature="support", model=OPUS, fallback_model=HAIKU)
    assert django_claude.call("hi", feature="support").model == OPUS
    remove_route(feature="support", reason="r")
    assert django_claude.call("hi", feature="support").model == SONNET
    rollback(feature="support")
    assert django_claude.call("hi", feature="support").model == OPUS


# -- manage.py claude_route ----------------------------------------------------------


def run(*args: str) -> str:
    out = StringIO()
    call_command("claude_route", *args, stdout=out)
    return out.getvalue()


def test_command_set_show_rollback(db, admin_user):
    assert "No routes yet" in run("show")
    run("set", "--feature", "chat", "--model", OPUS, "--reason", "cli", "--user", "boss")
    assert active_route("chat") == Route("chat", OPUS, HAIKU)  # fallback kept
    shown = run("show")
    assert "chat" in shown and OPUS in shown
    rows = json.loads(run("show", "--format", "json"))
    assert rows[0]["previous_model"] == SONNET
    run("rollback", "--feature", "chat", "--reason", "bad")
    assert active_route("chat").model == SONNET
    change = ModelRouteChange.objects.order_by("id").first()
    assert change is not None and change.changed_by == admin_user and change.reason == "cli"


def test_command_errors(db):
    with pytest.raises(CommandError, match="--feature"):
        run("set", "--model", OPUS)
    with pytest.raises(CommandError, match="--model"):
        run("set", "--feature", "x")
    with pytest.raises(CommandError, match="no price"):
        run("set", "--feature", "x", "--model", "claude-unpriced-9")
    run(
        "set", "--feature", "x", "--model", "claude-unpriced-9", "--allow-unpriced", "--reason", "r"
    )
    with pytest.raises(CommandError, match="nothing to undo|no history"):
        run("rollback", "--feature", "never")
    with pytest.raises(CommandError, match="no user"):
        run("set", "--feature", "x", "--model", OPUS, "--user", "ghost")


def test_records_and_route_health(claude):
    set_route(feature="support", model=OPUS, fallback_model=HAIKU)
    django_claude.call("hi", feature="support")
    claude.script(OPUS, [529] * 4)
    django_claude.call("hi", feature="support")
    health = CallRecord.objects.filter(feature="support").health()
    assert health == {
        "calls": 2,
        "fallbacks": 1,
        "degraded": 0,
        "smell_passed": 0,
        "smell_judged": 0,
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_cache_without_a_version_is_given_one_so_routes_are_not_read_every_second(
    django_assert_num_queries,
):
    caches["default"].delete(routing.VERSION_KEY)  # a site that never changed a route
    routing.reset_route_table()
    assert active_route("f").model == SONNET  # the first look reads the database
    claimed = caches["default"].get(routing.VERSION_KEY)
    assert claimed is not None
    routing.table._table.checked_at = 0.0  # a second later: the version is unchanged
    with django_assert_num_queries(0):
        assert active_route("f").model == SONNET
    # A change published by another process still reaches this one.
    ModelRoute.objects.create(feature="f", model=OPUS, fallback_model=HAIKU)
    routing.table.publish(1)
    routing.table._table.routes, routing.table._table.version = {}, claimed
    routing.table._table.checked_at = 0.0
    assert active_route("f").model == OPUS
