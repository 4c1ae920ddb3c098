"""The example site sends its traces over OTLP: a request's span, the call's
span under it, the SDK's request span under that, at a local receiver."""

from __future__ import annotations

import http.cookiejar
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from django_claude.recording.sampling import JUDGE_FEATURE
from tests.test_example import EXAMPLE, _free_port, example_env


class Receiver(ThreadingHTTPServer):
    """An OTLP/HTTP trace receiver: keeps every span it is sent."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.spans: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def named(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.spans)


class _Handler(BaseHTTPRequestHandler):
    server: Receiver

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        request = trace_service_pb2.ExportTraceServiceRequest()
        request.ParseFromString(body)
        found = [
            {
                "name": span.name,
                "kind": span.kind,
                "trace_id": span.trace_id.hex(),
                "span_id": span.span_id.hex(),
                "parent": span.parent_span_id.hex(),
                "attributes": {a.key: a.value for a in span.attributes},
                "service": {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                },
            }
            for resource_spans in request.resource_spans
            for scope_spans in resource_spans.scope_spans
            for span in scope_spans.spans
        ]
        with self.server.lock:
            self.server.spans.extend(found)
        reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(reply)))
        self.end_headers()
        self.wfile.write(reply)


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _serve(env: dict[str, str], port: int) -> subprocess.Popen[str]:
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--verbosity", "0"],
        cwd=EXAMPLE,
        env=env,
        check=True,
        timeout=120,
    )
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ends = time.monotonic() + 60
    while time.monotonic() < ends:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/admin/login/", timeout=2).close()
            return server
        except OSError as exc:
            if server.poll() is not None:
                said = server.stderr.read() if server.stderr else "exited"
                raise AssertionError(said) from exc
            time.sleep(0.2)
    server.kill()
    raise AssertionError("the example site did not start")


def _ask(url: str, question: str) -> str:
    """The example's form, as a browser posts it (CSRF cookie and token)."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(url, timeout=30) as page:
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.read().decode())
    assert token is not None
    form = urllib.parse.urlencode({"csrfmiddlewaretoken": token.group(1), "question": question})
    with opener.open(url, data=form.encode(), timeout=30) as answer:
        return answer.read().decode()


def test_the_call_span_sits_between_the_request_and_the_sdk(
    fake_anthropic, receiver, tmp_path: Path
):
    port = _free_port()
    env = {
        **example_env(tmp_path),
        "ANTHROPIC_BASE_URL": fake_anthropic.url,
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_SERVICE_NAME": "example-under-test",
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), os.environ.get("PYTHONPATH", "")]),
    }
    server = _serve(env, port)
    try:
        assert "Hello from the fake Claude." in _ask(f"http://127.0.0.1:{port}/", "hello")
        ends = time.monotonic() + 20
        chat: list[dict[str, Any]] = []
        while time.monotonic() < ends:
            spans = receiver.named()
            # The smell test judges 1% of calls: its judge's own call (and
            # that call's SDK span) is a second trace, not this request's.
            judged = {
                s["span_id"]
                for s in spans
                if s["name"].startswith("chat ")
                and s["attributes"]["django_claude.feature"].string_value == JUDGE_FEATURE
            }
            chat = [
                s for s in spans if s["name"].startswith("chat ") and s["span_id"] not in judged
            ]
            sdk = [
                s
                for s in spans
                if s["name"] == "anthropic.messages.create" and s["parent"] not in judged
            ]
            requests = [s for s in spans if s["kind"] == 2]  # SERVER
            # The request's span ends (and is exported) after the call's.
            if chat and sdk and any(s["span_id"] == chat[0]["parent"] for s in requests):
                break
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert chat, f"no call span arrived: {[s['name'] for s in receiver.named()]}"
    [call] = chat
    [request] = [s for s in requests if s["span_id"] == call["parent"]]
    assert request["trace_id"] == call["trace_id"]
    assert request["name"].startswith("POST")  # the form post that called Claude
    [attempt] = sdk
    assert attempt["parent"] == call["span_id"]
    assert call["attributes"]["gen_ai.provider.name"].string_value == "anthropic"
    assert call["attributes"]["django_claude.feature"].string_value
    assert call["service"]["service.name"] == "example-under-test"
