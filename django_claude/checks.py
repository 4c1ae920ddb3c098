"""System checks for the ``DJANGO_CLAUDE_*`` settings (``manage.py check``).

Errors (``E0xx``) are settings that cannot work; warnings (``W0xx``) are
settings that work but will surprise someone in production.
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from importlib.util import find_spec
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Warning
from django.db import DatabaseError
from django.utils.module_loading import import_string

from django_claude.conf import PREFIX_CHARS_CEILING, conf
from django_claude.judging import celery_configured
from django_claude.quotas import config as quota_config
from django_claude.recording import pricing
from django_claude.recording.catalog import list_price

E001 = "django_claude.E001"  # a timing or count setting out of range
E002 = "django_claude.E002"  # PROMPT_PREFIX_CHARS above the ceiling
E003 = "django_claude.E003"  # REDACTOR not importable or not callable
E004 = "django_claude.E004"  # CACHE names no configured cache
E005 = "django_claude.E005"  # a smell-test rate outside [0, 1]
E006 = "django_claude.E006"  # DEFAULT_MODEL empty
E007 = "django_claude.E007"  # a budget that is not a positive number
E008 = "django_claude.E008"  # WRITE_BEHIND not True, False or None
E009 = "django_claude.E009"  # a malformed quota
E010 = "django_claude.E010"  # TENANT neither a dotted path nor a callable
E011 = "django_claude.E011"  # QUOTAS_WHEN_CACHE_DOWN neither "refuse" nor "allow"
E012 = "django_claude.E012"  # a canary guard setting out of range
E013 = "django_claude.E013"  # PROMETHEUS set without prometheus_client
E014 = "django_claude.E014"  # TRACE_URL not a URL template with {trace_id}
E015 = "django_claude.E015"  # PROMETHEUS or OTEL_CAPTURE_CONTENT not True or False
E016 = "django_claude.E016"  # QUOTA_COUNT_TOKENS not True or False
E017 = "django_claude.E017"  # CALL_LOG neither a path nor None, or a directory
W001 = "django_claude.W001"  # no API key anywhere
W002 = "django_claude.W002"  # a model in use has no price
W003 = "django_claude.W003"  # a per-process cache: the breaker is not shared
W004 = "django_claude.W004"  # DEADLINE shorter than TIMEOUT
W005 = "django_claude.W005"  # smell tests judged by a Celery worker that cannot read the stash
W006 = "django_claude.W006"  # (--deploy) smell tests judged in the web process, no Celery
W007 = "django_claude.W007"  # quotas on a cache that cannot hold them across processes
W008 = "django_claude.W008"  # CALL_LOG in a missing directory, or not writable here

# Caches whose ``incr`` is not atomic across processes, or that keep nothing.
UNSAFE_FOR_QUOTAS = ("DatabaseCache", "FileBasedCache", "DummyCache")


def _positive(name: str, value: Any, *, integer: bool = False) -> list[CheckMessage]:
    try:
        number = int(value) if integer else float(value)
    except (TypeError, ValueError):
        number = None
    if number is None or number <= 0 or (integer and number != value):
        kind = "a positive integer" if integer else "a positive number of seconds"
        return [Error(f"DJANGO_CLAUDE_{name} must be {kind}, not {value!r}.", id=E001)]
    return []


def check_settings(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    get = conf._get
    messages: list[CheckMessage] = []
    for name in ("TIMEOUT", "DEADLINE", "BACKOFF_MAX", "BREAKER_COOLDOWN", "CACHE_BUDGET"):
        messages += _positive(name, get(name))
    for name in ("MAX_ATTEMPTS", "BREAKER_THRESHOLD", "MAX_TOKENS"):
        messages += _positive(name, get(name), integer=True)
    base = get("BACKOFF_BASE")
    if not isinstance(base, (int, float)) or base < 0:
        messages.append(Error(f"DJANGO_CLAUDE_BACKOFF_BASE must be >= 0, not {base!r}.", id=E001))
    prefix = get("PROMPT_PREFIX_CHARS")
    if not isinstance(prefix, int) or not 0 <= prefix <= PREFIX_CHARS_CEILING:
        messages.append(
            Error(
                f"DJANGO_CLAUDE_PROMPT_PREFIX_CHARS must be an int from 0 to "
                f"{PREFIX_CHARS_CEILING}, not {prefix!r}.",
                hint="More than 100 characters of a prompt is more than a log should hold.",
                id=E002,
            )
        )
    try:
        redactor = import_string(str(get("REDACTOR")))
    except ImportError as exc:
        messages.append(Error(f"DJANGO_CLAUDE_REDACTOR cannot be imported: {exc}.", id=E003))
    else:
        if not callable(redactor):
            messages.append(Error("DJANGO_CLAUDE_REDACTOR must name a callable.", id=E003))
    alias = get("CACHE")
    if alias not in getattr(settings, "CACHES", {"default": {}}):
        messages.append(
            Error(f"DJANGO_CLAUDE_CACHE names {alias!r}, which is not in CACHES.", id=E004)
        )
    else:
        backend = settings.CACHES[alias].get("BACKEND", "")
        if not settings.DEBUG and backend.endswith(("LocMemCache", "DummyCache")):
            messages.append(
                Warning(
                    f"DJANGO_CLAUDE_CACHE {alias!r} is a per-process cache: the circuit breaker "
                    "and idempotency keys are not shared between workers.",
                    hint="Use Redis or Memcached for that cache in production.",
                    id=W003,
                )
            )
    rates = {"DJANGO_CLAUDE_SMELL_TEST_RATE": get("SMELL_TEST_RATE")}
    for feature, rate in dict(get("SMELL_TEST_RATES")).items():
        rates[f"DJANGO_CLAUDE_SMELL_TEST_RATES[{feature!r}]"] = rate
    for name, rate in rates.items():
        if not isinstance(rate, (int, float)) or not 0 <= rate <= 1:
            messages.append(Error(f"{name} must be between 0 and 1, not {rate!r}.", id=E005))
    if not str(get("DEFAULT_MODEL") or "").strip():
        messages.append(Error("DJANGO_CLAUDE_DEFAULT_MODEL must name a model.", id=E006))
    messages += check_quotas()
    messages += check_canary_guard()
    messages += check_trace_url(get("TRACE_URL"))
    messages += check_call_log(get("CALL_LOG"))
    for name in ("PROMETHEUS", "OTEL_CAPTURE_CONTENT"):
        if not isinstance(get(name), bool):
            messages.append(
                Error(
                    f"DJANGO_CLAUDE_{name} must be True or False, not {get(name)!r}.",
                    hint="Anything but True counts as False: convert a string from the "
                    "environment (env.bool).",
                    id=E015,
                )
            )
    if get("PROMETHEUS") and find_spec("prometheus_client") is None:
        messages.append(
            Error(
                "DJANGO_CLAUDE_PROMETHEUS is set, but prometheus_client is not installed.",
                hint='pip install "django-claude[prometheus]"',
                id=E013,
            )
        )
    write_behind = get("WRITE_BEHIND")
    if write_behind is not None and not isinstance(write_behind, bool):
        messages.append(
            Error(
                f"DJANGO_CLAUDE_WRITE_BEHIND must be True, False or None, not {write_behind!r}.",
                hint='A string from the environment ("false") would count as true: convert it.',
                id=E008,
            )
        )
    try:
        if float(get("DEADLINE")) < float(get("TIMEOUT")):
            messages.append(
                Warning(
                    "DJANGO_CLAUDE_DEADLINE is shorter than DJANGO_CLAUDE_TIMEOUT: no attempt "
                    "can use its full timeout and there is no time left for the fallback.",
                    id=W004,
                )
            )
    except (TypeError, ValueError):
        pass  # already reported as E001
    return messages


def check_trace_url(template: Any) -> list[CheckMessage]:
    """``TRACE_URL``: None, or an http(s) URL template that names {trace_id}
    and nothing but it and {span_id}."""
    if not template:
        return []
    error = None
    if not isinstance(template, str) or not template.startswith(("https://", "http://")):
        error = "must be an http(s) URL"
    elif "{trace_id}" not in template:
        error = "must contain {trace_id}"
    else:
        try:
            filled = template.format(trace_id="0123456789abcdef" * 2, span_id="f" * 16)
        except (KeyError, IndexError, ValueError) as exc:
            error = f"has a placeholder other than {{trace_id}} and {{span_id}} ({exc})"
        else:
            if "0123456789abcdef" * 2 not in filled:
                error = "must contain {trace_id} (not {{trace_id}})"
    if error is None:
        return []
    return [
        Error(
            f"DJANGO_CLAUDE_TRACE_URL {error}: {str(template)[:80]!r}.",
            hint='Like "https://grafana.example.com/explore?traceId={trace_id}".',
            id=E014,
        )
    ]


def check_call_log(value: Any) -> list[CheckMessage]:
    """``CALL_LOG``: None, or a file this process could append to."""
    if value is None or value == "":
        return []
    if not isinstance(value, (str, os.PathLike)) or not isinstance(os.fspath(value), str):
        return [Error(f"DJANGO_CLAUDE_CALL_LOG must be a path or None, not {value!r}.", id=E017)]
    path = os.path.abspath(os.fspath(value))
    if os.path.isdir(path):
        return [Error(f"DJANGO_CLAUDE_CALL_LOG {path!r} is a directory, not a file.", id=E017)]
    where = path if os.path.exists(path) else os.path.dirname(path)
    if not os.path.isdir(os.path.dirname(path)):
        problem = "is in a directory that does not exist"
    elif not os.access(where, os.W_OK):
        problem = "cannot be written by this user"
    else:
        return []
    return [
        Warning(
            f"DJANGO_CLAUDE_CALL_LOG {path!r} {problem}: the call lines will go to the "
            "django_claude.calls logger (or stderr) until it can be written.",
            hint="Create the directory and let the server's user write it (the check may "
            "run as another user than the server).",
            id=W008,
        )
    ]


def check_canary_guard() -> list[CheckMessage]:
    """The canary guard's settings: a level in (0, 1), a sample of at least
    one call, ratios above 1 (at 1 or under, an equal canary would trip)."""
    get = conf._get
    wanted = {
        "CANARY_ALPHA": (lambda v: 0 < v < 1, "a number between 0 and 1, like 0.01"),
        "CANARY_MIN_CALLS": (
            lambda v: isinstance(v, int) and v >= 1,
            "a whole number of calls, at least 1",
        ),
        "CANARY_MAX_LATENCY_RATIO": (lambda v: v > 1, "a ratio above 1, like 1.5"),
        "CANARY_MAX_COST_RATIO": (lambda v: v > 1, "a ratio above 1, like 2.0"),
    }
    messages: list[CheckMessage] = []
    for name, (good, kind) in wanted.items():
        value = get(name)
        number = not isinstance(value, bool) and isinstance(value, (int, float))
        if not number or not good(value):
            messages.append(Error(f"DJANGO_CLAUDE_{name} must be {kind}, not {value!r}.", id=E012))
    return messages


def check_quotas() -> list[CheckMessage]:
    """Every malformed quota, budget and tenant setting, and a cache quotas
    cannot rely on."""
    ids = {"DJANGO_CLAUDE_BUDGETS": E007, "DJANGO_CLAUDE_TENANT": E010}
    messages: list[CheckMessage] = [
        Error(
            f"{problem.name}: {problem.message}.",
            hint=problem.hint,
            id=ids.get(problem.name.split("[")[0], E009),
        )
        for problem in quota_config.problems()
    ]
    mode = conf._get("QUOTAS_WHEN_CACHE_DOWN")
    if mode not in ("refuse", "allow"):
        messages.append(
            Error(
                f'DJANGO_CLAUDE_QUOTAS_WHEN_CACHE_DOWN must be "refuse" or "allow", not {mode!r}.',
                id=E011,
            )
        )
    counting = conf._get("QUOTA_COUNT_TOKENS")
    if not isinstance(counting, bool):
        messages.append(
            Error(
                f"DJANGO_CLAUDE_QUOTA_COUNT_TOKENS must be True or False, not {counting!r}.",
                hint="Anything but True leaves token counting off: convert a string from "
                "the environment (env.bool).",
                id=E016,
            )
        )
    if quota_config.quotas():
        backend = str(getattr(settings, "CACHES", {}).get(conf.CACHE, {}).get("BACKEND", ""))
        if backend.endswith(UNSAFE_FOR_QUOTAS) or (
            backend.endswith("LocMemCache") and not settings.DEBUG
        ):
            messages.append(
                Warning(
                    f"DJANGO_CLAUDE_QUOTAS are counted in the cache {conf.CACHE!r} "
                    f"({backend.rsplit('.', 1)[-1]}), which cannot hold them across processes: "
                    "workers could spend past a limit (or, with DummyCache, every call is "
                    "refused).",
                    hint="Use Redis (one Lua script per call) or Memcached for that cache.",
                    id=W007,
                )
            )
    return messages


def _sampling() -> bool:
    """Is any share of calls sampled for the smell test?"""
    try:
        rates = [float(conf.SMELL_TEST_RATE), *map(float, conf.SMELL_TEST_RATES.values())]
    except (TypeError, ValueError):
        return False  # reported as E005
    return any(rate > 0 for rate in rates)


def check_smell_test(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    """A Celery worker judging sampled calls with a per-process cache it can't read.

    Without Celery the judge runs in a thread of the process that made the
    call, which reads its own cache: nothing to warn about.
    """
    if not _sampling() or not celery_configured():
        return []
    from celery import current_app  # importable: celery_configured() said so

    eager = bool(getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False)) or bool(
        current_app.conf.task_always_eager
    )
    backend = settings.CACHES.get(conf.CACHE, {}).get("BACKEND", "")
    if not eager and backend.endswith(("LocMemCache", "DummyCache")):
        return [
            Warning(
                f"Smell tests are judged by a Celery worker, but DJANGO_CLAUDE_CACHE "
                f"{conf.CACHE!r} is a per-process cache the worker cannot read: every "
                "sampled verdict will end as 'error'.",
                hint="Use Redis or Memcached for that cache, or CELERY_TASK_ALWAYS_EAGER.",
                id=W005,
            )
        ]
    return []


def check_smell_test_deploy(
    app_configs: Sequence[Any] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """(``check --deploy``) Sampled calls judged in the web process, for lack of Celery."""
    if not _sampling() or celery_configured():
        return []
    return [
        Warning(
            "Smell tests are judged in a background thread of each web process (no Celery "
            "is configured): judge calls share the web processes' resources, and calls "
            "still waiting for the judge when a process stops end as 'error'.",
            hint="Configure Celery (CELERY_BROKER_URL) and run a worker to judge sampled "
            "calls there, or set DJANGO_CLAUDE_SMELL_TEST_RATE = 0.",
            id=W006,
        )
    ]


def check_api_key(app_configs: Sequence[Any] | None = None, **kwargs: Any) -> list[CheckMessage]:
    if conf.api_key_anywhere() or conf.api_key_to_send():
        return []
    return [
        Warning(
            "No Anthropic API key: every call will end degraded.",
            hint="Set DJANGO_CLAUDE_API_KEY (read from the environment, never in code) "
            "or ANTHROPIC_API_KEY. Offline: run manage.py claude_fake_api.",
            id=W001,
        )
    ]


def check_prices(
    app_configs: Sequence[Any] | None = None, databases: Sequence[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """Warn about a configured model with no price: no list price in
    genai-prices and no ``ModelPrice`` (runs with ``--database``)."""
    if not databases:
        return []
    try:
        book = pricing.load_price_book()
    except DatabaseError:
        return []  # not migrated yet
    today = datetime.date.today()
    messages: list[CheckMessage] = []
    for name in ("DEFAULT_MODEL", "FALLBACK_MODEL", "SMELL_TEST_MODEL"):
        model = str(conf._get(name) or "")
        if model and book.price_for(model, today) is None and not list_price(model, today):
            messages.append(
                Warning(
                    f"DJANGO_CLAUDE_{name} {model!r} has no price: genai-prices does not "
                    "list it and there is no ModelPrice, so its calls will be recorded "
                    "with no cost.",
                    hint="Add its price in the admin (Claude > Model prices), or upgrade "
                    "genai-prices if the model is new.",
                    id=W002,
                )
            )
    return messages
