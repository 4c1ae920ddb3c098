"""Which model serves a feature; flip it and roll it back, with history.

``active_route`` answers from a per-process table of routes. The table is
reloaded from the database only when the route version kept in the Django
cache (``DJANGO_CLAUDE_CACHE``) changes, and that version is looked at no more
than once a second: a flip reaches every process within about a second, and
in steady state finding a route costs no database query.
"""

from __future__ import annotations

import datetime
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from django.core.cache import caches
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from django_claude.conf import conf
from django_claude.models import ModelRoute, ModelRouteChange
from django_claude.recording import pricing
from django_claude.shared_cache import cache_op
from django_claude.signals import model_route_changed

logger = logging.getLogger(__name__)

VERSION_KEY = "django_claude:routes:version"
CHECK_EVERY = 1.0  # seconds between looks at the shared version


@dataclass(frozen=True)
class Route:
    feature: str
    model: str
    fallback_model: str  # "" when there is no fallback


class NothingToRollBack(Exception):
    """The route has no change that a rollback could undo."""


class NoRouteToRemove(Exception):
    """The feature has no route of its own, so there is nothing to remove."""


# -- reading ----------------------------------------------------------------------


class _RouteTable:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.routes: dict[str, tuple[str, str]] = {}
        self.version: object = None
        self.checked_at = float("-inf")

    def reset(self) -> None:
        with self.lock:
            self.routes = {}
            self.version = None
            self.checked_at = float("-inf")


_table = _RouteTable()


def _shared_version() -> object:
    """The routes' version in the shared cache; None (so: read the database)
    when the cache has none, fails or is slow."""
    return cache_op("routes version", lambda c: c.get(VERSION_KEY), default=None)


def _load_routes() -> dict[str, tuple[str, str]]:
    return {
        feature: (model, fallback)
        for feature, model, fallback in ModelRoute.objects.values_list(
            "feature", "model", "fallback_model"
        )
    }


def _refresh(now: float) -> None:
    with _table.lock:
        if now - _table.checked_at < CHECK_EVERY:
            return  # another thread just did it
        version = _shared_version()
        if version is None or version != _table.version:
            try:
                _table.routes = _load_routes()
            except Exception:  # DatabaseError, or SynchronousOnlyOperation on an event loop
                # Keep serving the routes we know; try again next second.
                logger.warning("claude routing: could not load routes, keeping the last known")
            _table.version = version
        _table.checked_at = now


def _settings_route(feature: str) -> Route:
    model = conf.DEFAULT_MODEL
    fallback = conf.FALLBACK_MODEL
    return Route(feature=feature, model=model, fallback_model="" if fallback == model else fallback)


def route_table_is_fresh() -> bool:
    """True when ``active_route`` will answer from memory, with no I/O."""
    return time.monotonic() - _table.checked_at < CHECK_EVERY


def active_route(feature: str) -> Route:
    """The route in force for ``feature``: its own row, else the default
    route (``feature=""``), else ``DJANGO_CLAUDE_DEFAULT_MODEL`` and
    ``DJANGO_CLAUDE_FALLBACK_MODEL``."""
    now = time.monotonic()
    if now - _table.checked_at >= CHECK_EVERY:
        _refresh(now)
    routes = _table.routes
    found = routes.get(feature) or routes.get("")
    if found is None:
        return _settings_route(feature)
    model, fallback = found
    return Route(feature=feature, model=model, fallback_model="" if fallback == model else fallback)


def reset_route_table() -> None:
    """Forget this process's routes (tests, and after a local change)."""
    _table.reset()


def _publish(version: int) -> None:
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


# -- changing ---------------------------------------------------------------------


def validate_route(*, model: str, fallback_model: str, allow_unpriced: bool = False) -> None:
    """Raise ``ValidationError`` for a route that must not be saved."""
    errors: dict[str, list[ValidationError]] = {}
    if not model or not model.strip() or model != model.strip():
        errors.setdefault("model", []).append(
            ValidationError("A model id is required, without spaces around it.", code="blank")
        )
    if fallback_model and fallback_model != fallback_model.strip():
        errors.setdefault("fallback_model", []).append(
            ValidationError("The fallback model id has spaces around it.", code="blank")
        )
    if model and fallback_model and model == fallback_model:
        errors.setdefault("fallback_model", []).append(
            ValidationError("The fallback must be a different model.", code="same_as_model")
        )
    if not errors and not allow_unpriced:
        today = datetime.date.today()
        for field, value in (("model", model), ("fallback_model", fallback_model)):
            if value and not pricing.has_price(value, on=today):
                errors.setdefault(field, []).append(
                    ValidationError(
                        f"{value!r} has no price, so its calls would be recorded with no "
                        "cost (genai-prices does not list it). Add a ModelPrice first, or confirm "
                        "that you accept it.",
                        code="unpriced",
                    )
                )
    if errors:
        raise ValidationError(errors)


