"""``CoveringIndex``: INCLUDE on PostgreSQL, a plain index elsewhere, no models.W040."""

from __future__ import annotations

import pytest
from django.db import connection

from django_claude.indexes import CoveringIndex
from django_claude.models import CallRecord

COVERING = ("model", "outcome", "cost_usd")


def index() -> CoveringIndex:
    return CoveringIndex(fields=["feature", "created_at"], name="dc_test_cover", covering=COVERING)


def create_sql(one) -> str:
    editor = connection.schema_editor(collect_sql=True)  # not entered: no DDL runs
    return str(one.create_sql(CallRecord, editor))


@pytest.mark.django_db
def test_include_only_where_the_database_has_it():
    sql = create_sql(index())
    if connection.features.supports_covering_indexes:
        assert 'INCLUDE ("model", "outcome", "cost_usd")' in sql
    else:
        assert "INCLUDE" not in sql
    assert '"feature", "created_at"' in sql


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_gets_the_same_sql_as_models_index_include():
    from django.db import models

    plain = models.Index(fields=["feature", "created_at"], name="dc_test_cover", include=COVERING)
    assert create_sql(index()) == create_sql(plain)


@pytest.mark.django_db
def test_no_w040_where_covering_indexes_are_missing(monkeypatch):
    from django.db import models

    def warnings(indexes):
        monkeypatch.setattr(CallRecord._meta, "indexes", indexes)
        return {m.id for m in CallRecord.check(databases=["default"])}

    assert "models.W040" not in warnings([index()])
    plain = models.Index(fields=["feature"], name="dc_test_plain", include=COVERING)
    if not connection.features.supports_covering_indexes:  # SQLite: what it replaces
        assert "models.W040" in warnings([plain])


def test_deconstruct_round_trips():
    path, args, kwargs = index().deconstruct()
    assert path == "django_claude.indexes.CoveringIndex"
    assert kwargs["covering"] == COVERING and "include" not in kwargs
    assert CoveringIndex(*args, **kwargs) == index()
    assert index().clone() == index()


def test_mistakes_are_refused():
    with pytest.raises(ValueError, match="covering="):
        CoveringIndex(fields=["feature"], name="x", include=["model"])
    with pytest.raises(ValueError, match="named"):
        CoveringIndex(fields=["feature"], covering=["model"])
