"""Build and memoise the SDK clients. Retries are ours: ``max_retries=0``."""

from __future__ import annotations

import functools

import anthropic

from django_claude.conf import conf


@functools.lru_cache(maxsize=8)
def _sync_client(api_key: str | None, base_url: str | None) -> anthropic.Anthropic:
    return anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=0)


@functools.lru_cache(maxsize=8)
def _async_client(api_key: str | None, base_url: str | None) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)


def get_client() -> anthropic.Anthropic:
    """The process's client for the current settings (one per key and URL)."""
    return _sync_client(conf.API_KEY, conf.BASE_URL)


def get_async_client() -> anthropic.AsyncAnthropic:
    return _async_client(conf.API_KEY, conf.BASE_URL)


def reset_clients() -> None:
    _sync_client.cache_clear()
    _async_client.cache_clear()
