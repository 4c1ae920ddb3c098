"""A hard end for every attempt, whatever the upstream does.

httpx's timeouts are per socket operation: an upstream (or a proxy) that
sends its headers slowly, dribbles its body a byte at a time, or keeps a
stream alive with pings never trips them. The sync client's transport
therefore bounds every connect, read and write by the end of the attempt in
progress (``bounded(until)``, a context variable, so concurrent threads each
keep their own); async attempts are bounded with ``asyncio.timeout`` by the
driver, which cancels whatever the request is waiting on.
"""

from __future__ import annotations

import contextlib
import ssl
import time
import typing
from collections.abc import Iterable, Iterator
from contextvars import ContextVar

import httpcore2
import httpx2

_ends: ContextVar[float | None] = ContextVar("django_claude_attempt_ends", default=None)


class AttemptTimedOut(TimeoutError):
    """An attempt ran past its share of the deadline (a slow or stalled upstream)."""


@contextlib.contextmanager
def bounded(until: float) -> Iterator[None]:
    """Every socket operation of the sync SDK in this block ends by ``until``
    (``time.monotonic()``): it raises httpx's timeout once the time is up."""
    token = _ends.set(until)
    try:
        yield
    finally:
        _ends.reset(token)


def extend_bound(seconds: float, *, cap: float) -> None:
    """Move this attempt's end ``seconds`` later, but not past ``cap``: for
    time spent before its request went out that is not the upstream's (the
    wait for the call's quota reservation)."""
    until = _ends.get()
    if until is not None and seconds > 0:
        _ends.set(min(until + seconds, max(until, cap)))


def _cut(timeout: float | None, error: type[Exception]) -> float | None:
    """``timeout`` shortened to what is left of the attempt; raise ``error`` if nothing is."""
    until = _ends.get()
    if until is None:
        return timeout
    left = until - time.monotonic()
    if left <= 0:
        raise error("django-claude: the attempt's time is up")
    return left if timeout is None else min(timeout, left)


class _BoundedStream(httpcore2.NetworkStream):
    def __init__(self, inner: httpcore2.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._inner.read(max_bytes, _cut(timeout, httpcore2.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._inner.write(buffer, _cut(timeout, httpcore2.WriteTimeout))

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore2.NetworkStream:
        cut = _cut(timeout, httpcore2.ConnectTimeout)
        return _BoundedStream(self._inner.start_tls(ssl_context, server_hostname, cut))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._inner.get_extra_info(info)


class _BoundedBackend(httpcore2.NetworkBackend):
    def __init__(self, inner: httpcore2.NetworkBackend) -> None:
        self._inner = inner

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore2.NetworkStream:
        cut = _cut(timeout, httpcore2.ConnectTimeout)
        return _BoundedStream(
            self._inner.connect_tcp(host, port, cut, local_address, socket_options)
        )

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[typing.Any] | None = None,
    ) -> httpcore2.NetworkStream:
        cut = _cut(timeout, httpcore2.ConnectTimeout)
        return _BoundedStream(self._inner.connect_unix_socket(path, cut, socket_options))

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class BoundedTransport(httpx2.HTTPTransport):
    """httpx's own transport, with every socket operation bounded by ``bounded()``.

    httpx takes no network backend as an argument, so the one its pool was
    built with is wrapped (``tests/test_deadline.py`` fails if that changes).
    """

    def __init__(self, **kwargs: typing.Any) -> None:
        super().__init__(**kwargs)
        pool = self._pool
        pool._network_backend = _BoundedBackend(pool._network_backend)
