"""The fake Messages API that users' own tests talk to."""

from __future__ import annotations

import anthropic
import pytest

from django_claude.testing import FakeAnthropic, Fault


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
