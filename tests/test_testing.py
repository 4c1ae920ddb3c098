"""The fake Messages API that users' own tests talk to."""

from __future__ import annotations

import hashlib
import os
import uuid
from io import StringIO

import anthropic
import pytest

from django_claude.routing import VERSION_KEY
from django_claude.testing import FakeAnthropic, Fault
from django_claude.testing.pytest_plugin import forget_claude_keys


@pytest.fixture
def server():
    with FakeAnthropic() as fake:
        yield fake


def client_for(server):
    return anthropic.Anthropic(api_key="sk-ant-test", base_url=server.url, max_retries=0)


def test_answers_like_the_api(server):
    message = client_for(server).messages.create(
        model="claude-haiku-4-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}]
    )
    assert message.content[0].text == "Hello from the fake Claude."
    assert message.model == "claude-haiku-4-5"
    assert message.usage.input_tokens > 0
    assert message._request_id.startswith("req_fake_")
    assert server.count() == 1 and server.count("claude-haiku-4-5") == 1


def test_scripted_faults_then_normal_answers(server):
    server.script("m", [Fault(status=429, retry_after="7"), 529])
    client = client_for(server)
    with pytest.raises(anthropic.RateLimitError) as rate:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert rate.value.response.headers["retry-after"] == "7"
    assert rate.value.body["error"]["type"] == "rate_limit_error"
    with pytest.raises(anthropic.APIStatusError) as overloaded:
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert overloaded.value.status_code == 529
    ok = client.messages.create(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    )
    assert ok.stop_reason == "end_turn"


def test_cache_usage_and_streaming(server):
    server.usage = {"cache_read_input_tokens": 40, "ephemeral_1h_input_tokens": 12}
    client = client_for(server)
    with client.messages.stream(
        model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}]
    ) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == "Hello from the fake Claude."
    assert final.usage.cache_read_input_tokens == 40
    assert final.usage.cache_creation.ephemeral_1h_input_tokens == 12


def test_dropped_and_non_json(server):
    server.script(
        "m", [Fault(drop=True), Fault(body="<html>proxy</html>", content_type="text/html")]
    )
    client = client_for(server)
    with pytest.raises(anthropic.APIConnectionError):
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
    assert (
        client.messages.create(model="m", max_tokens=5, messages=[{"role": "user", "content": "x"}])
        == "<html>proxy</html>"
    )


def test_plugin_fixture_points_django_claude_at_the_fake(fake_anthropic, settings):
    assert fake_anthropic.url == settings.DJANGO_CLAUDE_BASE_URL
    assert fake_anthropic.count() == 0


# -- the plugin's fixture and a cache shared with other apps -------------------------------


def hashed_key(key: str, key_prefix: str, version: int) -> str:
    """A key function that hides the key: no prefix can be searched for."""
    return hashlib.sha256(f"{key_prefix}:{version}:{key}".encode()).hexdigest()


def _shared_cache_config(kind: str, tmp_path) -> dict:
    if kind == "locmem":
        return {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "shared"}
    if kind == "locmem-hashed-keys":
        return {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": "shared-hashed",
            "KEY_FUNCTION": "tests.test_testing.hashed_key",
        }
    if kind == "redis":
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": os.environ.get("CACHE_URL", ""),
            "KEY_PREFIX": "site*[1]",  # glob characters: the search must escape them
        }
    if kind == "database":
        return {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "shared_cache",
        }
    return {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": tmp_path}


@pytest.fixture(
    params=[
        "locmem",
        "locmem-hashed-keys",
        pytest.param("redis", marks=pytest.mark.redis),
        "database",
        "file",
    ]
)
def shared_cache(request, settings, tmp_path):
    """DJANGO_CLAUDE_CACHE is a cache other apps use too. Set up before
    ``fake_anthropic`` and torn down after it, so it sees both ends."""
    from django.core.cache import caches
    from django.core.management import call_command

    kind = request.param
    if kind == "database":
        request.getfixturevalue("db")
    settings.CACHES = {**settings.CACHES, "shared": _shared_cache_config(kind, tmp_path)}
    settings.DJANGO_CLAUDE_CACHE = "shared"
    if kind == "database":
        call_command("createcachetable", "shared_cache", stdout=StringIO())
    cache = caches["shared"]
    tag = uuid.uuid4().hex
    foreign = {f"other_app:{tag}": 1, f"django_claude_lookalike:{tag}": 2}
    ours = {f"django_claude:answer:req:{tag}": "an answer", VERSION_KEY: 7}
    cache.set_many({**foreign, **ours})
    raw = None
    if kind == "redis":  # and a key outside Django's prefix altogether
        import redis

        raw = redis.Redis.from_url(os.environ["CACHE_URL"])
        raw.set(f"raw_other_app:{tag}", b"1")
    shared = SharedCache(cache, kind, tag, foreign, ours)
    yield shared
    try:
        assert cache.get_many(list(foreign)) == foreign
        assert cache.get_many([*ours, *shared.during]) == {}
        if raw is not None:
            assert raw.get(f"raw_other_app:{tag}") == b"1"
    finally:
        cache.delete_many(list(foreign))
        if raw is not None:
            raw.delete(f"raw_other_app:{tag}")


class SharedCache:
    def __init__(self, cache, kind, tag, foreign, ours):
        self.cache, self.kind, self.tag = cache, kind, tag
        self.foreign, self.ours = foreign, ours
        self.during = [f"django_claude:breaker:{tag}:failures", f"django_claude:smell:{tag}"]

    @property
    def lists_its_keys(self) -> bool:
        return self.kind in ("locmem", "redis", "database")


def test_the_fixture_deletes_django_claudes_keys_and_no_other(shared_cache, fake_anthropic):
    cache = shared_cache.cache
    assert cache.get_many(list(shared_cache.foreign)) == shared_cache.foreign
    answer_key = f"django_claude:answer:req:{shared_cache.tag}"
    assert cache.get(VERSION_KEY) is None
    if shared_cache.lists_its_keys:
        assert cache.get(answer_key) is None
    else:
        # A cache that cannot list its keys loses those django-claude uses during
        # the test (reading counts): this one was made before the fixture.
        assert cache.get(answer_key) == "an answer"
    cache.set_many(dict.fromkeys(shared_cache.during, 1))


def test_forget_claude_keys_uses_django_redis_pattern_deletion():
    class DjangoRedisLike:
        def __init__(self) -> None:
            self.patterns: list[str] = []

        def delete_pattern(self, pattern: str) -> None:
            self.patterns.append(pattern)

    cache = DjangoRedisLike()
    forget_claude_keys(cache)
    assert cache.patterns == ["django_claude:*"]
