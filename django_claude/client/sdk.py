"""Build and memoise the SDK clients. Retries are ours (``max_retries=0``), and
the sync client's transport keeps to each attempt's deadline (``deadline.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
import weakref
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, TypeVar

import anthropic

from django_claude.client.deadline import BoundedTransport, extend_bound
from django_claude.client.direct import AsyncLane, Lane, async_lane_for, lane_for
from django_claude.client.errors import MissingCredentials
from django_claude.client.ratelimits import note_response
from django_claude.conf import conf
from django_claude.telemetry import note_not_sent

R = TypeVar("R")

# The SDK's own spans (children of each call's) carry metadata only, whatever
# ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE says: content reaches a span
# only through DJANGO_CLAUDE_OTEL_CAPTURE_CONTENT, after the redactor.
SDK_TELEMETRY: Any = {"traces": {"content_mode": "metadata_only"}}
# Without OpenTelemetry's SDK (no tracer provider, no trace context and no
# baggage to pass on) the SDK's span would be OpenTelemetry's invalid one,
# which neither records nor propagates: the call asks the twin client that
# skips making it (~60 us a request), sharing the same connection pool.
QUIET_TELEMETRY: Any = {"traces": False}


# The call's admission, when its quota reservation's answer is still on its
# way (``Reservation.confirm``), and the call's deadline: read just before a
# request goes out, so the round trip to the cache overlaps the SDK building
# the request.
_admission: ContextVar[tuple[Callable[[], object], float] | None] = ContextVar(
    "django_claude_admission", default=None
)


class NotAdmitted(BaseException):
    """A quota refused the call: its request is not sent. A ``BaseException``
    (as a cancellation is) so that the SDK passes it on as it is, and its
    span does not report the request as a failed one."""


@contextlib.contextmanager
def admission(confirm: Callable[[], object] | None, deadline_ends: float) -> Iterator[None]:
    """Requests sent in this block go only once ``confirm()`` returns None;
    the attempt's time spent waiting for it is given back, within the
    call's deadline (``deadline_ends``, monotonic)."""
    token = _admission.set(None if confirm is None else (confirm, deadline_ends))
    try:
        yield
    finally:
        _admission.reset(token)


def _confirm_admission(request: Any) -> None:
    gate = _admission.get()
    if gate is None:
        return
    confirm, deadline_ends = gate
    started = time.monotonic()
    if confirm() is not None:
        note_not_sent()  # the SDK's span of it: no status, and this mark
        raise NotAdmitted("django-claude: a quota refused this call; nothing was sent")
    extend_bound(time.monotonic() - started, cap=deadline_ends)


@functools.lru_cache(maxsize=8)
def _sync_client(api_key: str | None, base_url: str | None) -> anthropic.Anthropic:
    transport = BoundedTransport(limits=anthropic.DEFAULT_CONNECTION_LIMITS)
    return anthropic.Anthropic(
        api_key=api_key,
        base_url=base_url,
        max_retries=0,
        open_telemetry=SDK_TELEMETRY,
        http_client=anthropic.DefaultHttpxClient(
            transport=transport,
            event_hooks={"request": [_confirm_admission], "response": [note_response]},
        ),
    )


async def _note_response(response: Any) -> None:
    note_response(response)


# An async client's connection pool belongs to the event loop that opened it,
# so async clients are kept per loop (and go away with it).
_async_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str | None, ...], anthropic.AsyncAnthropic]
] = weakref.WeakKeyDictionary()


# The quiet twins' direct lanes (``direct.py``): a request no span of the
# SDK's would see goes out without the SDK's per-request Python.
_lanes: weakref.WeakKeyDictionary[Any, Lane | None] = weakref.WeakKeyDictionary()
_async_lanes: weakref.WeakKeyDictionary[Any, AsyncLane | None] = weakref.WeakKeyDictionary()


def direct_lane(client: Any) -> Lane | None:
    """``client``'s direct lane: only a quiet twin has one."""
    return _lanes.get(client)


def async_direct_lane(client: Any) -> AsyncLane | None:
    """``direct_lane`` of an async client."""
    return _async_lanes.get(client)


@functools.lru_cache(maxsize=8)
def _quiet_sync_client(api_key: str | None, base_url: str | None) -> anthropic.Anthropic:
    twin = _sync_client(api_key, base_url).with_options(open_telemetry=QUIET_TELEMETRY)
    _lanes[twin] = lane_for(twin)
    return twin


def forget_clients() -> None:
    """Make the sync clients anew at their next use (tests that change the
    environment the SDK reads when a client is made)."""
    _sync_client.cache_clear()
    _quiet_sync_client.cache_clear()


def _passes_nothing_on() -> bool:
    """Would the SDK send no header of the current context with a request?
    (Baggage is sent without a tracer provider too: then the SDK keeps its
    span, which carries it.)"""
    from opentelemetry import propagate

    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return not carrier


def get_client(*, quiet: bool = False) -> anthropic.Anthropic:
    """The process's client for the current settings (one per key and URL);
    ``quiet`` (the call's span is OpenTelemetry's invalid one): its twin that
    makes no span of its own, unless the context has headers to pass on."""
    make = _quiet_sync_client if quiet and _passes_nothing_on() else _sync_client
    return make(conf.api_key_to_send(), conf.BASE_URL)


def get_async_client(*, quiet: bool = False) -> anthropic.AsyncAnthropic:
    """The running event loop's async client for the current settings
    (``quiet``: as ``get_client``'s)."""
    key = (conf.api_key_to_send(), conf.BASE_URL)
    clients = _async_clients.setdefault(asyncio.get_running_loop(), {})
    if key not in clients:
        clients[key] = anthropic.AsyncAnthropic(
            api_key=key[0],
            base_url=key[1],
            max_retries=0,
            open_telemetry=SDK_TELEMETRY,
            http_client=anthropic.DefaultAsyncHttpxClient(
                event_hooks={"response": [_note_response]}
            ),
        )
    if not (quiet and _passes_nothing_on()):
        return clients[key]
    twin = (*key, "quiet")
    if twin not in clients:
        clients[twin] = clients[key].with_options(open_telemetry=QUIET_TELEMETRY)
        _async_lanes[clients[twin]] = async_lane_for(clients[twin])
    return clients[twin]


_MISSING_KEY_TEXT = "Could not resolve authentication method"


def sdk_request(method: Callable[..., R], /, **kwargs: Any) -> R:
    """Call an SDK method, turning its missing-key ``TypeError`` into
    ``MissingCredentials`` (an auth failure, not the caller's bug)."""
    try:
        return method(**kwargs)
    except TypeError as exc:
        if _MISSING_KEY_TEXT in str(exc):
            raise MissingCredentials(
                "no Anthropic API key: set DJANGO_CLAUDE_API_KEY or ANTHROPIC_API_KEY"
            ) from None
        raise