def _log_entry(route: ModelRoute, route_pk: Any, user: Any, message: str, *, removed: bool) -> None:
    if user is None or not getattr(user, "pk", None):
        return
    # Imported here: a site may run without django.contrib.admin.
    from django.contrib.admin.models import CHANGE, DELETION, LogEntry
    from django.contrib.contenttypes.models import ContentType

    LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(ModelRoute),
        object_id=str(route_pk),
        object_repr=str(route)[:200],
        action_flag=DELETION if removed else CHANGE,
        change_message=message,
    )


def _lock_route(feature: str) -> ModelRoute | None:
    return ModelRoute.objects.select_for_update().filter(feature=feature).first()


def _record_change(
    route: ModelRoute,
    *,
    old: Route,
    user: Any,
    reason: str,
    is_rollback: bool,
    removed_pk: Any = None,
) -> ModelRouteChange:
    """History row, LogEntry, and (on commit) the version bump and the signal.

    ``removed_pk``: ``route`` was just deleted (it had that pk); the new
    route is what the feature falls back to."""
    removed = removed_pk is not None
    new = (
        active_route_from_db(route.feature)
        if removed
        else Route(route.feature, route.model, route.fallback_model)
    )
    change = ModelRouteChange.objects.create(
        route=None if removed else route,
        feature=route.feature,
        old_model=old.model,
        old_fallback_model=old.fallback_model,
        new_model=new.model,
        new_fallback_model=new.fallback_model,
        changed_by=user if getattr(user, "pk", None) else None,
        reason=reason[:500],
        is_rollback=is_rollback,
        is_removal=removed,
    )
    verb = "Removed" if removed else "Rolled back" if is_rollback else "Changed"
    _log_entry(
        route,
        removed_pk if removed else route.pk,
        user,
        f"{verb} model route: {old.model} -> {new.model}, fallback "
        f"{old.fallback_model or '(none)'} -> {new.fallback_model or '(none)'}"
        + (" (the default route or the settings now apply)" if removed else "")
        + (f". Reason: {reason}" if reason else ""),
        removed=removed,
    )
    transaction.on_commit(lambda: _publish(change.pk))
    transaction.on_commit(
        lambda: model_route_changed.send(
            sender=ModelRoute,
            feature=route.feature,
            old=old,
            new=new,
            user=user,
            is_rollback=is_rollback,
            is_removal=removed,
        )
    )
    reset_route_table()  # this process sees its own change at once
    return change


def _create_route(feature: str, model: str, fallback_model: str, user: Any) -> ModelRoute:
    """A new route row for ``feature``, which takes back the history the
    feature kept from a route removed before."""
    route = ModelRoute.objects.create(
        feature=feature,
        model=model,
        fallback_model=fallback_model,
        updated_by=user if getattr(user, "pk", None) else None,
    )
    ModelRouteChange.objects.filter(feature=feature, route__isnull=True).update(route=route)
    return route


def set_route(
    *,
    feature: str,
    model: str,
    fallback_model: str = "",
    user: Any = None,
    reason: str = "",
    allow_unpriced: bool = False,
) -> ModelRouteChange:
    """Point ``feature`` (``""``: the default route) at ``model``.

    Records the change in the route's history and an admin ``LogEntry``, and
    sends ``model_route_changed`` once committed. Raises ``ValidationError``.
    """
    validate_route(model=model, fallback_model=fallback_model, allow_unpriced=allow_unpriced)

    for _ in range(2):  # a concurrent first change of the same feature: retry once
        try:
            with transaction.atomic():
                route = _lock_route(feature)
                changed_by = user if getattr(user, "pk", None) else None
                if route is None:
                    # The first change of a feature: what was in force came
                    # from the default route or the settings.
                    in_force = active_route_from_db(feature)
                    route = _create_route(feature, model, fallback_model, user)
                else:
                    in_force = Route(feature, route.model, route.fallback_model)
                    route.model = model
                    route.fallback_model = fallback_model
                    route.updated_by = changed_by
                    route.save()
                return _record_change(
                    route, old=in_force, user=user, reason=reason, is_rollback=False
                )
        except IntegrityError:
            continue
    raise IntegrityError(f"could not create the route for {feature!r}")


