"""The rollback switch in a real headless Chromium, as the person on call uses it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from django.db import connections

import django_claude
from django_claude.models import ModelRoute, ModelRouteChange
from django_claude.routing import set_route

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts"
SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"


@pytest.fixture
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("needs playwright (pip install -e '.[test]')")
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            raise AssertionError("CI must install Debian's chromium (see .ci/run)")
        pytest.skip("needs Debian's chromium: apt-get install -y chromium")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_flip_and_roll_back_in_the_admin(
    browser, live_server, fake_anthropic, django_user_model, monkeypatch
):
    # Playwright's sync API runs an event loop in this thread; the ORM calls
    # below are still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django_user_model.objects.create_superuser("oncall", "oncall@example.com", "s3cret-pw")
    set_route(feature="support", model=SONNET, fallback_model=HAIKU, reason="launch")
    route = ModelRoute.objects.get(feature="support")
    page = browser.new_page(viewport={"width": 1400, "height": 1000})

    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "oncall")
    page.fill("#id_password", "s3cret-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    # flip the route to Opus
    page.goto(f"{live_server.url}/admin/django_claude/modelroute/{route.pk}/change/")
    page.fill("#id_model", OPUS)
    page.fill("#id_reason", "try opus for support")
    page.click("input[name=_continue]")
    page.wait_for_selector(".messagelist")
    assert page.input_value("#id_model") == OPUS
    assert "try opus for support" in page.content()  # in the history below the form
    assert django_claude.call("hi", feature="support").model == OPUS

    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "route-change-page.png"), full_page=True)

    # roll it back through the confirmation page
    page.click("#claude-rollback")
    page.wait_for_selector("#claude-rollback-plan")
    assert "Roll back support?" in page.content()
    page.fill("#id_reason", "opus answers too long")
    page.click("#claude-confirm-rollback")
    page.wait_for_selector(".messagelist .success")
    assert page.input_value("#id_model") == SONNET
    page.screenshot(path=str(ARTIFACTS / "route-after-rollback.png"), full_page=True)

    undo = ModelRouteChange.objects.latest("id")
    assert undo.is_rollback and undo.reason == "opus answers too long"
    assert undo.changed_by.username == "oncall"
    assert django_claude.call("hi", feature="support").model == SONNET

    page.goto(f"{live_server.url}/admin/django_claude/modelroute/")
    page.screenshot(path=str(ARTIFACTS / "route-list.png"), full_page=True)
    assert "support" in page.content()
    # Playwright's loop gives this thread another context for Django's
    # connection handles: close the ones the test opened in it.
    connections.close_all()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_dashboard_in_the_browser(
    browser, live_server, fake_anthropic, django_user_model, monkeypatch
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django_user_model.objects.create_superuser("viewer", "viewer@example.com", "s3cret-pw")
    fake_anthropic.script("claude-sonnet-4-6", [529] * 4)
    for i in range(6):
        django_claude.call(f"question {i}", feature="support" if i % 2 else "chat")
    page = browser.new_page(viewport={"width": 1400, "height": 1100})
    page.goto(f"{live_server.url}/admin/login/?next=/admin/django_claude/")
    page.fill("#id_username", "viewer")
    page.fill("#id_password", "s3cret-pw")
    page.click("input[type=submit]")
    page.click("#claude-dashboard-link a")
    page.wait_for_selector("#chart-cost svg")
    labels = page.eval_on_selector_all(
        "figure svg", "els => els.map(e => e.getAttribute('aria-label'))"
    )
    assert labels == [
        "Cost per day by feature (USD)",
        "Calls per day by outcome",
        "Latency per day (average, ms)"
        if "average" in page.content()
        else "Latency per day (p50, ms)",
        "Smell-test pass rate per day (%), model changes marked",
    ]
    assert page.inner_text("#claude-total-calls") == "6"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/django_claude/callrecord/")
    assert page.locator("#result_list tbody tr").count() == 6
    page.screenshot(path=str(ARTIFACTS / "call-records.png"), full_page=True)
    connections.close_all()
