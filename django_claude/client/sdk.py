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
import pydantic
from anthropic.types import Message

from django_claude.client.deadline import BoundedTransport, extend_bound
from django_claude.client.errors import MissingCredentials
from django_claude.client.ratelimits import note_response
from django_claude.conf import conf
from django_claude.telemetry import note_not_sent

R = TypeVar("R")

# The SDK's own spans (children of each call's) carry metadata only, whatever
# ANTHROPIC_OPEN_TELEMETRY_TRACES_CONTENT_MODE says: content reaches a span
# only through DJANGO_CLAUDE_OTEL_CAPTURE_CONTENT, after the redactor.
SDK_TELEMETRY: Any = {"traces": {"content_mode": "metadata_only"}}


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
    asyncio.AbstractEventLoop, dict[tuple[str | None, str | None], anthropic.AsyncAnthropic]
] = weakref.WeakKeyDictionary()


def get_client() -> anthropic.Anthropic:
    """The process's client for the current settings (one per key and URL)."""
    return _sync_client(conf.api_key_to_send(), conf.BASE_URL)


def get_async_client() -> anthropic.AsyncAnthropic:
    """The running event loop's async client for the current settings."""
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
    return clients[key]


_MISSING_KEY_TEXT = "Could not resolve authentication method"


# Validating a Messages API body with pydantic-core (Rust) takes about a
# tenth of the SDK's own lenient parse (``construct_type``, in Python): on
# this machine ~30 us against ~300 us a call, a quarter of what a call added
# to a served request (benchmarks/site_load.py). So answers are asked for raw
# and validated here; a body validation refuses (a block type or stop reason
# this SDK does not know yet, a proxy's page) goes to the SDK's parse, as it
# always did. Strict: a value the SDK would keep as sent (a count sent as
# "26") is not coerced but goes to that parse too, so the answer is always
# the one the SDK itself would return. With pydantic 1 (no
# ``model_validate_json``) every body does.
_VALIDATES = hasattr(Message, "model_validate_json")


def message_of(raw: Any) -> Any:
    """The answer of a raw ``messages.create`` response: the same ``Message``
    the SDK's ``parse()`` makes (its ``_request_id`` too), made faster, or
    whatever ``parse()`` makes of a body that is not one. For a sync
    response; ``amessage_of`` for an async one."""
    message = validated(raw)
    return raw.parse() if message is None else message


async def amessage_of(raw: Any) -> Any:
    """``message_of`` for an async response (whose ``parse()`` is awaited)."""
    message = validated(raw)
    return await raw.parse() if message is None else message


def validated(raw: Any) -> Message | None:
    """The body of a raw response as a ``Message``, validated strictly; None
    when validation refuses it (``message_of`` then asks the SDK)."""
    if not _VALIDATES:
        return None
    try:
        message = Message.model_validate_json(raw.http_response.content, strict=True)
    except (pydantic.ValidationError, ValueError, TypeError):
        return None
    message._request_id = raw.request_id  # as the SDK's parse() sets them
    if hasattr(raw, "workspace_id"):
        message._workspace_id = raw.workspace_id
    return message


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
