"""Signals django-claude sends, for sites to connect receivers to."""

from __future__ import annotations

from django.dispatch import Signal

# Sent once a route change commits: feature (str), old and new
# (django_claude.routing.Route), user (or None), is_rollback (bool).
model_route_changed = Signal()
