"""django-claude: calls to Claude that are logged, redacted, priced and survive outages.

The public API is exported lazily (PEP 562) so that importing the package
never imports models before Django's app registry is ready.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = ["call", "acall", "stream", "astream", "ClaudeResult", "ClaudeUnavailable"]

_EXPORTS = {
    "call": "django_claude.service",
    "acall": "django_claude.service",
    "stream": "django_claude.streaming",
    "astream": "django_claude.streaming",
    "ClaudeResult": "django_claude.results",
    "ClaudeUnavailable": "django_claude.exceptions",
}

if TYPE_CHECKING:
    from django_claude.exceptions import ClaudeUnavailable
    from django_claude.results import ClaudeResult
    from django_claude.service import acall, call
    from django_claude.streaming import astream, stream


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'django_claude' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
