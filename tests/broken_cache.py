"""A cache backend that is always down, for outage tests."""

from __future__ import annotations

from typing import Any

from django.core.cache.backends.base import BaseCache


class BrokenCache(BaseCache):
    def __init__(self, location: str, params: dict[str, Any]) -> None:
        super().__init__(params)

    def _down(self, *args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("cache is down")

    add = get = set = delete = incr = get_many = delete_many = touch = _down

    def clear(self) -> None:
        pass  # the test fixtures clear caches; let them


class HungCache(BrokenCache):
    """A cache server that is up but never answers (each call waits ``HANG`` s)."""

    HANG = 30.0

    def _hang(self, *args: Any, **kwargs: Any) -> Any:
        import time

        time.sleep(self.HANG)
        raise ConnectionError("timed out at last")

    add = get = set = delete = incr = get_many = delete_many = touch = _hang
