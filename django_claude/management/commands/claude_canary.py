"""Start, watch, change, promote or stop a route's canary, without a browser."""

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
from django_claude.models import Canary, ModelRoute, ModelRouteChange
from django_claude.routing import guard

# Each runs as written, in this order, after the example project's `manage.py demo`.
EXAMPLES = """\
examples:
  python manage.py claude_canary start --feature support-summary --model claude-opus-4-7 \\
        --percent 10 --reason "try Opus on a tenth of ticket summaries" --user demo
  python manage.py claude_canary show --feature support-summary
  python manage.py claude_canary percent --feature support-summary --percent 50 \\
        --reason "no difference so far" --user demo
  python manage.py claude_canary stop --feature support-summary \\
        --reason "Opus answers are too long" --user demo

promote makes the canary's model the route's (a rollback of the route undoes it).
--feature "" is the default route. Every change needs --reason; --user defaults
to your OS login (kept in the reason when no Django user has that name).
"""

OPTIONS = {"model": "--model", "fallback_model": "--fallback", "percent": "--percent"}


class Command(RouteCommand):
    help = (
        "Show a route's canary with its arms compared (show), send a share of a\n"
        "feature's calls to another model (start), change the share (percent),\n"
        "make the canary the route's model (promote) or send everyone back (stop).\n"
        "Uses the same functions as the admin: history, LogEntry and signal included."
    )

    examples = EXAMPLES

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("action", choices=["show", "start", "percent", "promote", "stop"])
        parser.add_argument("--feature", default=None, help='the feature; "" is the default route')
        parser.add_argument("--model", default=None, help="the canary's model (start)")
        parser.add_argument("--fallback", default="", help="the canary's fallback (start)")
        parser.add_argument("--percent", default=None, help="the share of calls, 0.01 to 100")
        self.add_change_arguments(parser, what="a canary")

    def handle(self, *args: Any, **options: Any) -> None:
        action, feature = options["action"], options["feature"]
        User = get_user_model()
        for option, value, column in (
            ("--feature", feature, max_length(ModelRoute, "feature")),
            ("--model", options["model"], max_length(Canary, "model")),
            ("--fallback", options["fallback"], max_length(Canary, "fallback_model")),
            ("--percent", options["percent"], 20),
            ("--user", options["user"], max_length(User, User.USERNAME_FIELD)),
        ):
            check_text(option, value, column)
        reason = options["reason"]
        check_text("--reason", reason, max_length(ModelRouteChange, "reason"), controls_ok=True)
        named = django_user(options["user"])
        if feature is None:
            raise CommandError(f"{action} needs --feature (use --feature '' for the default route)")
        if action == "show":
            self._show(feature, options["format"])
            return
        if action == "start" and not options["model"]:
            raise CommandError("start needs --model")
        if action in ("start", "percent") and options["percent"] is None:
            raise CommandError(f"{action} needs --percent")
        if action != "start" and routing.running_canary(feature) is None:
            raise CommandError(f"--feature: no canary is running on {feature or '(default)'!r}")
        author, os_user = author_of(named)
        reason = reason_to_record(action, reason, os_user=os_user)
        try:
            canary = self._act(action, feature, author, reason, options)
        except ValidationError as exc:
            raise CommandError(option_errors(exc, OPTIONS)) from None
        except (routing.CanaryAlreadyRunning, routing.NoCanaryRunning) as exc:
            raise CommandError(f"--feature: {exc}") from None
        route = routing.active_route_from_db(feature)
        name = feature or "(default)"
        if action in ("start", "percent"):
            done = f"{canary.model} serves {canary.percent}% of calls, {route.model} the rest"
        else:
            done = f"every call on {route.model}"
        self.stdout.write(self.style.SUCCESS(f"{name}: {done}"))
        if os_user is not None:
            self.stdout.write(
                f"Recorded as OS user {os_user!r}, who is no Django user (pass --user to name one)."
            )

    def _act(
        self, action: str, feature: str, author: Any, reason: str, options: dict[str, Any]
    ) -> Canary:
        if action == "start":
            return routing.start_canary(
                feature=feature,
                model=options["model"],
                fallback_model=options["fallback"],
                percent=options["percent"],
                user=author,
                reason=reason,
                allow_unpriced=options["allow_unpriced"],
            )
        if action == "percent":
            return routing.set_canary_percent(
                feature=feature, percent=options["percent"], user=author, reason=reason
            )
        if action == "promote":
            return routing.promote_canary(feature=feature, user=author, reason=reason)
        return routing.stop_canary(feature=feature, user=author, reason=reason)

    def _show(self, feature: str, fmt: str) -> None:
        canary = routing.running_canary(feature)
        name = feature or "(default)"
        if canary is None:
            last = Canary.objects.filter(feature=feature).first()
            if fmt == "json":
                self.stdout.write(json.dumps({"feature": feature, "canary": None}))
            elif last is None:
                self.stdout.write(f"{name} has no canary running, and never had one.")
            else:
                self.stdout.write(
                    f"{name} has no canary running; the last, {last.model}, was "
                    f"{last.get_status_display()} {last.ended_at:%Y-%m-%d %H:%M}: "
                    f"{last.end_reason or '(no reason)'}"
                )
            return
        comparison = guard.compare_arms(canary)
        if fmt == "json":
            self.stdout.write(
                json.dumps(
                    {
                        "feature": feature,
                        "canary": {
                            "id": canary.pk,
                            "model": canary.model,
                            "control_model": canary.control_model,
                            "percent": str(canary.percent),
                            "started_at": canary.started_at.isoformat(),
                        },
                        "findings": [f.as_evidence() for f in comparison.findings],
                        "calls": {arm: s.calls for arm, s in comparison.arms.items()},
                    },
                    indent=2,
                    default=str,
                )
            )
            return
        self.stdout.write(
            f"{name}: {canary.model} serves {canary.percent}% of calls since "
            f"{canary.started_at:%Y-%m-%d %H:%M}; control {canary.control_model}"
        )
        calls = {arm: s.calls for arm, s in comparison.arms.items()}
        self.stdout.write(f"calls: control {calls['control']}, canary {calls['canary']}")
        for finding in comparison.findings:
            mark = "WORSE " if finding.worse else ""
            self.stdout.write(f"  {finding.measure}: {mark}{finding.words}")
