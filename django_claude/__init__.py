"""django-claude: calls to Claude that are logged, redacted, priced and survive outages.

The public API is exported lazily (PEP 562) so that importing the package
never imports models before Django's app registry is ready.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "call",
    "acall",
    "stream",
    "astream",
    "flush_records",
    "quota_status",
    "ClaudeResult",
    "ClaudeUnavailable",
    "ClaudeLimited",
    "QuotaStoreUnavailable",
]

_EXPORTS = {
    "call": "django_claude.client.calls",
    "acall": "django_claude.client.calls",
    "stream": "django_claude.client.streams",
    "astream": "django_claude.client.streams",
    "flush_records": "django_claude.recording.writer",
    "ClaudeResult": "django_claude.types",
    "ClaudeUnavailable": "django_claude.types",
    "ClaudeLimited": "django_claude.types",
    "quota_status": "django_claude.client.allowance",
    "QuotaStoreUnavailable": "django_claude.quotas.counters",
}

if TYPE_CHECKING:
    from django_claude.client.allowance import quota_status
    from django_claude.client.calls import acall, call
    from django_claude.client.streams import astream, stream
    from django_claude.quotas.counters import QuotaStoreUnavailable
    from django_claude.recording.writer import flush_records
    from django_claude.types import ClaudeLimited, ClaudeResult, ClaudeUnavailable


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'django_claude' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
