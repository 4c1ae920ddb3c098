from __future__ import annotations

from django.contrib import admin
from django.urls import path

from example import views

urlpatterns = [
    path("", views.ask, name="ask"),
    path("stream/", views.stream_answer, name="stream"),
    path("astream/", views.astream_answer, name="astream"),
    path("admin/", admin.site.urls),
]
