"""Settings of the benchmarks' site: as in production, from the environment.

- ``SITE_DATABASE``: ``postgres`` (``SITE_PG_URL``) or ``sqlite``
  (``SITE_SQLITE``, a file, ``IMMEDIATE`` transactions so records are written
  behind). ``both``: PostgreSQL as ``default`` and SQLite as ``sqlite``, with
  a router that sends django-claude's reads and writes to the one
  ``benchmarks.site.routers.use()`` names (how ``peers.py`` interleaves the
  two in one process).
- ``SITE_CACHE``: a ``redis://`` URL (Django's ``RedisCache``) or ``locmem``.
- ``SITE_API``: the fake Messages API; ``SITE_CALL_LOG``: the call log file,
  appended by django-claude (``DJANGO_CLAUDE_CALL_LOG``), or with
  ``SITE_CALL_LOG_TO=logger`` by a ``FileHandler`` on its logger.

DEBUG off, persistent connections, the smell test at its default rate (1%).
"""

from __future__ import annotations

import os

SECRET_KEY = "benchmarks-site-not-secret"
DEBUG = False
USE_TZ = True
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_claude"]
MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
]
ROOT_URLCONF = "benchmarks.site.app"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
SILENCED_SYSTEM_CHECKS = ["django_claude.W003"]  # SITE_CACHE=locmem, in the smoke tests


def _postgres() -> dict:
    import environ  # django-environ, in the test and example extras

    database = environ.Env.db_url_config(
        os.environ.get("SITE_PG_URL", "postgres://postgres@127.0.0.1:5432/django_claude_peers")
    )
    database["CONN_MAX_AGE"] = 600
    database["CONN_HEALTH_CHECKS"] = True
    return database


def _sqlite() -> dict:
    return {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("SITE_SQLITE", "site-bench.sqlite3"),
        "CONN_MAX_AGE": 600,
        # IMMEDIATE: what lets records be written behind on SQLite.
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE"},
    }


_which = os.environ.get("SITE_DATABASE", "postgres")
if _which == "both":
    DATABASES = {"default": _postgres(), "sqlite": _sqlite()}
    DATABASE_ROUTERS = ["benchmarks.site.routers.Switch"]
elif _which == "sqlite":
    DATABASES = {"default": _sqlite()}
else:
    DATABASES = {"default": _postgres()}

_cache = os.environ.get("SITE_CACHE", "redis://127.0.0.1:6379/11")
CACHES = {
    "default": (
        {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
        if _cache == "locmem"
        else {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": _cache}
    )
}

DJANGO_CLAUDE_BASE_URL = os.environ.get("SITE_API", "http://127.0.0.1:9")
DJANGO_CLAUDE_API_KEY = "sk-ant-bench-0000"
# DJANGO_CLAUDE_SMELL_TEST_RATE: not set, the default 1% of calls is judged.

# The call log: appended by django-claude itself (DJANGO_CLAUDE_CALL_LOG, what
# the README recommends in production), or with SITE_CALL_LOG_TO=logger by a
# FileHandler on the django_claude.calls logger.
CALL_LOG = os.environ.get("SITE_CALL_LOG", "site-bench-calls.log")
LOGGING: dict[str, object] = {"version": 1, "disable_existing_loggers": False}
if os.environ.get("SITE_CALL_LOG_TO", "file") == "file":
    DJANGO_CLAUDE_CALL_LOG = CALL_LOG
else:
    LOGGING["formatters"] = {"line": {"format": "%(message)s"}}
    LOGGING["handlers"] = {
        "calls": {"class": "logging.FileHandler", "filename": CALL_LOG, "formatter": "line"}
    }
    LOGGING["loggers"] = {
        "django_claude.calls": {"handlers": ["calls"], "level": "INFO", "propagate": False}
    }
