"""pytest plugin (registered through the ``pytest11`` entry point).

``fake_anthropic``: a running ``FakeAnthropic`` that django_claude is pointed
at for the test, with its script and request log reset, the circuit breakers
and cached answers cleared, backoff made instant and the smell-test sampling
off (``call(..., smell_test=True)`` still forces a judged call). Clearing
deletes django-claude's own keys only (``django_claude:...``): a cache shared
with the rest of the site, or with other apps, keeps every other key.

Records written inside a pytest-django database test's transaction go into
it and roll back with the test (``records_in_test_transaction``); records
from an ``atomic()`` of the code under test outlive its rollback, as in
production.
"""

from __future__ import annotations

import contextlib
import re
import sys
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from django_claude.testing.server import FakeAnthropic

if TYPE_CHECKING:
    from django.core.cache.backends.base import BaseCache

CLAUDE_KEY_PREFIX = "django_claude:"  # every key django-claude puts in a cache starts so
_DELETE_BATCH = 500

# (key, version) django-claude was seen using on caches that cannot list their
# keys (memcached, files): what is deleted from them.
_seen_keys: set[tuple[str, int | None]] = set()


# -- a test's transaction --------------------------------------------------------------


def _aliases_in_atomic() -> set[str]:
    from django.apps import apps

    if not apps.ready:
        return set()
    from django.db import connections

    return {c.alias for c in connections.all(initialized_only=True) if c.in_atomic_block}


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: pytest.FixtureRequest) -> Iterator[Any]:
    """A transaction that one of pytest-django's fixtures opens is the test's:
    records written in it roll back with it. (Django offers no public way to
    tell a ``TestCase``'s atomic block from the caller's own.)"""
    if not getattr(fixturedef.func, "__module__", "").startswith("pytest_django."):
        return (yield)
    before = _aliases_in_atomic()
    result = yield
    opened = _aliases_in_atomic() - before
    if opened:
        from django_claude.recording.transactions import records_in_test_transaction

        marking = contextlib.ExitStack()
        marking.enter_context(records_in_test_transaction(using=opened))
        fixturedef.addfinalizer(marking.close)  # runs before the fixture's own teardown
    return result


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> None:
    """Rows the background writer still holds are written before the test's
    database is reset (``DJANGO_CLAUDE_WRITE_BEHIND = True`` in a test), so
    none lands in the next test's."""
    writer = sys.modules.get("django_claude.recording.writer")
    if writer is not None:
        writer.flush_pending(10.0)


# -- django-claude's cache keys -------------------------------------------------------------


def _made_prefix(cache: BaseCache) -> str | None:
    """The backend key of ``django_claude:``, when the key function keeps the
    key as its suffix (Django's default does: ``prefix:version:key``)."""
    made = cache.make_key(CLAUDE_KEY_PREFIX)
    if not isinstance(made, str) or cache.make_key(CLAUDE_KEY_PREFIX + "x") != made + "x":
        return None
    return made


def _redis_keys(cache: Any, made: str) -> list[str]:
    glob = re.sub(r"([*?\[\]\\])", r"\\\1", made) + "*"
    client = cache._cache.get_client(write=True)
    return [
        key.decode() if isinstance(key, bytes) else key
        for key in client.scan_iter(match=glob, count=_DELETE_BATCH)
    ]


def _locmem_keys(cache: Any, made: str) -> list[str]:
    with cache._lock:
        return [key for key in cache._cache if key.startswith(made)]


def _database_keys(cache: Any, made: str) -> list[str]:
    from django.db import connections, router

    connection = connections[router.db_for_read(cache.cache_model_class)]
    table = connection.ops.quote_name(cache._table)
    like = re.sub(r"([!%_])", r"!\1", made) + "%"
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT cache_key FROM {table} WHERE cache_key LIKE %s ESCAPE '!'", [like])
        rows = cursor.fetchall()
    # LIKE ignores case on some databases.
    return [key for (key,) in rows if key.startswith(made)]


def _key_lister(cache: BaseCache) -> Callable[[Any, str], list[str]] | None:
    """How to list this backend's keys, or None: it cannot (memcached, files)."""
    from django.core.cache.backends.db import DatabaseCache
    from django.core.cache.backends.locmem import LocMemCache
    from django.core.cache.backends.redis import RedisCache

    if isinstance(cache, RedisCache):
        return _redis_keys
    if isinstance(cache, LocMemCache):
        return _locmem_keys
    if isinstance(cache, DatabaseCache):
        return _database_keys
    return None


def _can_list_keys(cache: BaseCache) -> bool:
    if hasattr(cache, "delete_pattern"):  # django-redis
        return True
    return _key_lister(cache) is not None and _made_prefix(cache) is not None


def forget_claude_keys(cache: BaseCache) -> None:
    """Delete django-claude's keys (``django_claude:...``) from ``cache``, and no other.

    Redis (Django's backend and django-redis), local memory and the database
    cache lose every such key. A cache that cannot list its keys (memcached,
    files) loses the keys django-claude was seen using while ``fake_anthropic``
    was active, and the shared routes version. This process's copy of the
    breakers' state goes too.
    """
    from django_claude.client.breaker import local_view

    local_view.forget()
    if hasattr(cache, "delete_pattern"):  # django-redis: SCAN and DEL, prefix and version escaped
        cache.delete_pattern(f"{CLAUDE_KEY_PREFIX}*")
        return
    lister = _key_lister(cache)
    made = _made_prefix(cache)
    if lister is not None and made is not None:
        keys = [CLAUDE_KEY_PREFIX + key[len(made) :] for key in lister(cache, made)]
        for start in range(0, len(keys), _DELETE_BATCH):
            cache.delete_many(keys[start : start + _DELETE_BATCH])
        return
    from django_claude.routing import VERSION_KEY

    cache.delete(VERSION_KEY)
    for key, version in list(_seen_keys):
        cache.delete(key, version=version)


@contextlib.contextmanager
def _noting_claude_keys(cache: BaseCache) -> Iterator[None]:
    """On a cache that cannot list its keys, remember the django-claude keys
    used meanwhile, so that ``forget_claude_keys`` knows them."""
    if _can_list_keys(cache):
        yield
        return
    backend = type(cache)
    own = "make_key" in backend.__dict__
    original = backend.make_key

    def make_key(self: BaseCache, key: Any, version: int | None = None) -> Any:
        if isinstance(key, str) and key.startswith(CLAUDE_KEY_PREFIX):
            _seen_keys.add((key, version))
        return original(self, key, version)

    backend.make_key = make_key  # type: ignore[method-assign]
    try:
        yield
    finally:
        if own:
            backend.make_key = original  # type: ignore[method-assign]
        else:
            del backend.make_key


# -- fixtures ---------------------------------------------------------------------------------


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
    cache = caches[conf.CACHE]
    forget_claude_keys(cache)
    reset_route_table()
    with _noting_claude_keys(cache):
        yield server
    forget_claude_keys(cache)
    used = caches[conf.CACHE]
    if used is not cache:
        # The test pointed django-claude at a cache of its own (CACHES or
        # DJANGO_CLAUDE_CACHE changed): clean it too, unless it is down on purpose.
        with contextlib.suppress(Exception):
            forget_claude_keys(used)
    reset_route_table()
    server.reset()
