"""Benchmark settings with the admin installed (for the dashboard benchmark)."""

from __future__ import annotations

from benchmarks.settings import *  # noqa: F403

INSTALLED_APPS = [  # noqa: F405
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django_claude",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]
ROOT_URLCONF = "benchmarks.urls_admin"
SILENCED_SYSTEM_CHECKS = ["django_claude.W003", "admin.E408", "admin.E409", "admin.E410"]
