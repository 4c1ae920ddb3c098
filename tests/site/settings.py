"""Settings of the test site (see ``tests/site/__init__.py``)."""

from __future__ import annotations

import os

SECRET_KEY = "site-tests-not-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_claude"]
ROOT_URLCONF = "tests.site.app"
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SITE_DB", "site.sqlite3"),
        # IMMEDIATE: what lets records be written behind on SQLite (writer.writes_behind).
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
    }
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SILENCED_SYSTEM_CHECKS = ["django_claude.W003"]

DJANGO_CLAUDE_BASE_URL = os.environ.get("SITE_API", "http://127.0.0.1:9")
DJANGO_CLAUDE_API_KEY = "sk-ant-site-tests-0000"
DJANGO_CLAUDE_SMELL_TEST_RATE = 0.0

# SITE_CALL_LOG_TO=file: the lines appended by django-claude itself
# (DJANGO_CLAUDE_CALL_LOG); otherwise by a FileHandler on django_claude.calls.
CALL_LOG = os.environ.get("SITE_CALL_LOG", "site-calls.log")
LOGGING: dict[str, object] = {"version": 1, "disable_existing_loggers": False}
if os.environ.get("SITE_CALL_LOG_TO") == "file":
    DJANGO_CLAUDE_CALL_LOG = CALL_LOG
else:
    LOGGING["formatters"] = {"line": {"format": "%(message)s"}}
    LOGGING["handlers"] = {
        "calls": {"class": "logging.FileHandler", "filename": CALL_LOG, "formatter": "line"}
    }
    LOGGING["loggers"] = {
        "django_claude.calls": {"handlers": ["calls"], "level": "INFO", "propagate": False}
    }
