"""What every change of a route leaves behind: a history row, an admin
``LogEntry``, the shared version bump and a signal once committed."""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from django_claude.models import ModelRoute, ModelRouteChange
from django_claude.recording import pricing
from django_claude.routing.table import publish, reset_route_table

AUTOMATIC_AUTHOR = "django-claude"  # who the history names for the canary guard's stops
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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


SHARE = re.compile(r"[0-9]+(\.[0-9]*)?|\.[0-9]+")


def share_of(value: Any) -> Decimal:
    """``value`` (10, 2.5, "12.5", "12.5%", a Decimal) as a share of calls;
    ``ValidationError`` unless it is above 0, at most 100, in hundredths of a
    percent at most (never rounded: 99.999 is not 100)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise ValidationError(
            {"percent": [f"The share must be a number, not {type(value).__name__}."]}
        )
    text = value if isinstance(value, str) else str(value)
    text = text.strip().removesuffix("%").strip()
    if not SHARE.fullmatch(text):
        raise ValidationError({"percent": [f"{str(value)[:20]!r} is not a share like 12.5."]})
    percent = Decimal(text)
    if not Decimal(0) < percent <= 100:
        raise ValidationError({"percent": ["The share must be above 0 and at most 100 (%)."]})
    if percent != percent.quantize(Decimal("0.01")):
        raise ValidationError({"percent": ["The share is counted in hundredths of a percent."]})
    return percent.quantize(Decimal("0.01"))


def checked_text(name: str, value: Any, *, label: bool = False) -> str:
    """A text argument, checked: a str (None for an optional one: ""); a
    ``label`` (a feature) also without spaces around it or control characters."""
    if value is None and name != "feature":
        return ""
    if not isinstance(value, str):
        raise ValidationError({name: [f"Must be text, not {type(value).__name__}."]})
    if label and (value != value.strip() or CONTROL.search(value) or len(value) > 100):
        raise ValidationError(
            {name: ["A feature name of at most 100 characters, without spaces around it."]}
        )
    return value


def person(user: Any) -> Any:
    """``user`` when it is a saved user (a foreign key can point at it), else None."""
    return user if getattr(user, "pk", None) else None


def log_entry(route: ModelRoute, route_pk: Any, user: Any, message: str, *, removed: bool) -> None:
    """An admin ``LogEntry`` for a change made by a person (none without one)."""
    if person(user) is None:
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
        change_message=message[:2000],
    )


def lock_route(feature: str) -> ModelRoute | None:
    return ModelRoute.objects.select_for_update().filter(feature=feature).first()


def create_route(feature: str, model: str, fallback_model: str, user: Any) -> ModelRoute:
    """A new route row for ``feature``, which takes back the history the
    feature kept from a route removed before."""
    route = ModelRoute.objects.create(
        feature=feature, model=model, fallback_model=fallback_model, updated_by=person(user)
    )
    ModelRouteChange.objects.filter(feature=feature, route__isnull=True).update(route=route)
    return route


def announce(change: ModelRouteChange, *signals: Callable[[], Any]) -> None:
    """Once the transaction commits: bump the shared version (every process
    reloads its routes within a second) and send ``signals``. This process
    sees the change at once."""
    transaction.on_commit(lambda: publish(change.pk))
    for send in signals:
        transaction.on_commit(send)
    # Seen here at once; if the transaction rolls back instead, the table
    # reloads at its next look (publish clears the mark on commit).
    reset_route_table(tentative=True)
