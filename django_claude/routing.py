"""Which model serves a feature, and which one takes over when it fails."""

from __future__ import annotations

from dataclasses import dataclass

from django_claude.conf import conf


@dataclass(frozen=True)
class Route:
    feature: str
    model: str
    fallback_model: str  # "" when there is no fallback


def active_route(feature: str) -> Route:
    """The route in force for ``feature``.

    Today this is ``DJANGO_CLAUDE_DEFAULT_MODEL`` and ``_FALLBACK_MODEL``; the
    per-feature switch in the admin builds on this function.
    """
    model = conf.DEFAULT_MODEL
    fallback = conf.FALLBACK_MODEL
    return Route(feature=feature, model=model, fallback_model="" if fallback == model else fallback)
