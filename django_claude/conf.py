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
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Generic, TypeVar, overload
from urllib.parse import urlsplit

from django.conf import settings
from django.core.signals import setting_changed
from django.utils.functional import Promise

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
    "LIMITED_MESSAGE": "You have reached your limit for now. Please try again later.",
    "QUOTAS": {},
    "TENANT": None,
    "QUOTAS_WHEN_CACHE_DOWN": "refuse",
    "QUOTA_COUNT_TOKENS": False,
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
    "ADMIN_API_KEY": None,
    "ADMIN_BASE_URL": None,
    "RECONCILE_TOLERANCE": "0.01",
    "RECONCILE_WORKSPACE": None,
    "CANARY_ALPHA": 0.01,
    "CANARY_MIN_CALLS": 200,
    "CANARY_MAX_LATENCY_RATIO": 1.5,
    "CANARY_MAX_COST_RATIO": 2.0,
    "PROMETHEUS": False,
    "TRACE_URL": None,
    "OTEL_CAPTURE_CONTENT": False,
    "CALL_LOG": None,
}

PREFIX_CHARS_CEILING = 100
T = TypeVar("T")

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


def budget_amount(value: Any) -> Decimal:
    """A ``DJANGO_CLAUDE_BUDGETS`` value's USD: ``25``, ``"25"`` or ``{"usd": "25", ...}``."""
    if isinstance(value, dict):
        value = value.get("usd")
    if isinstance(value, float):
        value = repr(value)
    return Decimal(str(value))


def log_path(value: Any) -> str:
    """``CALL_LOG`` as a path, or "" (the logger): a value that is no path
    (the system check reports it) must not break a call."""
    if isinstance(value, (str, os.PathLike)) and value:
        path = os.fspath(value)
        return path if isinstance(path, str) else ""
    return ""


class _Setting(Generic[T]):
    """A setting of ``ClaudeSettings``: ``settings.DJANGO_CLAUDE_<NAME>`` (or its
    default), read through ``convert``."""

    def __init__(self, convert: Callable[[Any], T]) -> None:
        self.convert = convert
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> _Setting[T]: ...
    @overload
    def __get__(self, instance: ClaudeSettings, owner: type) -> T: ...
    def __get__(self, instance: ClaudeSettings | None, owner: type) -> T | _Setting[T]:
        if instance is None:
            return self
        # Read ~20 times a call: kept converted, with the generation of the
        # settings it was read from (a change meanwhile makes it stale); not
        # kept are containers, which each reader gets a copy of (it may change
        # its own), and lazy values (a translated message follows the language).
        kept = instance.converted.get(self.name)
        generation = instance.generation  # before reading, as in _get
        if kept is not None and kept[0] == generation:
            return kept[1]
        raw = instance._get(self.name)
        value = self.convert(raw)
        if not isinstance(value, (dict, list, set)) and not isinstance(raw, Promise):
            instance.converted[self.name] = (generation, value)
        return value


