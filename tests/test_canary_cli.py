"""claude_canary: a route's canary from the shell, with the admin's audit."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

import django_claude
from django_claude.models import Canary, ModelRoute, ModelRouteChange
from django_claude.routing import set_route, start_canary
from django_claude.testing import flush_pending

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"


@pytest.fixture
def demo(db, django_user_model):
    set_route(feature="support-summary", model=SONNET, fallback_model=HAIKU)
    return django_user_model.objects.create_user("demo", password="pw")


def run(*args: str) -> str:
    out = StringIO()
    call_command("claude_canary", *args, stdout=out)
    return out.getvalue()


def test_the_help_examples_run_as_written(demo):
    said = run(
        "start", "--feature", "support-summary", "--model", OPUS, "--percent", "10%",
        "--reason", "try Opus on a tenth of ticket summaries", "--user", "demo",
    )  # fmt: skip
    assert "claude-opus-4-7 serves 10.00% of calls, claude-sonnet-4-6 the rest" in said
    shown = run("show", "--feature", "support-summary")
    assert "calls: control 0, canary 0" in shown and "too few calls yet" in shown
    run(
        "percent", "--feature", "support-summary", "--percent", "50",
        "--reason", "no difference so far", "--user", "demo",
    )  # fmt: skip
    assert Canary.objects.get().percent == 50
    said = run("stop", "--feature", "support-summary", "--reason", "too long", "--user", "demo")
    assert "every call on claude-sonnet-4-6" in said
    history = ModelRouteChange.objects.filter(canary__isnull=False).order_by("id")
    assert [(h.canary_action, h.changed_by.username) for h in history] == [
        ("start", "demo"),
        ("percent", "demo"),
        ("stop", "demo"),
    ]
    assert "was stopped" in run("show", "--feature", "support-summary")


def test_promote_and_json(demo, fake_anthropic):
    start_canary(feature="support-summary", model=OPUS, percent=100)
    django_claude.call("hi", feature="support-summary", user="u1")
    flush_pending()
    data = json.loads(run("show", "--feature", "support-summary", "--format", "json"))
    assert data["canary"]["model"] == OPUS and data["calls"] == {"control": 0, "canary": 1}
    assert {f["measure"] for f in data["findings"]} >= {"failure rate", "p95 latency (ms)"}
    run("promote", "--feature", "support-summary", "--reason", "better", "--user", "demo")
    assert ModelRoute.objects.get(feature="support-summary").model == OPUS


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["start", "--feature", "support-summary", "--percent", "5"], "start needs --model"),
        (["start", "--feature", "support-summary", "--model", OPUS], "start needs --percent"),
        (["start", "--model", OPUS, "--percent", "5"], "needs --feature"),
        (
            ["start", "--feature", "support-summary", "--model", OPUS, "--percent", "500"],
            "--percent: The share must be above 0",
        ),
        (
            ["start", "--feature", "support-summary", "--model", SONNET, "--percent", "5"],
            "--model: 'claude-sonnet-4-6' already serves this route",
        ),
        (["stop", "--feature", "support-summary"], "no canary is running"),
        (["promote", "--feature", "nowhere"], "no canary is running"),
        (
            ["start", "--feature", "support-summary", "--model", OPUS, "--percent", "5"],
            'start needs --reason "why"',
        ),
        (["show", "--feature", "x\x00y"], "--feature: contains a NUL character"),
    ],
)
def test_mistakes_are_clear_errors_and_change_nothing(demo, args, message):
    reason = [] if "needs --reason" in message else ["--reason", "r"]
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        run(*args, *reason, "--user", "demo")
    assert not Canary.objects.exists()
