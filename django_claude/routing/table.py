"""Which model serves a call: the per-process route table.

``active_route`` and ``serving_route`` answer from a per-process table of
routes and running canaries. The table is reloaded from the database only
when the route version kept in the Django cache (``DJANGO_CLAUDE_CACHE``)
changes, and that version is looked at no more than once a second: a flip, a
canary's start or stop, reaches every process within about a second, and in
steady state finding a route costs no database query.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal

from django.core.cache import BaseCache, caches
from django.db import connections, router, transaction

from django_claude.conf import conf
from django_claude.models import Canary, ModelRoute
from django_claude.recording.transactions import under_test_runner
from django_claude.shared_cache import cache_op

logger = logging.getLogger("django_claude.routing")

VERSION_KEY = "django_claude:routes:version"
CHECK_EVERY = 1.0  # seconds between looks at the shared version
BUCKETS = 10_000  # a canary's share is counted in hundredths of a percent

CONTROL, CANARY = "control", "canary"


@dataclass(frozen=True)
class Route:
    """The models a call is sent to. ``arm`` and ``canary_id`` say which arm
    of the route's canary serves it (``""`` and None: the route has none)."""

    feature: str
    model: str
    fallback_model: str  # "" when there is no fallback
    arm: str = ""
    canary_id: int | None = None


@dataclass(frozen=True)
class CanaryArm:
    """A running canary as the table keeps it."""

    id: int
    model: str
    fallback_model: str  # "": the route's fallback serves the canary too
    buckets: int  # of BUCKETS: the share of keys in the canary


