"""Which model serves a feature: flip it, roll it back, or try another on a
share of the traffic (a canary), with history.

``active_route`` answers from a per-process table that follows changes
within a second (``routing.table``); ``set_route``, ``rollback`` and
``remove_route`` change a route (``routing.changes``); ``start_canary``,
``set_canary_percent``, ``promote_canary`` and ``stop_canary`` run a canary
(``routing.canaries``), which ``routing.guard`` stops by itself when it is
worse than its control.
"""

from django_claude.routing.audit import validate_route
from django_claude.routing.canaries import (
    CanaryAlreadyRunning,
    NoCanaryRunning,
    promote_canary,
    running_canary,
    set_canary_percent,
    start_canary,
    stop_canary,
)
from django_claude.routing.changes import (
    NoRouteToRemove,
    NothingToRollBack,
    previous_route,
    remove_route,
    rollback,
    rollback_target,
    set_route,
)
from django_claude.routing.table import (
    CHECK_EVERY,
    VERSION_KEY,
    Route,
    active_route,
    active_route_from_db,
    look_again_soon,
    reset_route_table,
    route_table_is_fresh,
    route_table_is_served_stale,
    serving_route,
)

__all__ = [
    "CHECK_EVERY",
    "VERSION_KEY",
    "CanaryAlreadyRunning",
    "NoCanaryRunning",
    "NoRouteToRemove",
    "NothingToRollBack",
    "Route",
    "active_route",
    "active_route_from_db",
    "look_again_soon",
    "previous_route",
    "promote_canary",
    "remove_route",
    "reset_route_table",
    "rollback",
    "rollback_target",
    "route_table_is_fresh",
    "route_table_is_served_stale",
    "running_canary",
    "serving_route",
    "set_canary_percent",
    "set_route",
    "start_canary",
    "stop_canary",
    "validate_route",
]
