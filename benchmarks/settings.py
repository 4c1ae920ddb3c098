"""Settings for the benchmarks: like a production site, DEBUG off, DATABASE_URL."""

from __future__ import annotations

import environ

env = environ.Env()

SECRET_KEY = "benchmarks-only"
DEBUG = False
USE_TZ = True
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_claude",
]
DATABASES = {"default": env.db("DATABASE_URL", default="sqlite:///bench.sqlite3")}
CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SILENCED_SYSTEM_CHECKS = ["django_claude.W003"]
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"null": {"class": "logging.NullHandler"}},
    # The line is built and handed to a handler, as in production; the
    # handler discards it so the terminal's speed is not what we measure.
    "loggers": {"django_claude.calls": {"handlers": ["null"], "level": "INFO", "propagate": False}},
}