class ClaudeSettings:
    """One attribute per setting; each reads ``settings.DJANGO_CLAUDE_<NAME>``."""

    def __init__(self) -> None:
        self.values: dict[str, tuple[int, Any]] = {}  # (generation, value) read so far
        self.converted: dict[str, tuple[int, Any]] = {}  # (generation, converted value)
        self.generation = 0  # settings changes seen

    def _get(self, name: str) -> Any:
        generation = self.generation  # before reading: a change meanwhile makes it stale
        kept = self.values.get(name)
        if kept is not None and kept[0] == generation:
            return kept[1]
        value = getattr(settings, f"DJANGO_CLAUDE_{name}", DEFAULTS[name])
        self.values[name] = (generation, value)
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

    DEFAULT_MODEL = _Setting(str)
    FALLBACK_MODEL = _Setting(lambda value: str(value or ""))
    MAX_TOKENS = _Setting(int)
    TIMEOUT = _Setting(float)
    DEADLINE = _Setting(float)
    MAX_ATTEMPTS = _Setting(int)
    # Attempts on the fallback model (at most 2, whatever is set).
    FALLBACK_ATTEMPTS = _Setting(lambda value: max(1, min(2, int(value))))
    BACKOFF_BASE = _Setting(float)
    BACKOFF_MAX = _Setting(float)
    BREAKER_THRESHOLD = _Setting(int)
    BREAKER_COOLDOWN = _Setting(float)
    DEGRADED_MESSAGE = _Setting(str)
    RAISE_ON_FAILURE = _Setting(bool)
    # Quotas (django_claude.quotas reads QUOTAS itself, parsed once per value):
    # the text of a limited call, the callable deriving a tenant from a user,
    # and what a quota does when the cache does not answer ("refuse"/"allow").
    LIMITED_MESSAGE = _Setting(str)
    TENANT = _Setting(lambda value: value or None)
    QUOTAS_WHEN_CACHE_DOWN = _Setting(str)
    # Reserve input as Anthropic's token-counting endpoint counts it (only True).
    QUOTA_COUNT_TOKENS = _Setting(lambda value: value is True)
    PROMPT_PREFIX_CHARS = _Setting(lambda value: max(0, min(PREFIX_CHARS_CEILING, int(value))))
    REDACTOR = _Setting(str)
    SMELL_TEST_RATE = _Setting(float)
    SMELL_TEST_MODEL = _Setting(str)
    SMELL_TEST_RATES = _Setting(dict)
    SMELL_ALERT_DROP = _Setting(float)
    # A feature's USD a day: 25, "25", or {"usd": "25", "block": True} (a quota too).
    BUDGETS = _Setting(lambda value: {k: budget_amount(v) for k, v in dict(value).items()})
    RETENTION_DAYS = _Setting(int)
    FAILURE_RETENTION_DAYS = _Setting(int)
    CACHE = _Setting(str)
    CACHE_BUDGET = _Setting(float)
    IDEMPOTENCY_TTL = _Setting(int)
    # claude_reconcile: an Admin API key (sk-ant-admin...), where the Admin API
    # is (default: Anthropic's; never BASE_URL), and the share of Anthropic's
    # cost a day and model may differ by before it is a drift.
    ADMIN_API_KEY = _Setting(lambda value: str(value) if value else None)
    ADMIN_BASE_URL = _Setting(lambda value: str(value) if value else None)
    RECONCILE_TOLERANCE = _Setting(lambda value: Decimal(str(value)))
    # The workspace whose costs are this site's ("default": the default one);
    # None: the whole organization.
    RECONCILE_WORKSPACE = _Setting(lambda value: str(value) if value else None)
    # The canary guard (routing.guard): the one-sided test's alpha, the calls
    # each arm needs before anything trips, and the p95 latency and mean cost
    # a canary may reach as multiples of its control's.
    CANARY_ALPHA = _Setting(float)
    CANARY_MIN_CALLS = _Setting(int)
    CANARY_MAX_LATENCY_RATIO = _Setting(float)
    CANARY_MAX_COST_RATIO = _Setting(float)
    # Count calls for Prometheus too (django_claude.contrib.prometheus).
    PROMETHEUS = _Setting(lambda value: value is True)
    # OpenTelemetry: a trace's page, "https://.../trace/{trace_id}" (also
    # {span_id}), linked from a call record; and the redacted prompt and
    # answer on spans (off: never any content).
    TRACE_URL = _Setting(lambda value: str(value) if value else None)
    # Only True turns either on: "false" from the environment must not.
    OTEL_CAPTURE_CONTENT = _Setting(lambda value: value is True)
    # The call lines appended to this file (recording.calllog), not the logger.
    CALL_LOG = _Setting(log_path)


conf = ClaudeSettings()


def _forget_settings(**kwargs: Any) -> None:
    conf.generation += 1  # first: a value read before now is never kept as read after
    conf.values.clear()
    conf.converted.clear()


setting_changed.connect(_forget_settings, dispatch_uid="django_claude.conf.forget")
