from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from django_claude import routing
from django_claude.client.breaker import local_view
from django_claude.recording import pricing
from tests.celery_app import app as celery_app  # noqa: F401 (the current Celery app)


class CallLines(logging.Handler):
    """Collects the JSON lines of the django_claude.calls logger."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    @property
    def lines(self) -> list[dict[str, Any]]:
        return [json.loads(r.getMessage()) for r in self.records]

    @property
    def raw(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


@pytest.fixture
def call_lines() -> Iterator[CallLines]:
    handler = CallLines()
    logger = logging.getLogger("django_claude.calls")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


@pytest.fixture(autouse=True)
def _fresh_process_state() -> Iterator[None]:
    """Prices and routes are memoised per process; tests start from the database."""
    pricing.invalidate()
    pricing._warned.clear()
    routing.reset_route_table()
    local_view.forget()  # breaker states this process read
    yield
    pricing.invalidate()
    routing.reset_route_table()
    local_view.forget()


@pytest.fixture
def claude(fake_anthropic, call_lines, db):
    """The fake API, the call log, and a database: what most call tests need."""
    return fake_anthropic


def away_from_a_window_edge(margin: float = 10.0) -> None:
    """Wait, if need be, until the current minute (and so hour and day, in
    UTC) has ``margin`` seconds left: a test whose calls must share one quota
    window never straddles the top of a minute, where a fresh window begins."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.05)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Service markers skip only when the service's variable is unset (never in CI)."""
    import os

    database_url = os.environ.get("DATABASE_URL", "")
    for item in items:
        if "redis" in item.keywords and not os.environ.get("CACHE_URL", "").startswith("redis"):
            item.add_marker(pytest.mark.skip(reason="needs Redis: set CACHE_URL=redis://..."))
        if "postgres" in item.keywords and not database_url.startswith("postgres"):
            item.add_marker(pytest.mark.skip(reason="needs PostgreSQL: set DATABASE_URL"))
