"""``DJANGO_CLAUDE_QUOTAS`` (and blocking budgets) read into ``Quota`` values.

A quota has a name, a scope (``per``: ``"user"``, ``"tenant"``, or none for
one site-wide counter), a calendar window in the site's ``TIME_ZONE``
(``minute``, ``hour``, ``day``, ``month``), exactly one limit (``usd``,
``tokens`` or ``calls``) and optionally the features it covers. A feature's
budget set to block (``DJANGO_CLAUDE_BUDGETS = {"chat": {"usd": "50",
"block": True}}``) is a site-wide daily USD quota on that feature, named
``budget:<feature>``.

``problems()`` lists what is wrong with each entry (the system checks show
them); ``quotas()`` gives the entries that are right, parsed once per value
of the setting.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from django.conf import settings

SCOPES = ("user", "tenant")
WINDOWS = ("minute", "hour", "day", "month")
UNITS = ("usd", "tokens", "calls")
KEYS = frozenset({"per", "window", "feature", *UNITS})
NANO = Decimal("1e9")  # USD counters count nano-dollars: whole numbers in the cache
MAX_LIMIT = 10**15  # nano-USD, tokens or calls: within a double's exact integers (Lua)
MAX_NAME = 60

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Quota:
    """One limit, as the site configured it."""

    name: str
    window: str
    unit: str  # "usd", "tokens" or "calls"
    limit: Decimal | int  # USD as Decimal, else a whole number
    per: str = ""  # "user", "tenant", or "" for one site-wide counter
    features: frozenset[str] | None = None  # None: every feature
    budget: bool = False  # a blocking budget from DJANGO_CLAUDE_BUDGETS

    def covers(self, feature: str) -> bool:
        return self.features is None or feature in self.features

    @property
    def counter_limit(self) -> int:
        """The limit in the counter's unit (nano-USD for a USD quota)."""
        if self.unit == "usd":
            return int(Decimal(self.limit) * NANO)
        return int(self.limit)


@dataclass(frozen=True)
class Problem:
    name: str
    message: str
    hint: str


def _limit(unit: str, value: Any) -> Decimal | int:
    """A limit's value, or ValueError saying what is wrong with it."""
    if isinstance(value, bool):
        raise ValueError(f"{unit} must be a number, not {value!r}")
    if unit == "usd":
        if isinstance(value, float):
            value = repr(value)
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            raise ValueError(f'usd must be an amount such as "2.00", not {value!r}') from None
        if not amount.is_finite() or amount <= 0:
            raise ValueError(f"usd must be a positive amount, not {value!r}")
        if amount * NANO > MAX_LIMIT:
            raise ValueError(f"usd must be under {MAX_LIMIT / NANO:,.0f}")
        return amount
    if not isinstance(value, int) or value <= 0:
        raise ValueError(f"{unit} must be a positive whole number, not {value!r}")
    if value > MAX_LIMIT:
        raise ValueError(f"{unit} must be at most {MAX_LIMIT:,}")
    return value


def _features(value: Any) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple, set, frozenset)) or not value:
        raise ValueError("feature must be a feature name or a non-empty list of them")
    if not all(isinstance(item, str) and item for item in value):
        raise ValueError("feature must hold feature names (non-empty strings)")
    return frozenset(value)


def parse_quota(name: Any, spec: Any) -> Quota:
    """One ``DJANGO_CLAUDE_QUOTAS`` entry, or ValueError with what is wrong."""
    if not isinstance(name, str) or not name or len(name) > MAX_NAME or not name.isprintable():
        raise ValueError(f"a quota's name must be a short printable string, not {name!r}")
    if not isinstance(spec, Mapping):
        raise ValueError(f"must be a dict such as {{'window': 'day', 'usd': '2'}}, not {spec!r}")
    unknown = sorted(str(key) for key in spec if key not in KEYS)
    if unknown:
        raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(KEYS))}")
    window = spec.get("window")
    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
    per = spec.get("per", "")
    if per is None:
        per = ""
    if per not in ("", *SCOPES):
        raise ValueError(f"per must be 'user', 'tenant' or left out, not {per!r}")
    units = [unit for unit in UNITS if unit in spec]
    if len(units) != 1:
        raise ValueError("give exactly one limit: usd, tokens or calls")
    unit = units[0]
    return Quota(
        name=name,
        window=window,
        unit=unit,
        limit=_limit(unit, spec[unit]),
        per=per,
        features=_features(spec.get("feature")),
    )


