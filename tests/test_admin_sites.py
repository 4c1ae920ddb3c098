"""The app's admin on a site of its own: every link and redirect stays there."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import path

import django_claude
from django_claude.admin import (
    CallRecordAdmin,
    ModelRouteAdmin,
    ModelRouteChangeAdmin,
    SmellFailureAdmin,
)
from django_claude.models import (
    CallRecord,
    ModelRoute,
    ModelRouteChange,
    SmellFailure,
)
from django_claude.routing import active_route, set_route

SONNET, HAIKU, OPUS = "claude-sonnet-4-6", "claude-haiku-4-5-20251001", "claude-opus-4-7"

other_site = admin.AdminSite(name="other")
other_site.register(CallRecord, CallRecordAdmin)
other_site.register(ModelRoute, ModelRouteAdmin)
other_site.register(ModelRouteChange, ModelRouteChangeAdmin)
other_site.register(SmellFailure, SmellFailureAdmin)

# A site that shows failed answers but not the call records they link to.
failures_site = admin.AdminSite(name="failures")
failures_site.register(SmellFailure, SmellFailureAdmin)

urlpatterns = [
    path("admin/", admin.site.urls),
    path("other/", other_site.urls),
    path("failures/", failures_site.urls),
]

pytestmark = pytest.mark.urls(__name__)


@pytest.fixture
def route(db) -> ModelRoute:
    set_route(feature="support", model=SONNET, fallback_model=HAIKU)
    set_route(feature="support", model=OPUS, fallback_model=HAIKU, reason="try opus")
    return ModelRoute.objects.get(feature="support")


def stays_on_other_site(page: str) -> bool:
    """Links into the admin on the page all go to /other/ (the default site is /admin/)."""
    return 'href="/other/' in page and 'href="/admin/' not in page


def test_rollback_link_page_and_redirect(admin_client, route):
    change = f"/other/django_claude/modelroute/{route.pk}/change/"
    rollback = f"/other/django_claude/modelroute/{route.pk}/rollback/"
    change_page = admin_client.get(change).content.decode()
    assert f'href="{rollback}"' in change_page and stays_on_other_site(change_page)

    confirmation = admin_client.get(rollback)
    assert confirmation.status_code == 200
    page = confirmation.content.decode()
    assert f'href="{change}"' in page and stays_on_other_site(page)

    done = admin_client.post(rollback, {"reason": "opus misbehaves"})
    assert done.status_code == 302 and done["Location"] == change
    assert active_route("support").model == SONNET


def test_rollback_action_confirmation(admin_client, route):
    confirm = admin_client.post(
        "/other/django_claude/modelroute/",
        {"action": "rollback_selected", "_selected_action": [str(route.pk)]},
    )
    assert confirm.status_code == 200 and b"Yes, roll back" in confirm.content
    assert stays_on_other_site(confirm.content.decode())


def test_dashboard_and_record_pages(claude, admin_client, route):
    result = django_claude.call("hi", feature="support")
    dashboard = "/other/django_claude/callrecord/dashboard/"
    app_index = admin_client.get("/other/django_claude/").content.decode()
    assert f'href="{dashboard}"' in app_index
    listing = admin_client.get("/other/django_claude/callrecord/").content.decode()
    assert f'href="{dashboard}"' in listing and stays_on_other_site(listing)
    page = admin_client.get(dashboard)
    assert page.status_code == 200 and stays_on_other_site(page.content.decode())
    record = admin_client.get(f"/other/django_claude/callrecord/{result.request_id}/change/")
    assert f'href="/other/django_claude/modelroute/{route.pk}/change/"' in record.content.decode()


def test_failure_links_to_its_call_only_where_calls_are_shown(claude, admin_client):
    result = django_claude.call("hi", feature="support")
    SmellFailure.objects.create(
        call_id=result.request_id, feature="support", prompt="p", response="r"
    )
    record = f"/django_claude/callrecord/{result.request_id}/change/"
    other = admin_client.get("/other/django_claude/smellfailure/").content.decode()
    assert f'href="/other{record}"' in other
    failures = admin_client.get("/failures/django_claude/smellfailure/")
    assert failures.status_code == 200
    assert record not in failures.content.decode()
    assert str(result.request_id) in failures.content.decode()


def test_each_sites_index_lists_its_own_dashboard(admin_client, db):
    index = admin_client.get("/other/").content.decode()
    assert 'href="/other/django_claude/callrecord/dashboard/"' in index
    assert stays_on_other_site(index)
    # a site without call records has no dashboard to list
    failures = admin_client.get("/failures/").content.decode()
    assert "callrecord/dashboard" not in failures and "model-dashboard" not in failures
