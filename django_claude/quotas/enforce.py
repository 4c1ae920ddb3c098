"""Admit a call against its quotas (reserve its worst case), settle it after.

``admit`` charges every quota that applies to the call (by feature, user and
tenant) its worst case, all or none. A refused call is not sent: it gets a
``Refusal`` naming the quota and when its window resets. ``Reservation.settle``
moves each counter to what the call really used, whatever its ending (an
unanswered call used nothing), so that no reservation outlives its call.

When the cache does not answer, nothing can be reserved: the call is refused
(``DJANGO_CLAUDE_QUOTAS_WHEN_CACHE_DOWN = "refuse"``, the default: no money
is spent that was not reserved) or let through unreserved (``"allow"``).
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import logging
import math
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.utils import timezone

from django_claude.conf import conf
from django_claude.quotas import counters
from django_claude.quotas.config import NANO, Quota, quotas
from django_claude.quotas.estimate import WorstCase, worst_case
from django_claude.quotas.windows import window_bounds, window_label, window_of
from django_claude.recording.clock import aware
from django_claude.recording.pricing import Usage
from django_claude.shared_cache import COOLDOWN

logger = logging.getLogger(__name__)

TTL_SLACK = 60  # seconds a counter outlives its window


@dataclass(frozen=True)
class Refusal:
    """Why a call was not sent, and when to try again."""

    quota: str  # the quota's name
    retry_after: float  # seconds
    reason: str  # "limit", "unpriced" (a USD quota, a model without a price) or "cache down"


@dataclass(frozen=True)
class Scope:
    """Whom a call is charged to."""

    feature: str
    user: str = ""
    tenant: str = ""

    def key_of(self, quota: Quota) -> str | None:
        """The scope's part of the quota's counter key; None if it does not apply."""
        if not quota.covers(self.feature):
            return None
        if quota.per == "user":
            return self.user or None
        if quota.per == "tenant":
            return self.tenant or None
        return ""


def counter_key(quota: Quota, scope_key: str, start: datetime.datetime) -> str:
    """A counter's cache key: keyed with ``SECRET_KEY`` and hashed, so no user
    id or tenant name can be read (or guessed back) from it, and safe for any
    cache backend (Memcached refuses spaces)."""
    return f"django_claude:quota:{_digest(quota.name, scope_key, settings.SECRET_KEY)}:" + (
        window_label(start)
    )


@functools.lru_cache(maxsize=4096)
def _digest(name: str, scope_key: str, secret: str) -> str:
    """The hashed part of a counter's key (the same user is charged again
    and again: hashed once)."""
    return hashlib.blake2b(
        f"{name}\0{scope_key}".encode(), key=_key_of(secret), digest_size=12
    ).hexdigest()


@functools.lru_cache(maxsize=4)
def _key_of(secret: str) -> bytes:
    return hashlib.sha256(f"django-claude quotas {secret}".encode()).digest()


def applying(scope: Scope) -> list[tuple[Quota, str]]:
    """The quotas that apply to a call in ``scope``, each with its scope key
    (remembered per scope while the quota settings are the same object)."""
    configured = quotas()
    if not configured:
        return []
    kept = _applying.get(scope)
    if kept is not None and kept[0] is configured:
        return list(kept[1])
    found = []
    for quota in configured:
        key = scope.key_of(quota)
        if key is not None:
            found.append((quota, key))
    if len(_applying) >= 4096:
        _applying.clear()
    _applying[scope] = (configured, tuple(found))
    return found


_applying: dict[Scope, tuple[tuple[Quota, ...], tuple[tuple[Quota, str], ...]]] = {}


def _amount(quota: Quota, worst: WorstCase) -> int | None:
    if quota.unit == "calls":
        return 1
    if quota.unit == "tokens":
        return worst.tokens
    return None if worst.usd is None else math.ceil(worst.usd * NANO)


def used_amount(unit: str, usage: Usage | None, cost: Decimal | None, billed: bool) -> int:
    """What a finished call counts for in a quota's unit."""
    if not billed:
        return 0
    if unit == "calls":
        return 1
    if unit == "tokens":
        if usage is None:
            return 0
        return (
            usage.input_tokens
            + usage.output_tokens
            + usage.cache_read_input_tokens
            + usage.cache_creation_input_tokens
        )
    return 0 if cost is None else math.ceil(cost * NANO)


