"""A fake Anthropic Messages API on 127.0.0.1, for tests and the offline demo.

The real ``anthropic`` SDK talks to it over HTTP, so everything between
``django_claude.call`` and the socket is exercised: timeouts, status codes,
``retry-after`` headers, dropped connections and bodies that are not JSON.
Only the standard library is used.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from django_claude.testing.admin_api import FakeAdminAPI
from django_claude.testing.faults import ERROR_TYPES, OK, Fault
from django_claude.testing.messages import (
    answer,
    prompt_tokens,
    stream_events,
    with_code_execution,
)

__all__ = ["OK", "Fault", "FakeAnthropic", "RecordedRequest"]


# Anthropic's error type for each status the API documents.
@dataclass
class RecordedRequest:
    model: str
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)


class FakeAnthropic:
    """A threaded HTTP server speaking enough of the Messages API for tests.

    ``script(model, faults)`` queues answers for a model, in order; once the
    queue is empty the model answers normally (or with ``always(model, ...)``).
    Every request is kept in ``requests``; ``count(model)`` counts them.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Fault]] = defaultdict(deque)
        self._always: dict[str, Fault] = {}
        self.requests: list[RecordedRequest] = []
        self.reply_text = "Hello from the fake Claude."
        # responder(request body) -> answer text, or None for reply_text
        self.responder: Callable[[dict[str, Any]], str | None] | None = None
        self.usage: dict[str, Any] = {}
        # A stream's message_start usage, where it differs from the final one
        # (cache writes a server tool makes later come in message_delta).
        self.stream_start_usage: dict[str, Any] = {}
        self.unknown_models: set[str] = set()
        self.admin = FakeAdminAPI()  # the Usage & Cost Admin API (admin_api.py)
        # POST /v1/messages/count_tokens: the bodies it was asked about, the
        # count it answers (None: the same estimate message_for bills) and a
        # fault to answer with instead (a status, a delay).
        self.count_requests: list[dict[str, Any]] = []
        self.token_count: int | None = None
        self.count_fault: Fault | None = None
        # Code execution: each answer runs it this many times (server_tool_use
        # blocks and their results) in the container ``container`` names.
        self.code_executions = 0
        self.container = "container_011CodeExecFake"
        handler = type("Handler", (_Handler,), {"fake": self})
        self._httpd = _Server((host, port), handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------
    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeAnthropic:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="fake-anthropic", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread = None

    def __enter__(self) -> FakeAnthropic:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- scripting ---------------------------------------------------------
    def reset(self) -> None:
        """Forget scripts, recorded requests, overrides and the Admin API's data."""
        with self._lock:
            self._scripts.clear()
            self._always.clear()
            self.requests.clear()
            self.unknown_models.clear()
            self.usage, self.responder, self.admin = {}, None, FakeAdminAPI()
            self.count_requests, self.token_count, self.count_fault = [], None, None
            self.code_executions, self.container = 0, "container_011CodeExecFake"
            self.stream_start_usage = {}
            self.reply_text = "Hello from the fake Claude."

    def script(self, model: str, faults: Iterable[Fault | int]) -> None:
        """Queue answers for ``model``; an int is shorthand for ``Fault(status=int)``."""
        with self._lock:
            for fault in faults:
                self._scripts[model].append(
                    Fault(status=fault) if isinstance(fault, int) else fault
                )

    def always(self, model: str, fault: Fault | int) -> None:
        """Answer every request for ``model`` this way once its script is used up."""
        with self._lock:
            self._always[model] = Fault(status=fault) if isinstance(fault, int) else fault

    def count(self, model: str | None = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if model is None or r.model == model)

    def models_called(self) -> list[str]:
        with self._lock:
            return [r.model for r in self.requests]

    def _next_fault(self, model: str, body: dict[str, Any], headers: dict[str, str]) -> Fault:
        with self._lock:
            self.requests.append(RecordedRequest(model=model, body=body, headers=headers))
            if model in self.unknown_models:
                return Fault(status=404)
            queue = self._scripts.get(model)
            if queue:
                return queue.popleft()
            return self._always.get(model, OK)

    # -- answers -----------------------------------------------------------
    def message_for(self, body: dict[str, Any], fault: Fault) -> dict[str, Any]:
        text = fault.text
        if text is None and self.responder is not None:
            text = self.responder(body)
        if text is None:
            text = self.reply_text
        message = answer(body, text, usage=self.usage)
        if body.get("stream") and self.stream_start_usage:
            message["usage"]["_start"] = self.stream_start_usage
        if self.code_executions:
            with_code_execution(message, self.code_executions, self.container)
        return message


class _Server(ThreadingHTTPServer):
    # The stdlib listens with a backlog of 5: a test's burst of concurrent
    # calls would find connections refused, as no real API does.
    request_queue_size = 128


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropic
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out at once, no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # keep test output clean

    def do_GET(self) -> None:
        status, answer = self.fake.admin.answer(self.path, dict(self.headers.items()))
        if isinstance(answer, str):
            self._send_error(status, answer)
            return
        self._send(status, json.dumps(answer).encode(), "application/json")

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_error(400, "request body is not JSON")
            return
        route = self.path.split("?")[0]
        if route == "/v1/messages/count_tokens":
            self._count_tokens(body)
            return
        if route != "/v1/messages":
            self._send_error(404, f"no route {self.path}")
            return
        model = str(body.get("model", ""))
        fault = self.fake._next_fault(model, body, {k.lower(): v for k, v in self.headers.items()})
        if fault.delay:
            time.sleep(fault.delay)
        if fault.drop:
            self.close_connection = True
            self.connection.close()
            return
        if fault.status:
            extra = {}
            if fault.retry_after is not None:
                extra["retry-after"] = fault.retry_after
            if fault.retry_after_ms is not None:
                extra["retry-after-ms"] = fault.retry_after_ms
            reason = f"model: {model}" if fault.status == 404 else f"fake {fault.status}"
            self._send_error(fault.status, reason, {**extra, **(fault.headers or {})})
            return
        if fault.body is not None:
            self._send(200, fault.body.encode(), fault.content_type, fault=fault)
            return
        message = self.fake.message_for(body, fault)
        if body.get("stream"):
            self._send_stream(message, fault)
        else:
            self._send(200, json.dumps(message).encode(), "application/json", fault=fault)

    def _count_tokens(self, body: dict[str, Any]) -> None:
        fake = self.fake
        with fake._lock:
            fake.count_requests.append(body)
            fault, count = fake.count_fault, fake.token_count
        if fault is not None and fault.delay:
            time.sleep(fault.delay)
        if fault is not None and fault.status:
            self._send_error(fault.status, f"fake {fault.status}")
            return
        answer = {"input_tokens": prompt_tokens(body) if count is None else count}
        self._send(200, json.dumps(answer).encode(), "application/json")

    def _send(
        self,
        status: int,
        payload: bytes,
        content_type: str,
        extra: dict[str, str] | None = None,
        *,
        fault: Fault = OK,
    ) -> None:
        headers = {
            "content-type": content_type,
            "content-length": str(len(payload)),
            "request-id": f"req_fake_{uuid.uuid4().hex[:20]}",
            **(extra or {}),
        }
        try:
            self._head(status, headers, fault)
            self._write(payload, fault)
        except (BrokenPipeError, ConnectionResetError, OSError):
            self.close_connection = True  # the client gave up (timeout)

    def _head(self, status: int, headers: dict[str, str], fault: Fault) -> None:
        """The status line and headers: at once, or as slowly as ``fault`` says."""
        headers = {**headers, **(fault.headers or {})}
        if not (fault.dribble or fault.slow_headers):
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            return
        self.close_connection = True
        lines = [f"HTTP/1.1 {status} {self.responses.get(status, ('',))[0]}"]
        lines += [f"{key}: {value}" for key, value in headers.items()]
        for line in [*lines, ""]:
            if fault.slow_headers:
                time.sleep(fault.slow_headers)
            self._write(f"{line}\r\n".encode(), fault)

    def _write(self, data: bytes, fault: Fault) -> None:
        if not fault.dribble:
            self.wfile.write(data)
            self.wfile.flush()
            return
        for i in range(len(data)):
            self.wfile.write(data[i : i + 1])
            self.wfile.flush()
            time.sleep(fault.dribble)

    def _send_error(self, status: int, message: str, extra: dict[str, str] | None = None) -> None:
        error_type = ERROR_TYPES.get(status, "api_error")
        payload = {"type": "error", "error": {"type": error_type, "message": message}}
        self._send(status, json.dumps(payload).encode(), "application/json", extra)

    def _send_stream(self, message: dict[str, Any], fault: Fault) -> None:
        events = stream_events(message, fault)
        headers = {
            "content-type": "text/event-stream",
            "request-id": f"req_fake_{uuid.uuid4().hex[:20]}",
            "connection": "close",
        }
        try:
            self._head(200, headers, fault)
            for name, data in events:
                self._write(f"event: {name}\ndata: {json.dumps(data)}\n\n".encode(), fault)
                if fault.chunk_delay:
                    time.sleep(fault.chunk_delay)
            if fault.error_event is not None:
                error = {"type": "error", "error": {"type": fault.error_event, "message": "fake"}}
                self._write(f"event: error\ndata: {json.dumps(error)}\n\n".encode(), fault)
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass
        self.close_connection = True
