"""Canary rollouts: send a share of a route's traffic to a candidate model.

``start_canary`` sends ``percent`` of a feature's users (or tenants) to a
candidate model; ``set_canary_percent`` changes the share, ``promote_canary``
makes the candidate the route's model, ``stop_canary`` sends everyone back
to the route's model. Each is a row in the route's history, an admin
``LogEntry`` when a person made it, and, once committed, a signal and a
version bump every process sees within a second. The guard that stops a
worse canary by itself is ``routing.guard``.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from functools import partial
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from django_claude.models import Canary, CanaryStatus, ModelRoute, ModelRouteChange
from django_claude.routing.audit import (
    AUTOMATIC_AUTHOR,
    announce,
    checked_text,
    create_route,
    lock_route,
    log_entry,
    person,
    share_of,
    validate_route,
)
from django_claude.routing.table import Route, active_route_from_db
from django_claude.signals import (
    canary_percent_changed,
    canary_promoted,
    canary_started,
    canary_stopped,
    model_route_changed,
)

logger = logging.getLogger("django_claude.routing")


class CanaryAlreadyRunning(Exception):
    """The route has a canary running already: stop or promote it first."""


class NoCanaryRunning(Exception):
    """The route has no running canary (or not the one named)."""


def _running(feature: str, *, lock: bool = True) -> Canary | None:
    rows = Canary.objects.filter(feature=feature, ended_at__isnull=True)
    return (rows.select_for_update() if lock else rows).first()


def running_canary(feature: str) -> Canary | None:
    """The canary running on ``feature``'s route, read from the database."""
    return _running(feature, lock=False)


def _record(
    route: ModelRoute,
    canary: Canary,
    action: str,
    *,
    user: Any,
    reason: str,
    message: str,
    signals: list[Any],
    old: Route | None = None,
    old_percent: Decimal | None = None,
    automatic: bool = False,
) -> ModelRouteChange:
    """The history row, the ``LogEntry`` and the signals of a canary action."""
    old = old or Route(route.feature, route.model, route.fallback_model)
    change = ModelRouteChange.objects.create(
        route=route,
        feature=route.feature,
        old_model=old.model,
        old_fallback_model=old.fallback_model,
        new_model=route.model,
        new_fallback_model=route.fallback_model,
        changed_by=person(user),
        reason=reason[:500],
        canary=canary,
        canary_action=action,
        old_percent=old_percent,
        new_percent=canary.percent,
        automatic=automatic,
    )
    log_entry(
        route,
        route.pk,
        user,
        message + (f". Reason: {reason}" if reason else ""),
        removed=False,
    )
    logger.info("claude canary: %s: %s", route.feature or "(default)", message)
    announce(change, *signals)
    return change


def start_canary(
    *,
    feature: str,
    model: str,
    percent: Any,
    fallback_model: str = "",
    user: Any = None,
    reason: str = "",
    allow_unpriced: bool = False,
) -> Canary:
    """Send ``percent`` of ``feature``'s traffic to ``model``.

    The same user (else tenant) always lands in the same arm; anonymous calls
    are drawn at random. ``fallback_model`` serves the canary's calls when
    ``model`` fails (blank: the route's fallback). A feature without a route
    of its own gets one, pinned to the models it used, so the canary has a
    control. Raises ``ValidationError`` and ``CanaryAlreadyRunning``.
    """
    share = share_of(percent)
    feature = checked_text("feature", feature, label=True)
    model, fallback_model = (
        checked_text("model", model),
        checked_text("fallback_model", fallback_model),
    )
    reason = checked_text("reason", reason)
    validate_route(model=model, fallback_model=fallback_model, allow_unpriced=allow_unpriced)
    for _ in range(2):  # a concurrent first route of the same feature: retry once
        try:
            with transaction.atomic():
                route = lock_route(feature)
                if route is None:
                    route = _route_for_canary(feature, user)
                if _running(feature) is not None:
                    raise CanaryAlreadyRunning(
                        f"{feature or '(default)'!r} has a canary running: stop or promote it first"
                    )
                if model == route.model:
                    raise ValidationError(
                        {"model": [f"{model!r} already serves this route: a canary needs another."]}
                    )
                canary = Canary.objects.create(
                    feature=feature,
                    model=model,
                    fallback_model=fallback_model,
                    percent=share,
                    control_model=route.model,
                    control_fallback_model=route.fallback_model,
                    started_at=timezone.now(),
                    started_by=person(user),
                    reason=reason[:500],
                )
                _record(
                    route,
                    canary,
                    "start",
                    user=user,
                    reason=reason,
                    message=f"Started a canary: {model} for {share}% of calls "
                    f"(control {route.model})",
                    signals=[
                        partial(
                            canary_started.send,
                            sender=Canary,
                            feature=feature,
                            canary=canary,
                            user=user,
                            reason=reason,
                        )
                    ],
                )
                return canary
        except IntegrityError:
            continue  # the next pass finds the route, or the canary, another process made
    raise CanaryAlreadyRunning(f"could not start a canary on {feature!r}: retry")


def _route_for_canary(feature: str, user: Any) -> ModelRoute:
    """A route of its own for a feature that follows the default route (or
    the settings), pinned to the models it uses now, so that its canary has a
    control: a change in its history like any other, which a rollback undoes."""
    in_force = active_route_from_db(feature)
    route = create_route(feature, in_force.model, in_force.fallback_model, user)
    ModelRouteChange.objects.create(
        route=route,
        feature=feature,
        old_model=in_force.model,
        old_fallback_model=in_force.fallback_model,
        new_model=route.model,
        new_fallback_model=route.fallback_model,
        changed_by=person(user),
        reason="a route of its own, for a canary",
    )
    return route


