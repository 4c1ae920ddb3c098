"""A plain request sent as the SDK sends it, without the SDK's Python around it.

``messages.with_raw_response.create`` spends ~0.55 ms of CPU around the
~0.45 ms that httpx takes to send a request and read its answer (SDK 2.14,
in a loop against the fake API on loopback): it copies and walks the
arguments, makes its request options, headers and URL anew, and runs its
retry loop and response wrappers. On a served site that is more than all
that django-claude adds to a call.

So a request whose arguments are JSON as they are (dicts, lists, strings,
numbers, booleans and None: what ``json`` encodes unaided, which the SDK
sends unchanged) goes out as ``messages.create`` would send it, byte for
byte: the URL, headers and timeout of the SDK's own ``_build_request``, made
once per client and timeout, and the body encoded as the SDK encodes it, its
fields in the SDK's order, through the SDK's httpx client (its pool, its
transport, its event hooks). (``with_raw_response``, which this replaces,
also sent its own ``X-Stainless-Raw-Response`` marker; the API reads no such
header.) A failure status becomes the SDK's own exception, a timeout or a
lost connection its ``APITimeoutError`` or ``APIConnectionError``, as its
``_attempt_request`` makes them, and an answer the SDK must parse gets its
``_process_response``.

Everything else goes through the SDK as it always did: an argument the SDK
converts first (a file, a path given as text, a pydantic model, a date, a
generator), an argument this module does not know as a body field, a
missing required one, ``extra_headers``, ``extra_query`` or ``extra_body``,
a model the SDK warns about, a client whose cookie jar holds cookies, the
SDK's debug log turned on (its lines are the reader's), a client whose SDK
span records or passes trace context on (``sdk.py`` gives lanes only to the
quiet twins), and a client whose SDK is not made as this module reads it
(checked once per client: credentials that sign each request, middleware,
an idempotency header, a hook that changes the request).
``tests/test_direct.py`` holds the requests both ways send equal, byte for
byte and header for header.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import weakref
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx2
from anthropic import _base_client
from anthropic._files import is_base64_file_input
from anthropic._models import FinalRequestOptions
from anthropic.types import Message

_PATH = "/v1/messages"
# messages.create's body fields (SDK 2.x), none of which it renames or
# reformats (no ``PropertyInfo`` in its types): JSON values are sent as given.
_BODY_FIELDS = (  # in the order the SDK sends them
    "max_tokens",
    "messages",
    "model",
    "cache_control",
    "container",
    "diagnostics",
    "inference_geo",
    "metadata",
    "output_config",
    "service_tier",
    "speed",
    "stop_sequences",
    "system",
    "thinking",
    "tool_choice",
    "tools",
)
_REQUIRED = ("max_tokens", "messages", "model")  # else the SDK's TypeError, nothing sent
# As the SDK's ``openapi_dumps`` encodes a body.
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
# The headers made afresh for each request: its length, and none of the jar's
# cookies (a lane sends nothing while the jar holds any).
_PER_REQUEST = (b"content-length", b"cookie")
_Template = tuple[httpx2.URL, list[tuple[bytes, bytes]], dict[str, Any]]
_TEMPLATES_KEPT = 64  # one per distinct timeout; retries' shorter ones come and go


def _sdk_knowledge() -> tuple[tuple[str, ...], frozenset[str]] | None:
    """(the body fields this SDK's ``create`` takes, the models it warns
    about), or None where this SDK does not say which models those are."""
    try:
        from anthropic.resources.messages import messages as resource

        warned = frozenset(resource.DEPRECATED_MODELS) | frozenset(
            resource.MODELS_TO_WARN_WITH_THINKING_ENABLED
        )
        taken = frozenset(inspect.signature(resource.Messages.create).parameters)
    except (ImportError, AttributeError, TypeError, ValueError):
        return None
    return tuple(field for field in _BODY_FIELDS if field in taken), warned


_KNOWN = _sdk_knowledge()


def _made_as_read(client: Any, base: type) -> bool:
    """Is ``client`` an SDK client this module's reading of the SDK holds for?"""
    try:
        return (
            _KNOWN is not None
            and client.custom_auth is None
            and not client._middleware
            and client._idempotency_header is None
            and type(client)._prepare_request is getattr(base, "_prepare_request", None)
            and callable(client._build_request)
            and callable(client._make_status_error_from_response)
            and callable(client._process_response)
            and isinstance(client._client, httpx2.Client | httpx2.AsyncClient)
        )
    except AttributeError:
        return False


def _sdk_logs() -> bool:
    """Is the SDK's debug log on (``ANTHROPIC_LOG=debug``)? Then its lines are
    the reader's: the SDK sends the request."""
    return _base_client.log.isEnabledFor(logging.DEBUG)


def _file_inputs(body: Any) -> bool:
    """Does ``body`` hold a file the SDK would read and encode: the ``data``
    of a ``{"type": "base64"}`` mapping that is path-like (a ``str`` subclass
    with ``__fspath__``; anything else that is not a ``str`` JSON refused)?
    Looks at containers, never into a text: ~1 us a message (the SDK's
    own walk, which this replaces, copies every one)."""
    pending = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            if value.get("type") == "base64" and is_base64_file_input(value.get("data")):
                return True
            pending.extend(value.values())
        elif isinstance(value, list | tuple):
            pending.extend(value)
    return False


