"""Typed access to the ``DJANGO_CLAUDE_*`` settings, read at call time.

Nothing is read at import time, so ``override_settings`` works everywhere and
a site may change a setting without restarting anything but its processes.
A value read is kept until Django says a setting changed (the
``setting_changed`` signal ``override_settings`` sends, as Django's own
caches do): a setting a site leaves out would otherwise cost an
``AttributeError`` inside ``django.conf.settings`` on every read, dozens of
times a call.
"""

from __future__ import annotations

import ipaddress
import os
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed

DEFAULTS: dict[str, Any] = {
    "API_KEY": None,
    "BASE_URL": None,
    "DEFAULT_MODEL": "claude-sonnet-4-6",
    "FALLBACK_MODEL": "claude-haiku-4-5-20251001",
    "MAX_TOKENS": 600,
    "TIMEOUT": 20.0,
    "DEADLINE": 45.0,
    "MAX_ATTEMPTS": 4,
    "FALLBACK_ATTEMPTS": 2,
    "BACKOFF_BASE": 1.0,
    "BACKOFF_MAX": 8.0,
    "BREAKER_THRESHOLD": 5,
    "BREAKER_COOLDOWN": 30.0,
    "DEGRADED_MESSAGE": "Sorry, that didn't work. Please try again.",
    "RAISE_ON_FAILURE": False,
    "PROMPT_PREFIX_CHARS": 80,
    "REDACTOR": "django_claude.recording.redaction.redact",
    "SMELL_TEST_RATE": 0.01,
    "SMELL_TEST_MODEL": "claude-haiku-4-5-20251001",
    "SMELL_TEST_RATES": {},
    "SMELL_ALERT_DROP": 5.0,
    "BUDGETS": {},
    "RETENTION_DAYS": 90,
    "FAILURE_RETENTION_DAYS": 30,
    "CACHE": "default",
    "CACHE_BUDGET": 0.2,
    "IDEMPOTENCY_TTL": 86400,
    "WRITE_BEHIND": None,
}

PREFIX_CHARS_CEILING = 100
_UNREAD = object()

# The key sent to an API on this machine (``manage.py claude_fake_api``) when
# no key is configured: the SDK refuses to send a request without one.
OFFLINE_API_KEY = "sk-ant-offline-no-key"


def is_loopback_url(url: str | None) -> bool:
    """Whether ``url`` names this machine (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    try:
        host = urlsplit(url or "").hostname
    except ValueError:
        return False
    if not host:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ClaudeSettings:
    """One property per setting; each reads ``settings.DJANGO_CLAUDE_<NAME>``."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}  # read so far; cleared by setting_changed

    def _get(self, name: str) -> Any:
        value = self.values.get(name, _UNREAD)
        if value is _UNREAD:
            value = self.values[name] = getattr(settings, f"DJANGO_CLAUDE_{name}", DEFAULTS[name])
        return value

    @property
    def API_KEY(self) -> str | None:
        return self._get("API_KEY")

    @property
    def BASE_URL(self) -> str | None:
        return self._get("BASE_URL")

    def api_key_to_send(self) -> str | None:
        """``API_KEY``; with none anywhere and ``BASE_URL`` on this machine (the
        fake API), a placeholder, so offline development is one setting.
        ``None`` lets the SDK read ``ANTHROPIC_API_KEY`` (or refuse)."""
        if self.API_KEY:
            return self.API_KEY
        base_url = self.BASE_URL or os.environ.get("ANTHROPIC_BASE_URL")
        if not self.api_key_anywhere() and is_loopback_url(base_url):
            return OFFLINE_API_KEY
        return None

    def api_key_anywhere(self) -> bool:
        """Is a key set: ``API_KEY``, or what the SDK reads from the environment?"""
        return bool(
            self.API_KEY
            or os.environ.get("ANTHROPIC_API_KEY")
            or os.environ.get("ANTHROPIC_AUTH_TOKEN")
        )

    @property
    def WRITE_BEHIND(self) -> bool | None:
        """Records inserted by the background writer in batches (True), or
        before ``call()`` returns (False); None: decided per database
        (``recording.writer.writes_behind``)."""
        value = self._get("WRITE_BEHIND")
        return None if value is None else bool(value)

    @property
    def DEFAULT_MODEL(self) -> str:
        return str(self._get("DEFAULT_MODEL"))

    @property
    def FALLBACK_MODEL(self) -> str:
        return str(self._get("FALLBACK_MODEL") or "")

    @property
    def MAX_TOKENS(self) -> int:
        return int(self._get("MAX_TOKENS"))

    @property
    def TIMEOUT(self) -> float:
        return float(self._get("TIMEOUT"))

    @property
    def DEADLINE(self) -> float:
        return float(self._get("DEADLINE"))

    @property
    def MAX_ATTEMPTS(self) -> int:
        return int(self._get("MAX_ATTEMPTS"))

    @property
    def FALLBACK_ATTEMPTS(self) -> int:
        """Attempts on the fallback model (at most 2, whatever is set)."""
        return max(1, min(2, int(self._get("FALLBACK_ATTEMPTS"))))

    @property
    def BACKOFF_BASE(self) -> float:
        return float(self._get("BACKOFF_BASE"))

    @property
    def BACKOFF_MAX(self) -> float:
        return float(self._get("BACKOFF_MAX"))

    @property
    def BREAKER_THRESHOLD(self) -> int:
        return int(self._get("BREAKER_THRESHOLD"))

    @property
    def BREAKER_COOLDOWN(self) -> float:
        return float(self._get("BREAKER_COOLDOWN"))

    @property
    def DEGRADED_MESSAGE(self) -> str:
        return str(self._get("DEGRADED_MESSAGE"))

    @property
    def RAISE_ON_FAILURE(self) -> bool:
        return bool(self._get("RAISE_ON_FAILURE"))

    @property
    def PROMPT_PREFIX_CHARS(self) -> int:
        return max(0, min(PREFIX_CHARS_CEILING, int(self._get("PROMPT_PREFIX_CHARS"))))

    @property
    def REDACTOR(self) -> str:
        return str(self._get("REDACTOR"))

    @property
    def SMELL_TEST_RATE(self) -> float:
        return float(self._get("SMELL_TEST_RATE"))

    @property
    def SMELL_TEST_MODEL(self) -> str:
        return str(self._get("SMELL_TEST_MODEL"))

    @property
    def SMELL_TEST_RATES(self) -> dict[str, float]:
        return dict(self._get("SMELL_TEST_RATES"))

    @property
    def SMELL_ALERT_DROP(self) -> float:
        return float(self._get("SMELL_ALERT_DROP"))

    @property
    def BUDGETS(self) -> dict[str, Decimal]:
        return {k: Decimal(str(v)) for k, v in dict(self._get("BUDGETS")).items()}

    @property
    def RETENTION_DAYS(self) -> int:
        return int(self._get("RETENTION_DAYS"))

    @property
    def FAILURE_RETENTION_DAYS(self) -> int:
        return int(self._get("FAILURE_RETENTION_DAYS"))

    @property
    def CACHE(self) -> str:
        return str(self._get("CACHE"))

    @property
    def CACHE_BUDGET(self) -> float:
        return float(self._get("CACHE_BUDGET"))

    @property
    def IDEMPOTENCY_TTL(self) -> int:
        return int(self._get("IDEMPOTENCY_TTL"))


conf = ClaudeSettings()


def _forget_settings(**kwargs: Any) -> None:
    conf.values.clear()


setting_changed.connect(_forget_settings, dispatch_uid="django_claude.conf.forget")