@dataclass
class Reservation:
    """What a call reserved, to be settled once when it ends. Made with
    ``admit(later=True)``, its answer is still on its way: ``confirm`` waits
    for it (settling does too)."""

    held: list[tuple[Quota, counters.Charge]] = field(default_factory=list)
    settled: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)
    pending: counters.Reserving | None = field(default=None, repr=False, compare=False)
    made_at: datetime.datetime | None = field(default=None, repr=False, compare=False)
    refusal: Refusal | None = None

    def confirm(self) -> Refusal | None:
        """The refusal, if the quotas refused this reservation (then it holds
        nothing); None once it is made. Waits for a reservation on its way."""
        with self.lock:
            pending = self.pending
            if pending is None:
                return self.refusal
            assert self.made_at is not None
            try:
                decided = _decided(self.held, pending, self.made_at)
            except BaseException:  # (an interrupt): it is cancelled, so it holds nothing
                self.pending, self.held = None, []
                raise
            self.pending = None
            if decided is not None:
                self.held = []
                self.refusal = decided if decided is not _ALLOWED else None
            return self.refusal

    @property
    def unconfirmed(self) -> bool:
        """Is its answer still unread (so no request of the call went out)?"""
        return self.pending is not None

    def give_back(self) -> None:
        """Nothing of the call was sent: hold nothing (one whose answer is
        unread is cancelled, without waiting for it)."""
        if self.unconfirmed:
            self.abandon()
        else:
            self.settle(None, None, billed=False)

    def abandon(self) -> None:
        """Give up on an unread reservation without waiting for it: it is
        cancelled in the background (undone if it landed), and holds nothing."""
        with self.lock:
            pending, self.pending = self.pending, None
            if pending is None:
                return
            self.held, self.settled = [], True
        pending.abandon()

    def settle(self, usage: Usage | None, cost: Decimal | None, *, billed: bool) -> None:
        """Replace the reservation by what the call used (``billed``: it
        reached Anthropic and was answered, even in part). Once, whichever
        thread comes first; never raises."""
        self.confirm()
        with self.lock:
            if self.settled or not self.held:
                self.settled = True
                return
            self.settled = True
        changes = [
            (charge.key, used_amount(quota.unit, usage, cost, billed) - charge.amount)
            for quota, charge in self.held
        ]
        counters.adjust(changes)  # never blocks: a thread of its own writes it


NOTHING_HELD = Reservation(settled=True)


def admit(
    found: list[tuple[Quota, str]],
    params: dict[str, Any],
    models: list[str],
    *,
    now: datetime.datetime | None = None,
    counted: Mapping[str, int] | None = None,
    later: bool = False,
) -> Reservation | Refusal:
    """Reserve the call's worst case against the quotas ``found`` for it
    (``applying``), or say which one refuses it. ``counted``: each model's
    input tokens from Anthropic's token count (``counting``), if made.
    ``later``: do not wait for the cache's answer; the reservation's
    ``confirm()`` gives the refusal, if any (call it before the request)."""
    if not found:
        return NOTHING_HELD
    now = aware(now or timezone.now())  # (USE_TZ = False: the site's local time)
    on = now.astimezone(datetime.UTC).date()
    worst = worst_case(params, models, on=on, counted=counted)
    held: list[tuple[Quota, counters.Charge]] = []
    stamp = now.timestamp()
    for quota, scope_key in found:
        start, _, _, ends_at = window_of(quota.window, now)
        amount = _amount(quota, worst)
        if amount is None:
            return Refusal(quota.name, ends_at - stamp, "unpriced")
        charge = counters.Charge(
            key=counter_key(quota, scope_key, start),
            amount=amount,
            limit=quota.counter_limit,
            ttl=math.ceil(ends_at - stamp) + TTL_SLACK,
        )
        held.append((quota, charge))
    reservation = Reservation(
        held=held, pending=counters.Reserving([charge for _, charge in held]), made_at=now
    )
    if later:
        return reservation
    refusal = reservation.confirm()
    if refusal is not None:
        return refusal
    return reservation if reservation.held else NOTHING_HELD


_ALLOWED = Refusal("", 0.0, "")  # the cache did not answer, and the site lets calls through


def _decided(
    held: list[tuple[Quota, counters.Charge]],
    pending: counters.Reserving,
    now: datetime.datetime,
) -> Refusal | None:
    """How ``pending`` went: None when made, else the refusal (``_ALLOWED``:
    nothing reserved, and the call may go)."""
    try:
        refused = pending.result()
    except counters.QuotaStoreUnavailable:
        if conf.QUOTAS_WHEN_CACHE_DOWN == "allow":
            return _ALLOWED
        return Refusal(held[0][0].name, COOLDOWN, "cache down")
    if not refused:
        return None
    # The call fits again only once every quota that refuses it has reset.
    blocking = [held[index - 1] for index in refused]
    ends = [(window_bounds(quota.window, now)[1], quota) for quota, _ in blocking]
    end, quota = max(ends, key=lambda pair: pair[0])
    for too_small, charge in blocking:
        if charge.amount > charge.limit:
            logger.warning(
                "claude quota %r: one call's worst case is more than the whole limit, "
                "so no such call fits; raise the limit or lower max_tokens",
                too_small.name,
            )
    return Refusal(quota.name, max(0.0, (end - now).total_seconds()), "limit")
