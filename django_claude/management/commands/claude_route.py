"""Show, change, roll back or remove a feature's model route, without a browser."""

from __future__ import annotations

import json
from argparse import ArgumentParser
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import CommandError

from django_claude import routing
from django_claude.management.authors import (
    RouteCommand,
    author_of,
    check_text,
    django_user,
    max_length,
    option_errors,
    reason_to_record,
)
from django_claude.models import ModelRoute, ModelRouteChange

OPTIONS = {"model": "--model", "fallback_model": "--fallback"}

# Each runs as written, in this order, after the example project's `manage.py demo`
# (its features include support-summary; its admin user is demo).
EXAMPLES = """\
examples:
  python manage.py claude_route show
  python manage.py claude_route set --feature support-summary --model claude-opus-4-7 \\
        --reason "try Opus for ticket summaries" --user demo
  python manage.py claude_route rollback --feature support-summary \\
        --reason "Opus answers are too long" --user demo
  python manage.py claude_route remove --feature support-summary \\
        --reason "use the default route again" --user demo
  python manage.py claude_route rollback --feature support-summary \\
        --reason "undo the removal" --user demo

--feature "" is the default route, used by every feature without its own.
Every change needs --reason; --user defaults to your OS login (kept in the
reason when no Django user has that name).
"""


def _check_change(action: str, feature: str, options: dict[str, Any]) -> None:
    """Raise ``CommandError`` for a change that cannot be made, before asking why."""
    if action == "set":
        if not options["model"]:
            raise CommandError("set needs --model")
        try:
            routing.validate_route(
                model=options["model"],
                fallback_model=options["fallback"],
                allow_unpriced=options["allow_unpriced"],
            )
        except ValidationError as exc:
            raise CommandError(option_errors(exc, OPTIONS)) from None
    elif action == "rollback":
        try:
            routing.rollback_target(feature)
        except routing.NothingToRollBack as exc:
            raise CommandError(f"--feature: {exc}") from None
    elif not ModelRoute.objects.filter(feature=feature).exists():
        raise CommandError(f"--feature: {feature or '(default)'!r} has no route of its own")


def _change(action: str, feature: str, author: Any, reason: str, options: dict[str, Any]) -> None:
    try:
        if action == "set":
            routing.set_route(
                feature=feature,
                model=options["model"],
                fallback_model=options["fallback"],
                user=author,
                reason=reason,
                allow_unpriced=options["allow_unpriced"],
            )
        elif action == "rollback":
            routing.rollback(feature=feature, user=author, reason=reason)
        else:
            routing.remove_route(feature=feature, user=author, reason=reason)
    except ValidationError as exc:
        raise CommandError(option_errors(exc, OPTIONS)) from None
    except (routing.NothingToRollBack, routing.NoRouteToRemove) as exc:
        raise CommandError(f"--feature: {exc}") from None


class Command(RouteCommand):
    help = (
        "Show the model routes, point a feature at another model (set), undo its\n"
        "latest change (rollback), or remove its own route so that it follows the\n"
        "default route again (remove). Uses the same functions as the admin:\n"
        "history, LogEntry and signal included."
    )

    examples = EXAMPLES

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["show", "set", "rollback", "remove"])
        parser.add_argument("--feature", default=None, help='the feature; "" is the default route')
        parser.add_argument("--model", default=None)
        parser.add_argument("--fallback", default=None, help='fallback model; "" for none')
        self.add_change_arguments(parser, what="a route")

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
            ("--feature", feature, max_length(ModelRoute, "feature")),
            ("--model", model, max_length(ModelRoute, "model")),
            ("--fallback", fallback, max_length(ModelRoute, "fallback_model")),
            ("--user", user, max_length(User, User.USERNAME_FIELD)),
        ):
            check_text(option, value, column)
        check_text("--reason", reason, max_length(ModelRouteChange, "reason"), controls_ok=True)
        named = django_user(user)
        if action == "show":
            _show(self.stdout, feature, format)
            return
        if feature is None:
            raise CommandError(f"{action} needs --feature (use --feature '' for the default route)")
        if action == "set" and fallback is None:
            fallback = routing.active_route_from_db(feature).fallback_model  # keep it
        change = {"model": model, "fallback": fallback or "", "allow_unpriced": allow_unpriced}
        _check_change(action, feature, change)
        author, os_user = author_of(named)
        _change(action, feature, author, reason_to_record(action, reason, os_user=os_user), change)
        route = routing.active_route_from_db(feature)
        now = f"{route.model}, fallback {route.fallback_model or '—'}"
        name = feature or "(default)"
        if action != "remove":
            self.stdout.write(self.style.SUCCESS(f"{name}: {now}"))
        else:
            has_default = ModelRoute.objects.filter(feature="").exists()
            source = "the default route" if feature and has_default else "the settings"
            self.stdout.write(self.style.SUCCESS(f"{name}: route removed; uses {now} ({source})"))
        if os_user is not None:
            self.stdout.write(
                f"Recorded as OS user {os_user!r}, who is no Django user (pass --user to name one)."
            )


def _show(out: Any, feature: str | None, fmt: str) -> None:
    """Write the routes (one feature's with ``feature``) as a table or JSON."""
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
        out.write(json.dumps(rows, indent=2))
        return
    if not rows and feature is not None:
        in_force = routing.active_route_from_db(feature)
        out.write(
            f"{feature or '(default)'} has no route of its own: it uses {in_force.model}, "
            f"fallback {in_force.fallback_model or '—'}."
        )
        if restorable := routing.previous_route(feature):
            out.write(f"Its route was removed; rollback restores {restorable.model}.")
        return
    if not rows:
        default = routing.active_route_from_db("")
        out.write(
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
    out.write("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)))
    for r in table:
        out.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))