def parse_budget(feature: Any, value: Any) -> Quota | None:
    """A blocking budget as a quota (None for one that only alerts), or ValueError."""
    if not isinstance(feature, str) or not feature:
        raise ValueError(f"a budget's feature must be a non-empty string, not {feature!r}")
    if isinstance(value, Mapping):
        unknown = sorted(str(key) for key in value if key not in ("usd", "block"))
        if unknown:
            raise ValueError(f"unknown key(s) {', '.join(unknown)}; known: block, usd")
        if "usd" not in value:
            raise ValueError("a budget needs usd")
        if not isinstance(value.get("block", False), bool):
            raise ValueError("block must be True or False")
        blocking = bool(value.get("block", False))
        value = value["usd"]
    else:
        blocking = False
    amount = _limit("usd", value)
    if not blocking:
        return None
    return Quota(
        name=f"budget:{feature}"[:MAX_NAME],
        window="day",
        unit="usd",
        limit=amount,
        features=frozenset({feature}),
        budget=True,
    )


def _entries(raw: Any) -> Iterable[tuple[Any, Any]]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise TypeError(f"must be a dict of quotas by name, not {type(raw).__name__}")
    return raw.items()


def problems() -> list[Problem]:
    """What is wrong in ``DJANGO_CLAUDE_QUOTAS``, ``DJANGO_CLAUDE_BUDGETS`` and
    ``DJANGO_CLAUDE_TENANT``, one per entry."""
    found: list[Problem] = []
    for setting, parse in (("QUOTAS", parse_quota), ("BUDGETS", parse_budget)):
        try:
            entries = list(_entries(getattr(settings, f"DJANGO_CLAUDE_{setting}", None)))
        except TypeError as exc:
            found.append(Problem(f"DJANGO_CLAUDE_{setting}", str(exc), HINTS[setting]))
            continue
        for name, spec in entries:
            try:
                parse(name, spec)
            except ValueError as exc:
                found.append(
                    Problem(f"DJANGO_CLAUDE_{setting}[{name!r}]", str(exc), HINTS[setting])
                )
    tenant = getattr(settings, "DJANGO_CLAUDE_TENANT", None)
    if (
        tenant is not None
        and not (isinstance(tenant, str) and "." in tenant)
        and not callable(tenant)
    ):
        found.append(
            Problem(
                "DJANGO_CLAUDE_TENANT",
                f"must be a dotted path to a callable or a callable, not {tenant!r}",
                HINTS["TENANT"],
            )
        )
    return found


HINTS = {
    "QUOTAS": (
        'For example {"user-daily": {"per": "user", "window": "day", "usd": "2.00"}}: '
        "per is user, tenant or left out; window is minute, hour, day or month; exactly "
        "one of usd, tokens, calls; feature is optional (a name or a list)."
    ),
    "BUDGETS": (
        'A feature\'s USD per day: {"chat": 100} or {"chat": {"usd": "100", "block": True}}.'
    ),
    "TENANT": 'For example "myapp.claude.tenant_of", a function taking the user, returning a key.',
}


class _Parsed:
    """The quotas of the settings' values, parsed once per value: the last
    few values are kept (a test or a benchmark that switches between two
    must not parse on every call)."""

    KEPT = 4

    def __init__(self) -> None:
        self.lock = threading.Lock()
        # (QUOTAS, BUDGETS) as read, and their quotas; the newest last.
        self.known: list[tuple[Any, Any, tuple[Quota, ...]]] = []

    def get(self) -> tuple[Quota, ...]:
        raw_quotas = getattr(settings, "DJANGO_CLAUDE_QUOTAS", None)
        raw_budgets = getattr(settings, "DJANGO_CLAUDE_BUDGETS", None)
        for known_quotas, known_budgets, value in reversed(self.known):
            if known_quotas is raw_quotas and known_budgets is raw_budgets:
                return value
        value = tuple(_valid(raw_quotas, parse_quota)) + tuple(_valid(raw_budgets, parse_budget))
        with self.lock:
            # Identity stands for the value: a setting changed in place (a
            # test's dict, mutated) is parsed anew only when replaced.
            self.known = [*self.known[-(self.KEPT - 1) :], (raw_quotas, raw_budgets, value)]
        return value


def _valid(raw: Any, parse: Any) -> Iterable[Quota]:
    """The entries that parse. A broken one is left out, with an ERROR each
    time the setting is read anew (``manage.py check`` names it too)."""
    try:
        entries = list(_entries(raw))
    except TypeError as exc:
        logger.error("claude quotas: the setting is ignored: %s", exc)
        return
    for name, spec in entries:
        try:
            quota = parse(name, spec)
        except ValueError as exc:
            logger.error("claude quotas: %r is ignored: %s", name, exc)
            continue
        if quota is not None:
            yield quota


_parsed = _Parsed()


def quotas() -> tuple[Quota, ...]:
    """Every valid quota and blocking budget of the settings."""
    return _parsed.get()
