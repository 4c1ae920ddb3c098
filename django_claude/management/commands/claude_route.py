"""Show, change or roll back a feature's model route, without a browser."""

from __future__ import annotations

import json
import re
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db.models import Model

from django_claude import routing
from django_claude.models import ModelRoute, ModelRouteChange

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _route_errors(exc: ValidationError) -> str:
    """The messages of ``validate_route``, each after the option it is about."""
    if not hasattr(exc, "error_dict"):
        return "; ".join(exc.messages)
    options = {"model": "--model", "fallback_model": "--fallback"}
    return "; ".join(
        f"{options.get(name, name)}: {message}"
        for name, messages in exc.message_dict.items()
        for message in messages
    )


def _max_length(model: type[Model], name: str) -> int | None:
    length: int | None = getattr(model._meta.get_field(name), "max_length", None)
    return length


def _check_text(
    option: str, value: str | None, max_length: int | None, *, controls_ok: bool = False
) -> None:
    """Raise ``CommandError`` naming ``option`` for text no column can hold."""
    if value is None:
        return
    if "\x00" in value:
        raise CommandError(f"{option}: contains a NUL character")
    if not controls_ok and _CONTROL.search(value):
        raise CommandError(f"{option}: contains a control character")
    if max_length is not None and len(value) > max_length:
        raise CommandError(f"{option}: {len(value)} characters, at most {max_length}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise CommandError(f"{option}: not valid Unicode") from None


class Command(BaseCommand):
    help = (
        "Show the model routes, point a feature at another model (set), or undo "
        "its latest change (rollback). Uses the same functions as the admin: "
        "history, LogEntry and signal included."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["show", "set", "rollback"])
        parser.add_argument("--feature", default=None, help='the feature; "" is the default route')
        parser.add_argument("--model", default=None)
        parser.add_argument("--fallback", default=None, help='fallback model; "" for none')
        parser.add_argument("--reason", default="")
        parser.add_argument("--user", default=None, help="username to record as the author")
        parser.add_argument(
            "--allow-unpriced",
            action="store_true",
            help="accept a model with no ModelPrice (its calls are recorded with no cost)",
        )
        parser.add_argument("--format", choices=["table", "json"], default="table")

    def handle(
        self,
        *args: Any,
        action: str,
        feature: str | None,
        model: str | None,
        fallback: str | None,
        reason: str,
        user: str | None,
        allow_unpriced: bool,
        format: str,  # noqa: A002
        **options: Any,
    ) -> None:
        User = get_user_model()
        for option, value, column in (
            ("--feature", feature, _max_length(ModelRoute, "feature")),
            ("--model", model, _max_length(ModelRoute, "model")),
            ("--fallback", fallback, _max_length(ModelRoute, "fallback_model")),
            ("--user", user, _max_length(User, User.USERNAME_FIELD)),
        ):
            _check_text(option, value, column)
        _check_text("--reason", reason, _max_length(ModelRouteChange, "reason"), controls_ok=True)
        author = self._user(user)
        if action == "show":
            self._show(feature, format)
            return
        if feature is None:
            raise CommandError(f"{action} needs --feature (use --feature '' for the default route)")
        if action == "set":
            if not model:
                raise CommandError("set needs --model")
            current = routing.active_route_from_db(feature)
            try:
                routing.set_route(
                    feature=feature,
                    model=model,
                    fallback_model=current.fallback_model if fallback is None else fallback,
                    user=author,
                    reason=reason,
                    allow_unpriced=allow_unpriced,
                )
            except ValidationError as exc:
                raise CommandError(_route_errors(exc)) from None
        else:
            try:
                routing.rollback(feature=feature, user=author, reason=reason)
            except routing.NothingToRollBack as exc:
                raise CommandError(f"--feature: {exc}") from None
        route = routing.active_route_from_db(feature)
        self.stdout.write(
            self.style.SUCCESS(
                f"{feature or '(default)'}: {route.model}, fallback {route.fallback_model or '—'}"
            )
        )

    def _user(self, username: str | None) -> Any:
        if username is None:
            return None
        User = get_user_model()
        try:
            return User._default_manager.get_by_natural_key(username)
        except User.DoesNotExist:
            raise CommandError(f"--user: no user {username!r}") from None

    def _show(self, feature: str | None, fmt: str) -> None:
        routes = ModelRoute.objects.all()
        if feature is not None:
            routes = routes.filter(feature=feature)
        rows = [
            {
                "feature": r.feature,
                "model": r.model,
                "fallback_model": r.fallback_model,
                "updated_at": r.updated_at.isoformat(),
                "previous_model": (p.model if (p := routing.previous_route(r.feature)) else None),
            }
            for r in routes
        ]
        if fmt == "json":
            self.stdout.write(json.dumps(rows, indent=2))
            return
        if not rows and feature is not None:
            in_force = routing.active_route_from_db(feature)
            self.stdout.write(
                f"{feature or '(default)'} has no route of its own: it uses {in_force.model}, "
                f"fallback {in_force.fallback_model or '—'}."
            )
            return
        if not rows:
            default = routing.active_route_from_db("")
            self.stdout.write(
                f"No routes yet: every feature uses {default.model}, "
                f"fallback {default.fallback_model or '—'} (settings)."
            )
            return
        headers = ["feature", "model", "fallback_model", "previous_model", "updated_at"]
        table: list[list[str]] = [
            [
                str(row["feature"] or "(default)"),
                str(row["model"]),
                str(row["fallback_model"] or "—"),
                str(row["previous_model"] or "—"),
                str(row["updated_at"]),
            ]
            for row in rows
        ]
        widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
        self.stdout.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
        for r in table:
            self.stdout.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
