"""The cache django-claude shares between processes, with a time budget.

Breaker state, the routes' version, stored answers and smell-test stashes
live in ``DJANGO_CLAUDE_CACHE``. A cache server that is up but does not
answer must not eat a call's deadline: every operation gets at most
``DJANGO_CLAUDE_CACHE_BUDGET`` seconds (0.2 by default), then the call goes
on as if the cache were empty (breaker closed, no stored answer, routes
from the last good copy). One slow or failing operation marks the cache
down for ``COOLDOWN`` seconds, said once in the log; meanwhile operations
return their default at once, and the first one after the cooldown probes.

The local-memory cache cannot hang, so it is called directly; other caches
are called from a small pool of threads so that a hung socket can be left
behind, except by work that bounds its own sockets' time (``cache_op_here``:
a quota's reservation on Redis).
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.cache import BaseCache, caches
from django.core.cache.backends.locmem import LocMemCache

from django_claude.conf import conf

logger = logging.getLogger(__name__)

T = TypeVar("T")
COOLDOWN = 5.0
WORKERS = 4


class _Workers:
    """A few daemon threads that run cache operations: one stuck on a hung
    socket is left behind without holding up the caller or the process's exit
    (``ThreadPoolExecutor`` joins its threads at exit)."""

    def __init__(self) -> None:
        self.jobs: queue.SimpleQueue[tuple[concurrent.futures.Future[Any], Callable[[], Any]]]
        self.jobs = queue.SimpleQueue()
        self.started = 0
        self.lock = threading.Lock()

    def submit(self, fn: Callable[[], T]) -> concurrent.futures.Future[T]:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self.jobs.put((future, fn))
        with self.lock:
            if self.started < WORKERS:
                self.started += 1
                name = f"django-claude-cache-{self.started}"
                threading.Thread(target=self._work, name=name, daemon=True).start()
        return future

    def _work(self) -> None:
        while True:
            future, fn = self.jobs.get()
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)


class _Health:
    """Whether the shared cache answers, and the threads that ask it."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.down_until = 0.0
        self.workers = _Workers()

    def trip(self, operation: str, why: str) -> None:
        with self.lock:
            already_down = self.down_until > time.monotonic()
            self.down_until = time.monotonic() + COOLDOWN
        if not already_down:
            logger.warning(
                "claude cache %r %s on %s: carrying on without it for %.0fs",
                conf.CACHE,
                why,
                operation,
                COOLDOWN,
            )

    def recovered(self) -> None:
        if self.down_until:
            with self.lock:
                self.down_until = 0.0
            logger.info("claude cache %r answers again", conf.CACHE)

    def after_fork(self) -> None:
        self.__init__()  # type: ignore[misc]  # the parent's threads do not exist here


_health = _Health()
os.register_at_fork(after_in_child=_health.after_fork)


# One backend instance per alias for the worker threads, when the backend is
# known to be thread-safe (Redis: one connection pool for the process, not
# one per thread); others get Django's per-thread instance.
_THREAD_SAFE = ("django.core.cache.backends.redis.", "django_redis.")
_shared_instances: dict[str, tuple[object, BaseCache]] = {}


def _for_workers(alias: str) -> BaseCache:
    config = caches.settings.get(alias)
    kept = _shared_instances.get(alias)
    if kept is not None and kept[0] is config:  # the same CACHES entry as before
        return kept[1]
    backend = str((config or {}).get("BACKEND", ""))
    if not backend.startswith(_THREAD_SAFE):
        return caches[alias]
    instance = caches.create_connection(alias)
    _shared_instances[alias] = (config, instance)
    return instance


def _in_memory(operation: str, fn: Callable[[BaseCache], T], cache: BaseCache, default: T) -> T:
    """``fn(cache)`` for a local-memory cache: at once, never marked down."""
    try:
        return fn(cache)
    except Exception as exc:
        logger.warning("claude cache %s failed (%s)", operation, type(exc).__name__)
        return default