def active_route_from_db(feature: str, *, own: bool = True) -> Route:
    """The route in force for ``feature``, read from the database now; with
    ``own=False``, the one it would use without a route of its own."""
    rows = {r.feature: r for r in ModelRoute.objects.filter(feature__in=[feature, ""])}
    row = rows.get(feature) if own else None
    row = row or (rows.get("") if feature else None)
    if row is None:
        return _settings_route(feature)
    return Route(feature=feature, model=row.model, fallback_model=row.fallback_model)


def _last_undoable(feature: str, route: ModelRoute | None, *, lock: bool) -> ModelRouteChange:
    """The change a rollback of ``feature`` undoes; raises ``NothingToRollBack``."""
    name = feature or "(default)"
    history = ModelRouteChange.objects.filter(feature=feature)
    last = (history.select_for_update() if lock else history).undoable().first()
    # Without a route row, only the removal of the route can be undone.
    if last is None or (route is None and not last.is_removal):
        if route is None and not history.exists():
            raise NothingToRollBack(f"the route {name!r} has no history")
        raise NothingToRollBack(f"the route {name!r} has nothing to undo")
    return last


def rollback_target(feature: str) -> Route:
    """What a rollback of ``feature`` would restore; raises ``NothingToRollBack``
    saying why there is nothing (no history, or nothing left to undo)."""
    last = _last_undoable(feature, ModelRoute.objects.filter(feature=feature).first(), lock=False)
    return Route(feature=feature, model=last.old_model, fallback_model=last.old_fallback_model)


def previous_route(feature: str) -> Route | None:
    """What a rollback of ``feature`` would restore, or None if nothing can be undone."""
    try:
        return rollback_target(feature)
    except NothingToRollBack:
        return None


def rollback(*, feature: str, user: Any = None, reason: str = "") -> ModelRouteChange:
    """Restore the model and fallback in force before the latest change; when
    that change removed the route, restore the removed route.

    Rolling back twice undoes the last two changes, never flip-flops between
    them. Raises ``NothingToRollBack`` when no change is left to undo.
    """
    with transaction.atomic():
        route = _lock_route(feature)
        last = _last_undoable(feature, route, lock=True)
        if route is None:
            old = active_route_from_db(feature)
            try:
                with transaction.atomic():
                    route = _create_route(feature, last.old_model, last.old_fallback_model, user)
            except IntegrityError:
                name = feature or "(default)"
                raise NothingToRollBack(f"the route {name!r} was restored meanwhile") from None
        else:
            old = Route(feature, route.model, route.fallback_model)
            route.model = last.old_model
            route.fallback_model = last.old_fallback_model
            route.updated_by = user if getattr(user, "pk", None) else None
            route.save()
        last.rolled_back = True
        last.save(update_fields=["rolled_back"])
        return _record_change(route, old=old, user=user, reason=reason, is_rollback=True)


def remove_route(*, feature: str, user: Any = None, reason: str = "") -> ModelRouteChange:
    """Delete ``feature``'s own route: the feature follows the default route
    again (for the default route ``""`` itself: the settings).

    The history keeps a removal row (old: the removed route, new: what the
    feature uses now), a ``LogEntry`` is written and ``model_route_changed``
    sent (``is_removal=True``, ``new`` = what the feature uses now), and a
    ``rollback`` restores the route. Raises ``NoRouteToRemove``.
    """
    with transaction.atomic():
        route = _lock_route(feature)
        if route is None:
            raise NoRouteToRemove(f"{feature or '(default)'!r} has no route of its own to remove")
        old = Route(feature, route.model, route.fallback_model)
        route_pk = route.pk
        route.changes.update(route=None)  # the history stays, under the feature's name
        route.delete()
        return _record_change(
            route, old=old, user=user, reason=reason, is_rollback=False, removed_pk=route_pk
        )
