"""Flip a route, roll it back, remove it: each change with history.

Every change is a row in the route's append-only history
(``ModelRouteChange``), an admin ``LogEntry`` when a person made it, and,
once committed, a version bump every process sees within a second and the
``model_route_changed`` signal. A change of a route that has a canary running
stops the canary first: its comparison is over.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction

from django_claude.models import ModelRoute, ModelRouteChange
from django_claude.routing.audit import (
    announce,
    create_route,
    lock_route,
    log_entry,
    person,
    validate_route,
)
from django_claude.routing.canaries import end_for_route_change
from django_claude.routing.table import Route, active_route_from_db
from django_claude.signals import model_route_changed


class NothingToRollBack(Exception):
    """The route has no change that a rollback could undo."""


class NoRouteToRemove(Exception):
    """The feature has no route of its own, so there is nothing to remove."""


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
        changed_by=person(user),
        reason=reason[:500],
        is_rollback=is_rollback,
        is_removal=removed,
    )
    verb = "Removed" if removed else "Rolled back" if is_rollback else "Changed"
    log_entry(
        route,
        removed_pk if removed else route.pk,
        user,
        f"{verb} model route: {old.model} -> {new.model}, fallback "
        f"{old.fallback_model or '(none)'} -> {new.fallback_model or '(none)'}"
        + (" (the default route or the settings now apply)" if removed else "")
        + (f". Reason: {reason}" if reason else ""),
        removed=removed,
    )
    announce(
        change,
        lambda: model_route_changed.send(
            sender=ModelRoute,
            feature=route.feature,
            old=old,
            new=new,
            user=user,
            is_rollback=is_rollback,
            is_removal=removed,
        ),
    )
    return change


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
                route = lock_route(feature)
                if route is None:
                    # The first change of a feature: what was in force came
                    # from the default route or the settings.
                    in_force = active_route_from_db(feature)
                    route = create_route(feature, model, fallback_model, user)
                else:
                    in_force = Route(feature, route.model, route.fallback_model)
                    if (model, fallback_model) != (route.model, route.fallback_model):
                        end_for_route_change(route, user, "the route was changed")
                    route.model = model
                    route.fallback_model = fallback_model
                    route.updated_by = person(user)
                    route.save()
                return _record_change(
                    route, old=in_force, user=user, reason=reason, is_rollback=False
                )
        except IntegrityError:
            continue
    raise IntegrityError(f"could not create the route for {feature!r}")


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
        route = lock_route(feature)
        last = _last_undoable(feature, route, lock=True)
        if route is None:
            old = active_route_from_db(feature)
            try:
                with transaction.atomic():
                    route = create_route(feature, last.old_model, last.old_fallback_model, user)
            except IntegrityError:
                name = feature or "(default)"
                raise NothingToRollBack(f"the route {name!r} was restored meanwhile") from None
        else:
            old = Route(feature, route.model, route.fallback_model)
            end_for_route_change(route, user, "the route was rolled back")
            route.model = last.old_model
            route.fallback_model = last.old_fallback_model
            route.updated_by = person(user)
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
        route = lock_route(feature)
        if route is None:
            raise NoRouteToRemove(f"{feature or '(default)'!r} has no route of its own to remove")
        old = Route(feature, route.model, route.fallback_model)
        end_for_route_change(route, user, "the route was removed")
        route_pk = route.pk
        route.changes.update(route=None)  # the history stays, under the feature's name
        route.delete()
        return _record_change(
            route, old=old, user=user, reason=reason, is_rollback=False, removed_pk=route_pk
        )
