"""``manage.py claude_route`` as a developer meets it: the examples in its
--help, who and why every change records, and removing a route."""

from __future__ import annotations

import getpass
import shlex
from io import StringIO

import pytest
from django.contrib.admin.models import DELETION, LogEntry
from django.core.management import call_command
from django.core.management.base import CommandError

from django_claude.management.commands.claude_route import Command
from django_claude.models import ModelRoute, ModelRouteChange
from django_claude.routing import Route, active_route, rollback, set_route

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"


def run(*args: str) -> str:
    out = StringIO()
    call_command("claude_route", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def refused(*args: str, match: str) -> None:
    with pytest.raises(CommandError, match=match) as caught:
        run(*args)
    assert "\n" not in str(caught.value), "one line"


@pytest.fixture
def os_login(monkeypatch):
    """Pretend the shell's login is ``deploy`` (call it to pick another)."""

    def login(name: str = "deploy") -> None:
        monkeypatch.setattr(getpass, "getuser", lambda: name)

    login()
    return login


@pytest.fixture
def demo(db, django_user_model):
    """What ``manage.py demo`` leaves behind: its admin user and the
    support-summary route it flipped and rolled back."""
    user = django_user_model.objects.create_superuser("demo", "demo@example.com", "demo-claude")
    set_route(feature="support-summary", model=OPUS, fallback_model=HAIKU, user=user, reason="x")
    rollback(feature="support-summary", user=user, reason="y")
    return user


def help_examples() -> list[list[str]]:
    """The commands of the --help examples, as argument lists after the command name."""
    text = Command().create_parser("manage.py", "claude_route").format_help()
    examples = text.split("examples:", 1)[1].replace("\\\n", " ")
    commands = [shlex.split(line) for line in examples.splitlines() if "claude_route" in line]
    assert commands and all(c[:3] == ["python", "manage.py", "claude_route"] for c in commands)
    return [c[3:] for c in commands]


# -- the examples ------------------------------------------------------------------


def test_help_examples_use_a_demo_feature_and_the_demo_user():
    changes = [args for args in help_examples() if args[0] != "show"]
    assert {args[0] for args in changes} == {"set", "rollback", "remove"}
    for args in changes:
        assert args[args.index("--feature") + 1] == "support-summary"
        assert args[args.index("--user") + 1] == "demo"
        assert args[args.index("--reason") + 1].strip()


def test_help_examples_run_as_written_after_the_demo(demo, os_login):
    for args in help_examples():
        run(*args)
    # set, rollback, remove, rollback: back to the route the set replaced ... and
    # then the removal undone, so the route the demo left is in force again
    kinds = list(
        ModelRouteChange.objects.filter(feature="support-summary")
        .order_by("id")
        .values_list("is_rollback", "is_removal", "changed_by__username")
    )
    assert kinds[2:] == [
        (False, False, "demo"),
        (True, False, "demo"),
        (False, True, "demo"),
        (True, False, "demo"),
    ]
    assert active_route("support-summary") == Route("support-summary", SONNET, HAIKU)


# -- why: --reason is required -----------------------------------------------------


@pytest.mark.parametrize("reason", [None, "", "   "])
@pytest.mark.parametrize(
    "args",
    [
        ["set", "--feature", "support-summary", "--model", OPUS],
        ["rollback", "--feature", "support-summary"],
        ["remove", "--feature", "support-summary"],
    ],
)
def test_a_change_without_a_reason_is_refused(demo, args, reason):
    set_route(feature="support-summary", model=HAIKU, fallback_model=SONNET)  # to roll back
    before = ModelRouteChange.objects.count()
    extra = [] if reason is None else ["--reason", reason]
    refused(*args, *extra, "--user", "demo", match=f'{args[0]} needs --reason "why"')
    assert ModelRouteChange.objects.count() == before
    assert active_route("support-summary").model == HAIKU


def test_show_needs_no_reason(demo):
    assert "support-summary" in run("show")


# -- who: --user, else the OS login ---------------------------------------------------


def test_user_that_names_no_django_user_is_refused(demo):
    refused(
        "remove", "--feature", "support-summary", "--reason", "r", "--user", "ghost",
        match="--user: no user 'ghost'",
    )  # fmt: skip
    assert ModelRoute.objects.filter(feature="support-summary").exists()


def test_without_user_the_os_login_names_the_django_user(demo, os_login):
    os_login("demo")
    out = run("set", "--feature", "support-summary", "--model", OPUS, "--reason", "try")
    change = ModelRouteChange.objects.latest("id")
    assert change.changed_by == demo and change.reason == "try"
    assert LogEntry.objects.filter(user=demo).latest("id").change_message.endswith("try")
    assert "OS user" not in out


def test_without_user_an_os_login_with_no_django_user_is_kept_in_the_reason(demo, os_login):
    entries = LogEntry.objects.count()
    out = run("set", "--feature", "support-summary", "--model", OPUS, "--reason", "try")
    change = ModelRouteChange.objects.latest("id")
    assert change.changed_by is None
    assert change.reason == "try (by OS user 'deploy', no Django user)"
    assert "Recorded as OS user 'deploy'" in out and "--user" in out
    assert LogEntry.objects.count() == entries  # a LogEntry needs a Django user
    assert active_route("support-summary").model == OPUS


def test_an_os_login_note_that_does_not_fit_is_refused(demo, os_login):
    set_route(feature="support-summary", model=HAIKU, fallback_model=SONNET)
    refused(
        "rollback", "--feature", "support-summary", "--reason", "r" * 490,
        match="--reason: 490 characters, at most 462 with the note of your OS user",
    )  # fmt: skip
    run("rollback", "--feature", "support-summary", "--reason", "r" * 490, "--user", "demo")


def test_an_unknown_os_login_asks_for_user(demo, monkeypatch):
    def unknown() -> str:
        raise OSError("No username set in the environment")

    monkeypatch.setattr(getpass, "getuser", unknown)
    set_route(feature="support-summary", model=HAIKU, fallback_model=SONNET)
    refused("rollback", "--feature", "support-summary", "--reason", "r", match="pass --user")
    assert "support-summary" in run("show")  # showing needs nobody


# -- remove ---------------------------------------------------------------------------


def test_remove_then_rollback_from_the_command_line(demo):
    set_route(feature="", model=OPUS, fallback_model=HAIKU)
    out = run(
        "remove", "--feature", "support-summary", "--reason", "follow the default",
        "--user", "demo",
    )  # fmt: skip
    assert f"support-summary: route removed; uses {OPUS}, fallback {HAIKU}" in out
    assert "(the default route)" in out
    assert active_route("support-summary") == Route("support-summary", OPUS, HAIKU)
    removal = ModelRouteChange.objects.latest("id")
    assert (removal.is_removal, removal.old_model, removal.new_model) == (True, SONNET, OPUS)
    assert (removal.changed_by, removal.reason) == (demo, "follow the default")
    assert LogEntry.objects.latest("id").action_flag == DELETION

    shown = run("show", "--feature", "support-summary")
    assert "has no route of its own" in shown and f"rollback restores {SONNET}" in shown
    out = run("rollback", "--feature", "support-summary", "--reason", "undo", "--user", "demo")
    assert out.strip().endswith(f"support-summary: {SONNET}, fallback {HAIKU}")
    assert active_route("support-summary") == Route("support-summary", SONNET, HAIKU)


def test_remove_the_default_route(demo):
    set_route(feature="", model=OPUS, fallback_model=HAIKU)
    out = run("remove", "--feature", "", "--reason", "settings", "--user", "demo")
    assert f"(default): route removed; uses {SONNET}, fallback {HAIKU} (the settings)" in out
    assert active_route("anything").model == SONNET


@pytest.mark.parametrize("feature", ["never-routed", ""])
def test_remove_a_route_that_does_not_exist(demo, feature):
    before = ModelRouteChange.objects.count()
    refused(
        "remove", "--feature", feature, "--reason", "r", "--user", "demo",
        match="--feature: .* has no route of its own",
    )  # fmt: skip
    assert ModelRouteChange.objects.count() == before


def test_remove_needs_a_feature(demo):
    refused("remove", "--reason", "r", match="remove needs --feature")
