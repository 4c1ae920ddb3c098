"""pytest plugin (registered through the ``pytest11`` entry point).

``fake_anthropic``: a running ``FakeAnthropic`` that django_claude is pointed
at for the test, with its script and request log reset, the circuit breakers
and cached answers cleared, backoff made instant and the smell-test sampling
off (``call(..., smell_test=True)`` still forces a judged call).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from django_claude.testing.server import FakeAnthropic


@pytest.fixture(scope="session")
def _fake_anthropic_server() -> Iterator[FakeAnthropic]:
    server = FakeAnthropic().start()
    yield server
    server.stop()


@pytest.fixture
def fake_anthropic(
    _fake_anthropic_server: FakeAnthropic, settings: object
) -> Iterator[FakeAnthropic]:
    """The fake Messages API, with django_claude's settings pointing at it."""
    from django.core.cache import caches

    from django_claude.conf import conf
    from django_claude.routing import reset_route_table

    server = _fake_anthropic_server
    server.reset()
    settings.DJANGO_CLAUDE_BASE_URL = server.url  # type: ignore[attr-defined]
    settings.DJANGO_CLAUDE_API_KEY = "sk-ant-test-fake-key-0000"  # type: ignore[attr-defined]
    settings.DJANGO_CLAUDE_BACKOFF_BASE = 0.0  # type: ignore[attr-defined]
    # No random judge calls in tests: force one with call(..., smell_test=True).
    settings.DJANGO_CLAUDE_SMELL_TEST_RATE = 0.0  # type: ignore[attr-defined]
    settings.DJANGO_CLAUDE_SMELL_TEST_RATES = {}  # type: ignore[attr-defined]
    caches[conf.CACHE].clear()
    reset_route_table()
    yield server
    caches[conf.CACHE].clear()
    reset_route_table()
    server.reset()
