from __future__ import annotations

from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.urls import path

import django_claude


def ask_then_fail(request: HttpRequest) -> HttpResponse:
    get_user_model().objects.create(username="made-in-view")
    django_claude.call("hi", feature="atomic-view")
    raise RuntimeError("the view fails after the call")


urlpatterns = [path("ask-then-fail/", ask_then_fail)]
