"""tests.settings with a custom user model (``CUSTOM_USER_MODEL``) and a file database."""

from __future__ import annotations

import os

from tests.settings import *  # noqa: F403
from tests.settings import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.custom_users"]
AUTH_USER_MODEL = os.environ.get("CUSTOM_USER_MODEL", "custom_users.UuidUser")
DATABASES = {
    "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": os.environ["CUSTOM_USER_DB"]}
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
