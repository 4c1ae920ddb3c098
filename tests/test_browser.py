"""The rollback switch in a real headless Chromium, as the person on call uses it."""

from __future__ import annotations

import datetime
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from django.db import connections
from django.utils import timezone

import django_claude
from django_claude.models import CallRecord, DailyCost, ModelRoute, ModelRouteChange
from django_claude.routing import rollback, set_route
from tests.prices import site_price

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
    set_route(feature="chat", model=SONNET, fallback_model=HAIKU, reason="launch")
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
        "Cost per day: tokens and tool fees (USD)",
        "Calls per day by outcome",
        "Latency per day (average, ms)"
        if "average" in page.content()
        else "Latency per day (p50, ms)",
        "Smell-test pass rate per day (%), model changes marked",
    ]
    assert page.inner_text("#claude-total-calls") == "6"
    legend = page.eval_on_selector_all(
        "#chart-quality .claude-legend-name", "els => els.map(e => e.textContent)"
    )
    assert legend == ["pass rate", "model change"]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/django_claude/callrecord/")
    assert page.locator("#result_list tbody tr").count() == 6
    page.screenshot(path=str(ARTIFACTS / "call-records.png"), full_page=True)
    connections.close_all()


FEATURES = [
    "support-triage",
    "invoice-summary",
    "search-rerank",
    "ticket-classifier",
    "onboarding-email-draft",
    "contract-clause-extraction",
    "faq-answers",
    "sales-call-notes",
    "product-description-rewrite",
    "moderation",
    "translation-fr",
    "weekly-report-digest",
]
REASONS = [
    "launch",
    "Opus answers the long contract questions better; cost is acceptable for this volume",
    "haiku is fast enough for classification and a fifth of the price",
    "rollback: sonnet-4-6 started truncating JSON in the extraction step, see incident 2026-11-19",
    "",
    "try the new snapshot for two days and compare smell-test pass rates",
]
SIZES = [(1366, 768), (1920, 1080)]
CHANGELISTS = ["callrecord", "modelroute", "modelroutechange", "dailycost", "modelprice"]


def realistic_rows(user) -> None:
    """A dozen rows a real site would show in each list."""
    models = [SONNET, HAIKU, OPUS]
    now = timezone.now()
    for i, feature in enumerate(FEATURES):
        set_route(
            feature=feature,
            model=models[i % 3],
            fallback_model=models[(i + 1) % 3],
            reason=REASONS[i % len(REASONS)],
            user=user,
        )
        if i % 2:
            set_route(
                feature=feature,
                model=models[(i + 2) % 3],
                fallback_model=models[(i + 1) % 3],
                reason=REASONS[(i + 1) % len(REASONS)],
                user=user if i % 3 else None,
            )
        if i % 4 == 3:
            rollback(feature=feature, user=user, reason=REASONS[3])
        CallRecord.objects.create(
            created_at=now - datetime.timedelta(minutes=7 * i),
            feature=feature,
            model_requested=models[i % 3],
            model=models[(i + i // 4) % 3],
            outcome=["ok", "fallback", "degraded", "cached", "error", "interrupted"][i % 6],
            attempts=1 + (i % 4 > 0),
            fallback_used=i % 6 == 1,
            latency_ms=350 + 913 * i,
            input_tokens=1200 + 48_311 * i,
            output_tokens=80 + 2_017 * i,
            cost_usd=None if i == 5 else Decimal("0.0003312345") * (1 + 37 * i),
            attempt_log=[
                {"model": models[i % 3], "latency_ms": 30_000, "error": "APITimeoutError"},
                {"model": models[(i + 1) % 3], "latency_ms": 350 + 913 * i, "status": 200},
            ][: 1 + (i % 4 > 0)],
            smell_verdict=["pass", "fail", "not_sampled", "pending", "error"][i % 5],
        )
        site_price(  # a site's own prices: a negotiated rate a quarter, per model
            models[i % 3],
            datetime.date(2026, 1 + i // 3, 1),
            str(3 - i * Decimal("0.1")),
            "15",
            "3.75",
            "6",
            "0.3",
        )
        DailyCost.objects.create(
            day=now.date() - datetime.timedelta(days=1 + i % 3),
            feature=feature,
            model=models[i % 3],
            calls=1200 * (i + 1),
            cost_usd=Decimal("12.3456789") * (i + 1),
            unpriced_calls=i % 2,
            fallback_calls=3 * i,
            degraded_calls=i,
            error_calls=i % 4,
            input_tokens=2_400_000 * (i + 1),
            output_tokens=310_000 * (i + 1),
        )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_lists_fit_a_laptop_screen(browser, live_server, django_user_model, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    reader = django_user_model.objects.create_superuser(
        "maria.gonzalez-whitfield", "reader@example.com", "s3cret-pw"
    )
    realistic_rows(reader)
    ARTIFACTS.mkdir(exist_ok=True)
    for width, height in SIZES:
        page = browser.new_page(viewport={"width": width, "height": height})
        page.goto(f"{live_server.url}/admin/login/")
        page.fill("#id_username", "maria.gonzalez-whitfield")
        page.fill("#id_password", "s3cret-pw")
        page.click("input[type=submit]")
        page.wait_for_selector("#user-tools")
        for name in CHANGELISTS:
            page.goto(f"{live_server.url}/admin/django_claude/{name}/")
            assert page.locator("#result_list tbody tr").count() >= 12, name
            page.screenshot(path=str(ARTIFACTS / f"{name}-list-{width}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), (
                f"{name} scrolls sideways at {width}x{height}"
            )
            # Django lets the table scroll inside its box: that counts too.
            results = page.evaluate(
                "(() => { const r = document.querySelector('.results');"
                " return [r.scrollWidth, r.clientWidth]; })()"
            )
            assert results[0] <= results[1], f"{name} table scrolls at {width}: {results}"
            # A model id is one word: it never breaks across lines.
            heights = page.eval_on_selector_all(
                "#result_list [class*=field-][class*=model], #result_list .claude-model",
                "cells => cells.filter(c => c.textContent.trim()).map(c => {"
                " const text = document.createRange(); text.selectNodeContents(c);"
                " return text.getBoundingClientRect().height; })",
            )
            line = page.evaluate(
                "parseFloat(getComputedStyle(document.querySelector('#result_list td')).lineHeight)"
                " || 16"
            )
            assert heights and max(heights) < 2 * line, f"{name}: a model id wraps at {width}"
        if width == SIZES[0][0]:
            page.goto(f"{live_server.url}/admin/")
            page.click("#django_claude-dashboard a")
            page.wait_for_selector("#claude-dashboard-filters")
            page.goto(f"{live_server.url}/admin/")
            page.screenshot(path=str(ARTIFACTS / "admin-index.png"), full_page=True)
            record = CallRecord.objects.filter(attempts__gt=1).first()
            page.goto(f"{live_server.url}/admin/django_claude/callrecord/{record.pk}/change/")
            assert page.locator(".claude-attempts tbody tr").count() == 2
            page.screenshot(path=str(ARTIFACTS / "call-record-page.png"), full_page=True)
        page.close()
    connections.close_all()