@contextlib.contextmanager
def _as_the_sdk_raises(request: httpx2.Request) -> Iterator[None]:
    """A failure to send ``request`` as the SDK's ``_attempt_request`` raises it."""
    try:
        yield
    except anthropic.AnthropicError:
        raise
    except httpx2.TimeoutException as exc:
        raise anthropic.APITimeoutError(request=request) from exc
    except Exception as exc:
        raise anthropic.APIConnectionError(request=request) from exc


class _Lane:
    """What the sync and async lanes share: a request's making and a failure's."""

    def __init__(self, client: Any) -> None:
        # (weakly: ``sdk.py`` keeps lanes in a WeakKeyDictionary keyed by the client)
        self.client = weakref.proxy(client)
        self.send = client._client.send
        self.jar = client._client.cookies
        self.fields, self.warned = _KNOWN or ((), frozenset())
        # per timeout, an int apart from the equal float (the SDK's header
        # says "30", not "30.0")
        self.templates: dict[tuple[type, float], _Template] = {}
        self.answer_options = FinalRequestOptions.construct(method="post", url=_PATH)

    def prepared(self, kwargs: dict[str, Any]) -> tuple[float, bytes, _Template | None] | None:
        """(timeout, encoded body, the timeout's template if made) of a request
        this lane sends; None for one the SDK must make."""
        timeout = kwargs.get("timeout")
        if not isinstance(timeout, float | int) or isinstance(timeout, bool):
            return None
        if kwargs.get("model") in self.warned or self.jar or _sdk_logs():
            return None  # its warning; the jar's cookies, sent afresh; its debug lines
        body = {field: kwargs[field] for field in self.fields if field in kwargs}
        if len(body) != len(kwargs) - 1 or not all(field in body for field in _REQUIRED):
            return None
        try:
            content = _encode(body).encode()
        except (TypeError, ValueError, RecursionError):  # not JSON as it is: the SDK's to convert
            return None
        if _file_inputs(body):
            return None
        return timeout, content, self.templates.get((type(timeout), timeout))

    def options(self, timeout: float) -> FinalRequestOptions:
        """The options the SDK makes for ``messages.create`` (before its hook)."""
        return FinalRequestOptions.construct(
            method="post", url=_PATH, json_data={}, headers={}, timeout=timeout
        )

    def template(self, timeout: float, options: FinalRequestOptions) -> _Template | None:
        """Keep the URL, headers and extensions of the SDK's request for
        ``options`` (and ``timeout``); None where the SDK refuses to build it
        (no credentials: it says so its own way)."""
        try:
            built: httpx2.Request = self.client._build_request(options)
        except TypeError:
            return None
        if len(self.templates) >= _TEMPLATES_KEPT:
            self.templates.clear()
        headers = [pair for pair in built.headers.raw if pair[0].lower() not in _PER_REQUEST]
        made = (built.url, headers, built.extensions)
        self.templates[type(timeout), timeout] = made
        return made

    def request(self, template: _Template, content: bytes) -> httpx2.Request:
        url, headers, extensions = template
        return httpx2.Request(
            "POST", url, headers=headers, content=content, extensions=dict(extensions)
        )

    def to_parse(self, response: httpx2.Response) -> dict[str, Any]:
        """The SDK's ``_process_response`` arguments for an answer to parse."""
        return {
            "cast_to": Message,
            "options": self.answer_options,
            "response": response,
            "stream": False,
            "stream_cls": None,
        }

    def answered(self, response: httpx2.Response) -> httpx2.Response:
        """``response`` if it is a 2xx; else the SDK's exception for its status."""
        if not response.is_success:
            raise self.client._make_status_error_from_response(response) from None
        return response


class Lane(_Lane):
    """A sync ``Anthropic`` client's lane."""

    def send_plain(self, kwargs: dict[str, Any]) -> httpx2.Response | None:
        """Send ``messages.create(**kwargs)`` and return its 2xx answer, raising
        what the SDK raises; None (nothing sent) for a request the SDK must make."""
        made = self.prepared(kwargs)
        if made is None:
            return None
        timeout, content, template = made
        if template is None:
            options = self.client._prepare_options(self.options(timeout))
            if (template := self.template(timeout, options)) is None:
                return None
        request = self.request(template, content)
        with _as_the_sdk_raises(request):
            response: httpx2.Response = self.send(request)
        return self.answered(response)

    def parse(self, response: httpx2.Response) -> Message:
        """The SDK's own parse of an answer this lane was sent."""
        message: Message = self.client._process_response(**self.to_parse(response))
        return message


class AsyncLane(_Lane):
    """An ``AsyncAnthropic`` client's lane."""

    async def send_plain(self, kwargs: dict[str, Any]) -> httpx2.Response | None:
        """``Lane.send_plain`` on the event loop."""
        made = self.prepared(kwargs)
        if made is None:
            return None
        timeout, content, template = made
        if template is None:
            options = await self.client._prepare_options(self.options(timeout))
            if (template := self.template(timeout, options)) is None:
                return None
        request = self.request(template, content)
        with _as_the_sdk_raises(request):
            response: httpx2.Response = await self.send(request)
        return self.answered(response)

    async def parse(self, response: httpx2.Response) -> Message:
        """``Lane.parse`` on the event loop."""
        message: Message = await self.client._process_response(**self.to_parse(response))
        return message


def lane_for(client: anthropic.Anthropic) -> Lane | None:
    """``client``'s lane, or None where its requests must go through the SDK."""
    return Lane(client) if _made_as_read(client, _base_client.SyncAPIClient) else None


def async_lane_for(client: anthropic.AsyncAnthropic) -> AsyncLane | None:
    """``lane_for`` of an async client."""
    return AsyncLane(client) if _made_as_read(client, _base_client.AsyncAPIClient) else None
