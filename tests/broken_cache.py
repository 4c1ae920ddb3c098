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


class SlowCache(BaseCache):
    """A cache that answers, but only after ``OPTIONS["DELAY"]`` seconds per
    ``incr`` (a busy or distant server); everything else is local memory."""

    def __init__(self, location: str, params: dict[str, Any]) -> None:
        from django.core.cache.backends.locmem import LocMemCache

        super().__init__(params)
        self.delay = float(params.get("OPTIONS", {}).get("DELAY", 0.3))
        self.inner = LocMemCache(location or "slow", {})

    def incr(self, key: Any, delta: int = 1, version: Any = None) -> Any:
        import time

        time.sleep(self.delay)
        return self.inner.incr(key, delta, version)

    def add(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.add(*args, **kwargs)

    def get(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.get(*args, **kwargs)

    def set(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.set(*args, **kwargs)

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.delete(*args, **kwargs)

    def get_many(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.get_many(*args, **kwargs)

    def delete_many(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.delete_many(*args, **kwargs)

    def touch(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.touch(*args, **kwargs)

    def clear(self) -> None:
        self.inner.clear()
