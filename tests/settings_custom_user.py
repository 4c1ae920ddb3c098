"""tests.settings with a custom user model (``CUSTOM_USER_MODEL``) and a fresh
database: ``CUSTOM_USER_DB`` is a SQLite file path or a PostgreSQL URL."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS, env

INSTALLED_APPS = [*INSTALLED_APPS, "tests.custom_users"]
AUTH_USER_MODEL = os.environ.get("CUSTOM_USER_MODEL", "custom_users.UuidUser")
_DB = os.environ["CUSTOM_USER_DB"]
DATABASES = {
    "default": (
        env.db_url_config(_DB)
        if _DB.startswith("postgres")
        else {"ENGINE": "django.db.backends.sqlite3", "NAME": _DB}
    )
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
