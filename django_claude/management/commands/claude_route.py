"""Show, change, roll back or remove a feature's model route, without a browser."""

from __future__ import annotations

import getpass
import json
import re
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.db.models import Model

from django_claude import routing
from django_claude.models import ModelRoute, ModelRouteChange

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

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


class _HelpFormatter(DjangoHelpFormatter, RawDescriptionHelpFormatter):
    """Django's option order, with the examples kept as written."""


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


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):
        raise CommandError(
            "--user: your OS login is unknown; pass --user with a Django username"
        ) from None


def _django_user(username: str | None) -> Any:
    """The Django user named by --user (None without it)."""
    if username is None:
        return None
    User = get_user_model()
    try:
        return User._default_manager.get_by_natural_key(username)
    except User.DoesNotExist:
        raise CommandError(f"--user: no user {username!r}") from None


def _reason_to_record(action: str, reason: str, *, os_user: str | None) -> str:
    """The reason to keep: required, and naming the OS user when no Django
    user is the author."""
    reason = reason.strip()
    if not reason:
        raise CommandError(f'{action} needs --reason "why": it is kept in the route\'s history')
    if os_user is None:
        return reason
    noted = f"{reason} (by OS user {os_user!r}, no Django user)"
    limit = _max_length(ModelRouteChange, "reason") or len(noted)
    if len(noted) > limit:
        room = limit - (len(noted) - len(reason))
        raise CommandError(
            f"--reason: {len(reason)} characters, at most {room} with the note of your "
            "OS user (or pass --user)"
        )
    return noted


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
            raise CommandError(_route_errors(exc)) from None
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
        raise CommandError(_route_errors(exc)) from None
    except (routing.NothingToRollBack, routing.NoRouteToRemove) as exc:
        raise CommandError(f"--feature: {exc}") from None


class Command(BaseCommand):
    help = (
        "Show the model routes, point a feature at another model (set), undo its\n"
        "latest change (rollback), or remove its own route so that it follows the\n"
        "default route again (remove). Uses the same functions as the admin:\n"
        "history, LogEntry and signal included."
    )

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = _HelpFormatter
        parser.epilog = EXAMPLES
        return parser

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["show", "set", "rollback", "remove"])
        parser.add_argument("--feature", default=None, help='the feature; "" is the default route')
        parser.add_argument("--model", default=None)
        parser.add_argument("--fallback", default=None, help='fallback model; "" for none')
        parser.add_argument("--reason", default="", help="why: required to change a route")
        parser.add_argument(
            "--user",
            default=None,
            help="username to record as the author (default: the one named like your OS login)",
        )
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
        author = _django_user(user)
        if action == "show":
            _show(self.stdout, feature, format)
            return
        if feature is None:
            raise CommandError(f"{action} needs --feature (use --feature '' for the default route)")
        if action == "set" and fallback is None:
            fallback = routing.active_route_from_db(feature).fallback_model  # keep it
        change = {"model": model, "fallback": fallback or "", "allow_unpriced": allow_unpriced}
        _check_change(action, feature, change)
        os_user = None
        if author is None:
            os_user = _os_user()
            author = User._default_manager.filter(**{User.USERNAME_FIELD: os_user}).first()
        if author is not None:
            os_user = None
        _change(action, feature, author, _reason_to_record(action, reason, os_user=os_user), change)
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