def _locked(feature: str, canary_id: int | None = None) -> tuple[ModelRoute, Canary]:
    route = lock_route(feature)
    canary = _running(feature) if route is not None else None
    if route is None or canary is None or (canary_id is not None and canary.pk != canary_id):
        which = "that canary is not" if canary_id is not None else "no canary is"
        raise NoCanaryRunning(f"{which} running on {feature or '(default)'!r}")
    return route, canary


def set_canary_percent(
    *,
    feature: str,
    percent: Any,
    user: Any = None,
    reason: str = "",
    canary_id: int | None = None,
) -> Canary:
    """Change the share of ``feature``'s traffic its canary gets (with
    ``canary_id``: only if that canary is still the one running). Raising it
    keeps everyone already in the canary there. Raises ``NoCanaryRunning``
    and ``ValidationError``."""
    share = share_of(percent)
    reason = checked_text("reason", reason)
    with transaction.atomic():
        route, canary = _locked(feature, canary_id)
        old = canary.percent
        canary.percent = share
        canary.save(update_fields=["percent"])
        _record(
            route,
            canary,
            "percent",
            user=user,
            reason=reason,
            old_percent=old,
            message=f"Changed the canary's share: {canary.model} {old}% -> {share}%",
            signals=[
                lambda: canary_percent_changed.send(
                    sender=Canary,
                    feature=feature,
                    canary=canary,
                    old_percent=old,
                    new_percent=share,
                    user=user,
                    reason=reason,
                )
            ],
        )
    return canary


def _end(canary: Canary, status: str, user: Any, reason: str, evidence: Any = None) -> None:
    canary.status = status
    canary.ended_at = timezone.now()
    canary.ended_by = person(user)
    canary.end_reason = reason[:500]
    if evidence is not None:
        canary.evidence = evidence
    canary.save(update_fields=["status", "ended_at", "ended_by", "end_reason", "evidence"])


def promote_canary(
    *, feature: str, user: Any = None, reason: str = "", canary_id: int | None = None
) -> Canary:
    """Make the canary's model (and its fallback, if it has one) the route's,
    for everyone (with ``canary_id``: only if that canary is still the one
    running). A rollback of the route undoes it. Raises ``NoCanaryRunning``."""
    reason = checked_text("reason", reason)
    with transaction.atomic():
        route, canary = _locked(feature, canary_id)
        old = Route(feature, route.model, route.fallback_model)
        fallback = canary.fallback_model or route.fallback_model
        route.model = canary.model
        route.fallback_model = "" if fallback == canary.model else fallback
        route.updated_by = person(user)
        route.save()
        _end(canary, CanaryStatus.PROMOTED, user, reason)
        new = Route(feature, route.model, route.fallback_model)
        _record(
            route,
            canary,
            "promote",
            user=user,
            reason=reason,
            old=old,
            message=f"Promoted the canary: {old.model} -> {new.model}, fallback "
            f"{old.fallback_model or '(none)'} -> {new.fallback_model or '(none)'}",
            signals=[
                lambda: canary_promoted.send(
                    sender=Canary, feature=feature, canary=canary, user=user, reason=reason
                ),
                lambda: model_route_changed.send(
                    sender=ModelRoute,
                    feature=feature,
                    old=old,
                    new=new,
                    user=user,
                    is_rollback=False,
                    is_removal=False,
                ),
            ],
        )
    return canary


def _stop(
    route: ModelRoute,
    canary: Canary,
    user: Any,
    reason: str,
    *,
    automatic: bool = False,
    evidence: Any = None,
) -> None:
    _end(
        canary, CanaryStatus.TRIPPED if automatic else CanaryStatus.STOPPED, user, reason, evidence
    )
    who = AUTOMATIC_AUTHOR if automatic else "Stopped"
    _record(
        route,
        canary,
        "stop",
        user=user,
        reason=reason,
        automatic=automatic,
        message=f"{'Stopped by ' + who if automatic else who} the canary: {canary.model} "
        f"(was {canary.percent}%); everyone on {route.model}",
        signals=[
            lambda: canary_stopped.send(
                sender=Canary,
                feature=route.feature,
                canary=canary,
                user=user,
                reason=reason,
                automatic=automatic,
                evidence=canary.evidence,
            )
        ],
    )


def stop_canary(
    *,
    feature: str,
    user: Any = None,
    reason: str = "",
    canary_id: int | None = None,
    automatic: bool = False,
    evidence: Any = None,
) -> Canary:
    """Send all of ``feature``'s traffic back to the route's model. With
    ``canary_id``, only if that canary is still the one running (the guard
    never stops a canary started after it looked). Raises ``NoCanaryRunning``."""
    reason = checked_text("reason", reason)
    with transaction.atomic():
        route, canary = _locked(feature, canary_id)
        _stop(route, canary, user, reason, automatic=automatic, evidence=evidence)
    return canary


def end_for_route_change(route: ModelRoute, user: Any, why: str) -> None:
    """Stop ``route``'s canary, if one runs, before the route itself changes
    (inside that change's transaction): its comparison would no longer hold."""
    canary = _running(route.feature)
    if canary is not None:
        _stop(route, canary, user, why)
