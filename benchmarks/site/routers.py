"""With ``SITE_DATABASE=both``: django-claude's tables on the database ``use()`` names."""

from __future__ import annotations

from typing import Any

from django.db.models import Model

_alias = "default"


def use(alias: str) -> None:
    """Send django-claude's reads and writes to ``alias`` from now on."""
    global _alias
    _alias = alias


class Switch:
    def db_for_read(self, model: type[Model], **hints: Any) -> str | None:
        return _alias if model._meta.app_label == "django_claude" else None

    def db_for_write(self, model: type[Model], **hints: Any) -> str | None:
        return _alias if model._meta.app_label == "django_claude" else None

    def allow_relation(self, *objs: Any, **hints: Any) -> bool | None:
        return None

    def allow_migrate(self, db: str, app_label: str, **hints: Any) -> bool | None:
        return True  # both databases get every table