def cache_op(
    operation: str,
    fn: Callable[[BaseCache], T],
    *,
    default: T,
    budget: float | None = None,
    force: bool = False,
    late: Callable[[T], None] | None = None,
) -> T:
    """``fn(cache)`` within ``budget`` seconds (default ``CACHE_BUDGET``);
    ``default`` if the cache fails, is slow or is marked down. Never raises.

    ``force``: try even while the cache is marked down (work that must not be
    dropped, such as giving back a quota's reservation). ``late(result)``:
    called in the worker if ``fn`` finishes after the caller gave up on it
    (to undo what the caller was told did not happen)."""
    alias = conf.CACHE
    try:
        cache = caches[alias]
    except Exception:
        _health.trip(operation, "is not configured")
        return default
    if isinstance(cache, LocMemCache):
        return _in_memory(operation, fn, cache, default)
    if _health.down_until > time.monotonic() and not force:
        return default
    future = _health.workers.submit(lambda: fn(_for_workers(alias)))
    budget = conf.CACHE_BUDGET if budget is None else budget
    try:
        value = future.result(timeout=budget)
    except concurrent.futures.TimeoutError:
        _health.trip(operation, f"did not answer within {budget:g}s")
        if late is not None:
            future.add_done_callback(lambda done: _run_late(done, late))
        return default
    except Exception as exc:
        _health.trip(operation, f"failed ({type(exc).__name__})")
        return default
    _health.recovered()
    return value


def _run_late(done: concurrent.futures.Future[T], late: Callable[[T], None]) -> None:
    if done.cancelled() or done.exception() is not None:
        return
    try:
        late(done.result())
    except Exception:
        logger.warning("claude cache: undoing a late operation failed", exc_info=True)


def cache_op_here(operation: str, fn: Callable[[BaseCache], T], *, default: T) -> T:
    """``fn(cache)`` in the caller's thread: for work whose client bounds its
    own time (a socket timeout) and would pay more for the hop to a worker
    than for the round trip. ``default`` while the cache is marked down or if
    ``fn`` raises (which marks it down). Never raises. A local-memory cache
    is never marked down (as in ``cache_op``): it cannot be away, and a mark
    left by another cache must not stop it."""
    try:
        cache = _for_workers(conf.CACHE)
    except Exception as exc:  # not configured
        _health.trip(operation, f"failed ({type(exc).__name__})")
        return default
    if isinstance(cache, LocMemCache):
        return _in_memory(operation, fn, cache, default)
    if _health.down_until > time.monotonic():
        return default
    try:
        value = fn(cache)
    except Exception as exc:
        _health.trip(operation, f"failed ({type(exc).__name__})")
        return default
    _health.recovered()
    return value


def cache_op_later(operation: str, fn: Callable[[BaseCache], Any], *, force: bool = False) -> None:
    """``fn(cache)`` without waiting for it (the local-memory cache: now).
    For work that must not block, such as the event loop's; never raises.
    ``force``: even while the cache is marked down."""
    alias = conf.CACHE
    try:
        cache = caches[alias]
    except Exception:
        _health.trip(operation, "is not configured")
        return
    if isinstance(cache, LocMemCache):
        cache_op(operation, fn, default=None)
        return
    if _health.down_until > time.monotonic() and not force:
        return

    def run() -> None:
        try:
            fn(_for_workers(alias))
        except Exception as exc:
            _health.trip(operation, f"failed ({type(exc).__name__})")

    _health.workers.submit(run)


def warm() -> None:
    """Build the cache's client now, at startup: redis-py alone takes about
    0.3 s to import, which inside a process's first call would exceed the
    cache budget and mark a healthy cache down. Connects to nothing."""
    try:
        instance = _for_workers(conf.CACHE)
        for lazy in ("_cache", "client"):  # Django's backends; django-redis
            getattr(instance, lazy, None)
    except Exception:  # a cache that cannot even be built: its first use says so
        logger.debug("claude cache %r could not be prepared", conf.CACHE, exc_info=True)


def cache_is_local() -> bool:
    """Is django-claude's cache the local-memory one (which never blocks)?"""
    try:
        return isinstance(_for_workers(conf.CACHE), LocMemCache)
    except Exception:
        return False


def reset() -> None:
    """Forget that the cache was down (tests, or after fixing it)."""
    _health.recovered()


__all__ = ["cache_is_local", "cache_op", "cache_op_here", "cache_op_later", "reset", "warm"]
