"""Show, change or roll back a feature's model route, without a browser."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from django_claude import routing
from django_claude.models import ModelRoute


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
                raise CommandError("; ".join(exc.messages)) from None
        else:
            try:
                routing.rollback(feature=feature, user=author, reason=reason)
            except routing.NothingToRollBack as exc:
                raise CommandError(str(exc)) from None
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
            raise CommandError(f"no user {username!r}") from None

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