def in_canary(canary_id: int, key: str, buckets: int) -> bool:
    """Does ``key`` (a user or tenant reference) land in canary ``canary_id``?

    A stable hash of the canary's id and the key: the same key lands in the
    same arm on every call and in every process, and raising the share only
    moves keys into the canary, never back out. An empty key (an anonymous
    call) is drawn at random."""
    if buckets >= BUCKETS:
        return True
    if not key:
        return random.randrange(BUCKETS) < buckets
    digest = hashlib.blake2b(f"{canary_id}:{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS < buckets


def buckets_of(percent: Decimal | float | int) -> int:
    return int(Decimal(str(percent)) * BUCKETS / 100)


class _RouteTable:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.routes: dict[str, tuple[str, str]] = {}
        self.canaries: dict[str, CanaryArm] = {}
        self.version: object = None
        self.checked_at = float("-inf")
        # A change of routes made in this process has not committed yet.
        self.tentative = False

    def reset(self, *, tentative: bool = False) -> None:
        with self.lock:
            self.routes = {}
            self.canaries = {}
            self.version = None
            self.checked_at = float("-inf")
            self.tentative = tentative


_table = _RouteTable()


def _shared_version() -> object:
    """The routes' version in the shared cache; None (so: read the database)
    when the cache fails or is slow. A cache that has none yet (no route
    was ever published to it, or it was emptied) is given one, by whichever
    process looks first, before it reads the database: without one, every
    process would read the routes every second."""
    return cache_op("routes version", _version_or_claim, default=None)


def _version_or_claim(cache: BaseCache) -> object:
    version = cache.get(VERSION_KEY)
    if version is None:
        claim = f"unpublished-{uuid.uuid4().hex}"  # never equal to a published version
        version = claim if cache.add(VERSION_KEY, claim, timeout=None) else cache.get(VERSION_KEY)
    return version


def _load() -> tuple[dict[str, tuple[str, str]], dict[str, CanaryArm]]:
    routes = {
        feature: (model, fallback)
        for feature, model, fallback in ModelRoute.objects.values_list(
            "feature", "model", "fallback_model"
        )
    }
    canaries = {
        feature: CanaryArm(pk, model, fallback, buckets_of(percent))
        for pk, feature, model, fallback, percent in Canary.objects.filter(
            ended_at__isnull=True
        ).values_list("pk", "feature", "model", "fallback_model", "percent")
    }
    return routes, canaries


def _in_transaction() -> bool:
    return transaction.get_connection(router.db_for_read(ModelRoute)).in_atomic_block


def _refresh(now: float) -> None:
    with _table.lock:
        if now - _table.checked_at < CHECK_EVERY:
            return  # another thread just did it
        version = _shared_version()
        if version is None or version != _table.version:
            try:
                routes, canaries = _load()
            except Exception:  # DatabaseError, or SynchronousOnlyOperation on an event loop
                # Keep serving the routes we know, and the version they are
                # of: the next look, a second from now, loads again.
                logger.warning("claude routing: could not load routes, keeping the last known")
            else:
                _table.canaries = canaries
                _table.routes = routes
                # Rows read inside a transaction that changed routes may never
                # commit: trust them only until the next look. Rows read
                # outside any transaction are committed ones.
                if _table.tentative and not _in_transaction():
                    _table.tentative = False
                _table.version = None if _table.tentative else version
        _table.checked_at = now


def settings_route(feature: str) -> Route:
    model = conf.DEFAULT_MODEL
    fallback = conf.FALLBACK_MODEL
    return Route(feature=feature, model=model, fallback_model="" if fallback == model else fallback)


def route_table_is_fresh() -> bool:
    """True when ``active_route`` will answer from memory, with no I/O."""
    return time.monotonic() - _table.checked_at < CHECK_EVERY


# How long after its last look an event loop keeps serving the table while a
# thread looks again (past it, the caller waits for the look, as at first).
SERVED_STALE_FOR = 10 * CHECK_EVERY
_looking = threading.Lock()  # held while a thread looks again for event loops


def route_table_is_served_stale() -> bool:
    """May an event loop serve the table it has while a thread looks again?
    Once it was read (and not changed in an open transaction here), and not
    for longer than ``SERVED_STALE_FOR``: then a thread looks
    (``look_again_soon``) and no call waits for the look. Not under a test
    runner, where the routes a test sets are in its own transaction, which
    no other thread can read."""
    age = time.monotonic() - _table.checked_at
    return age < SERVED_STALE_FOR and not _table.tentative and not under_test_runner()


def look_again_soon() -> None:
    """Look at the routes again in a thread of its own, unless one is
    already looking; never blocks. (Under load, every call that found the
    table stale hopped to a thread to look, tens a second.)"""
    if not _looking.acquire(blocking=False):
        return

    def look() -> None:
        try:
            _fresh_table()
        except Exception:
            logger.warning("claude routing: could not look at the routes", exc_info=True)
        finally:
            try:
                connections.close_all()  # this thread's own, if the look opened one
            finally:
                _looking.release()

    try:
        threading.Thread(target=look, name="django-claude-routes", daemon=True).start()
    except RuntimeError:  # interpreter shutdown: no new threads
        _looking.release()


def _fresh_table(
    *, refresh: bool = True
) -> tuple[dict[str, tuple[str, str]], dict[str, CanaryArm]]:
    now = time.monotonic()
    if refresh and now - _table.checked_at >= CHECK_EVERY:
        _refresh(now)
    return _table.routes, _table.canaries


def active_route(feature: str) -> Route:
    """The route in force for ``feature``: its own row, else the default
    route (``feature=""``), else ``DJANGO_CLAUDE_DEFAULT_MODEL`` and
    ``DJANGO_CLAUDE_FALLBACK_MODEL``. A canary's share is not applied: this
    is the route its control arm is served by (see ``serving_route``)."""
    routes, _ = _fresh_table()
    found = routes.get(feature) or routes.get("")
    if found is None:
        return settings_route(feature)
    model, fallback = found
    return Route(feature=feature, model=model, fallback_model="" if fallback == model else fallback)


def serving_route(feature: str, key: str = "", *, refresh: bool = True) -> Route:
    """The route that serves one call of ``feature`` made for ``key`` (the
    user, else the tenant; ``""``: anonymous, drawn at random): the route in
    force, or its running canary for the keys that land in it. No query in
    steady state; none at all with ``refresh=False`` (on an event loop,
    once ``route_table_is_fresh`` said so)."""
    routes, canaries = _fresh_table(refresh=refresh)
    owner = feature if feature in routes else ""
    found = routes.get(owner)
    if found is None:
        return settings_route(feature)
    model, fallback = found
    canary = canaries.get(owner)
    if canary is None:
        return Route(feature, model, "" if fallback == model else fallback)
    if in_canary(canary.id, key, canary.buckets):
        fallback = canary.fallback_model or fallback
        return Route(
            feature,
            canary.model,
            "" if fallback == canary.model else fallback,
            arm=CANARY,
            canary_id=canary.id,
        )
    return Route(
        feature, model, "" if fallback == model else fallback, arm=CONTROL, canary_id=canary.id
    )


def active_route_from_db(feature: str, *, own: bool = True) -> Route:
    """The route in force for ``feature``, read from the database now; with
    ``own=False``, the one it would use without a route of its own."""
    rows = {r.feature: r for r in ModelRoute.objects.filter(feature__in=[feature, ""])}
    row = rows.get(feature) if own else None
    row = row or (rows.get("") if feature else None)
    if row is None:
        return settings_route(feature)
    return Route(feature=feature, model=row.model, fallback_model=row.fallback_model)


def reset_route_table(*, tentative: bool = False) -> None:
    """Forget this process's routes (tests, and after a local change;
    ``tentative``: one not committed yet, which may be rolled back)."""
    _table.reset(tentative=tentative)


def publish(version: int) -> None:
    """Tell every process that routes changed (run once the change commits)."""
    try:
        caches[conf.CACHE].set(VERSION_KEY, version, timeout=None)
    except Exception:
        logger.error(
            "claude routing: could not publish route version %s; other processes "
            "pick the change up when the cache is back",
            version,
        )
    reset_route_table()
