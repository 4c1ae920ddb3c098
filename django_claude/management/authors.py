"""What the route commands share: checking option text, finding the author
of a change, and the reason kept in the route's history."""

from __future__ import annotations

import getpass
from argparse import ArgumentParser, RawDescriptionHelpFormatter
from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, DjangoHelpFormatter
from django.db.models import Model

from django_claude.models import ModelRouteChange
from django_claude.routing.audit import CONTROL


class HelpFormatter(DjangoHelpFormatter, RawDescriptionHelpFormatter):
    """Django's option order, with the examples kept as written."""


class RouteCommand(BaseCommand):
    """A command that changes routes: its examples kept as written after the
    options, and the options every change takes."""

    examples = ""

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.formatter_class = HelpFormatter
        parser.epilog = self.examples
        return parser

    @staticmethod
    def add_change_arguments(parser: ArgumentParser, *, what: str) -> None:
        """--reason, --user, --allow-unpriced and --format."""
        parser.add_argument("--reason", default="", help=f"why: required to change {what}")
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


def option_errors(exc: ValidationError, options: dict[str, str]) -> str:
    """A ``ValidationError``'s messages, each after the option it is about."""
    if not hasattr(exc, "error_dict"):
        return "; ".join(exc.messages)
    return "; ".join(
        f"{options.get(name, name)}: {message}"
        for name, messages in exc.message_dict.items()
        for message in messages
    )


def max_length(model: type[Model], name: str) -> int | None:
    length: int | None = getattr(model._meta.get_field(name), "max_length", None)
    return length


def check_text(
    option: str, value: str | None, max_length: int | None, *, controls_ok: bool = False
) -> None:
    """Raise ``CommandError`` naming ``option`` for text no column can hold."""
    if value is None:
        return
    if "\x00" in value:
        raise CommandError(f"{option}: contains a NUL character")
    if not controls_ok and CONTROL.search(value):
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


def django_user(username: str | None) -> Any:
    """The Django user named by --user (None without it)."""
    if username is None:
        return None
    User = get_user_model()
    try:
        return User._default_manager.get_by_natural_key(username)
    except User.DoesNotExist:
        raise CommandError(f"--user: no user {username!r}") from None


def author_of(named: Any) -> tuple[Any, str | None]:
    """(the Django user to record, the OS login to note in the reason when
    there is none): ``named`` (from --user), else the user named like the OS
    login."""
    if named is not None:
        return named, None
    os_user = _os_user()
    User = get_user_model()
    author = User._default_manager.filter(**{User.USERNAME_FIELD: os_user}).first()
    return (author, None) if author is not None else (None, os_user)


def reason_to_record(action: str, reason: str, *, os_user: str | None) -> str:
    """The reason to keep: required, and naming the OS user when no Django
    user is the author."""
    reason = reason.strip()
    if not reason:
        raise CommandError(f'{action} needs --reason "why": it is kept in the route\'s history')
    if os_user is None:
        return reason
    noted = f"{reason} (by OS user {os_user!r}, no Django user)"
    limit = max_length(ModelRouteChange, "reason") or len(noted)
    if len(noted) > limit:
        room = limit - (len(noted) - len(reason))
        raise CommandError(
            f"--reason: {len(reason)} characters, at most {room} with the note of your "
            "OS user (or pass --user)"
        )
    return noted
