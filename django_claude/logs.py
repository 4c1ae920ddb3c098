"""Where the call lines go when the site does not say, and a JSON formatter.

Each call writes one JSON line to the ``django_claude.calls`` logger. In a
project with no say about that logger, the line reaches stderr the way
Django's own ``django`` logger does (a ``StreamHandler``, level INFO):
``show_call_lines()``, run once from ``AppConfig.ready()``, attaches that one
handler, and only when no handler would get the line otherwise. A site whose
``LOGGING`` names ``django_claude.calls`` or ``django_claude``, whose root
logger has a handler, or that set ``LOGGING_CONFIG = None`` keeps full
control: nothing is attached; nor with ``DJANGO_CLAUDE_CALL_LOG``, whose file
gets the lines (``recording.calllog``). A later ``dictConfig`` that configures the
logger replaces the handler, as for any logger, and a handler given to the
root logger later (Celery's worker, a test runner) takes the lines over.

``JsonFormatter`` is for sites with structured logging: every record becomes
one JSON object, and a call line is its own fields (``record.claude``) plus
``level`` and ``logger``, never a JSON string inside JSON.
"""

from __future__ import annotations

import datetime
import logging
from typing import Any

from django.conf import settings

from django_claude.conf import conf
from django_claude.recording.encoding import to_json

CALLS_LOGGER = "django_claude.calls"
_OWN_LOGGERS = ("django_claude", CALLS_LOGGER)


class CallLinesToStderr(logging.StreamHandler):
    """The handler ``show_call_lines`` attaches: the line as it is, on stderr.

    It steps aside once the root logger has a handler of its own (added later
    by Celery's worker or a test runner), which gets the line instead.
    """

    default_call_lines = True  # not the site's: ``recording.calllog`` looks past it

    def __init__(self) -> None:
        super().__init__()  # sys.stderr
        self.setFormatter(logging.Formatter("%(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        if record.name == CALLS_LOGGER and logging.getLogger().handlers:
            return
        super().emit(record)


def site_configures_call_lines() -> bool:
    """Has the site a say about where call lines go?"""
    if conf.CALL_LOG:
        return True  # DJANGO_CLAUDE_CALL_LOG: to that file
    if getattr(settings, "LOGGING_CONFIG", "logging.config.dictConfig") is None:
        return True  # the site configures logging itself
    configured = dict(getattr(settings, "LOGGING", {}) or {}).get("loggers", {}) or {}
    if any(name in configured for name in _OWN_LOGGERS):
        return True
    return logging.getLogger(CALLS_LOGGER).hasHandlers()  # the root's, or one set in code


def show_call_lines() -> bool:
    """Attach ``CallLinesToStderr`` to ``django_claude.calls`` unless the site
    configures where its lines go; True if it was attached (or already was)."""
    logger = logging.getLogger(CALLS_LOGGER)
    if any(isinstance(handler, CallLinesToStderr) for handler in logger.handlers):
        return True
    if site_configures_call_lines():
        return False
    logger.addHandler(CallLinesToStderr())
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)  # the root's WARNING would drop ok calls
    return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, for ``LOGGING["formatters"]``::

        "json": {"()": "django_claude.logs.JsonFormatter"}

    A call line is the call's fields as ``claude_ingest_log`` reads them, with
    ``level`` and ``logger`` added; any other record is ``time``, ``level``,
    ``logger``, ``message`` and, with an exception, ``exc_info``.
    """

    def format(self, record: logging.LogRecord) -> str:
        line = getattr(record, "claude", None)
        if isinstance(line, dict):
            payload: dict[str, Any] = {"level": record.levelname, "logger": record.name}
            payload.update(line)
            return to_json(payload)
        payload = {
            "time": datetime.datetime.fromtimestamp(record.created, tz=datetime.UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            payload["exc_info"] = self.formatException(record.exc_info)
        elif record.exc_text:
            payload["exc_info"] = record.exc_text
        if record.stack_info:
            payload["stack_info"] = self.formatStack(record.stack_info)
        return to_json(payload)
