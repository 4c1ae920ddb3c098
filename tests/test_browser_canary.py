"""A canary in a real headless Chromium: started from the route's page, both
arms filling as calls arrive, then stopped."""

from __future__ import annotations

import pytest

import django_claude
from django_claude.models import Canary, ModelRoute, ModelRouteChange
from django_claude.routing import serving_route, set_route
from tests.test_browser import browser  # noqa: F401  (the Chromium fixture)

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"


def _arm_calls(page) -> dict[str, int]:
    row = page.locator('#claude-canary-arms tr[data-measure="calls"]')
    return {
        "control": int(row.locator(".claude-arm-control").inner_text()),
        "canary": int(row.locator(".claude-arm-canary").inner_text()),
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_start_watch_and_stop_a_canary_in_the_admin(
    browser,  # noqa: F811
    live_server,
    fake_anthropic,
    django_user_model,
    monkeypatch,
):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    django_user_model.objects.create_superuser("oncall", "oncall@example.com", "s3cret-pw")
    set_route(feature="support", model=SONNET, fallback_model=HAIKU, reason="launch")
    route = ModelRoute.objects.get(feature="support")
    change_url = f"{live_server.url}/admin/django_claude/modelroute/{route.pk}/change/"
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", "oncall")
    page.fill("#id_password", "s3cret-pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")

    page.goto(change_url)
    assert "No canary is running on this route." in page.inner_text("#claude-canary")
    page.click("#claude-canary-start")
    page.fill("#id_model", OPUS)
    page.fill("#id_percent", "30")
    page.fill("#id_reason", "try opus on a third")
    page.click("#claude-confirm-canary")
    page.wait_for_selector(".messagelist")
    assert "Started a canary on support" in page.inner_text(".messagelist")
    assert _arm_calls(page) == {"control": 0, "canary": 0}

    for n in range(60):
        django_claude.call("hi", feature="support", user=f"customer-{n}")
    page.reload()
    calls = _arm_calls(page)
    assert calls["control"] > 0 and calls["canary"] > 0
    assert calls["control"] + calls["canary"] == 60
    assert "too few calls yet" in page.inner_text("#claude-canary-arms")

    page.click("#claude-canary-stop")
    assert "Stopping sends every call of support back to" in page.inner_text("#content")
    page.fill("#id_reason", "seen enough")
    page.click("#claude-confirm-canary")
    page.wait_for_selector(".messagelist")
    assert "No canary is running on this route." in page.inner_text("#claude-canary")
    assert "seen enough" in page.inner_text("#claude-past-canaries")
    canary = Canary.objects.get()
    assert canary.status == "stopped" and canary.ended_by.username == "oncall"
    assert list(
        ModelRouteChange.objects.filter(canary=canary).values_list("canary_action", flat=True)
    ) == ["stop", "start"]
    assert serving_route("support", "user:customer-1").model == SONNET
