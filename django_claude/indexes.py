"""An index with non-key (``INCLUDE``) columns where the database has them.

``models.Index(include=...)`` makes ``manage.py check`` warn on every run on a
database without covering indexes (SQLite, MySQL, Oracle: ``models.W040``),
although Django only drops the columns there. ``CoveringIndex(covering=...)``
builds the same index: ``INCLUDE (...)`` on PostgreSQL, the plain index
elsewhere, and no warning, because Django's check only looks at ``include``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import models


class CoveringIndex(models.Index):
    """``models.Index`` whose ``covering`` columns are ``INCLUDE``d where supported."""

    def __init__(self, *args: Any, covering: Sequence[str] = (), **kwargs: Any) -> None:
        if kwargs.get("include"):
            raise ValueError("CoveringIndex takes covering=, not include=.")
        super().__init__(*args, **kwargs)
        if covering and not self.name:
            raise ValueError("A covering index must be named.")
        self.covering = tuple(covering)

    def create_sql(self, model: Any, schema_editor: Any, using: str = "", **kwargs: Any) -> Any:
        if self.covering and schema_editor.connection.features.supports_covering_indexes:
            index = models.Index(*self.expressions, **self._plain_kwargs())
            return index.create_sql(model, schema_editor, using=using, **kwargs)
        return super().create_sql(model, schema_editor, using=using, **kwargs)

    def _plain_kwargs(self) -> dict[str, Any]:
        _, _, kwargs = super().deconstruct()
        return {**kwargs, "include": self.covering}

    def deconstruct(self) -> Any:
        path, args, kwargs = super().deconstruct()
        if self.covering:
            kwargs["covering"] = self.covering
        return path, args, kwargs
