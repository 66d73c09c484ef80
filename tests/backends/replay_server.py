"""A real local HTTP server that replays provider fixtures, scriptable per test.

Why a real server (not an httpx mock transport): timeouts, refused connections, headers on the
wire and Retry-After sleeps are then exercised exactly as against the real API.

    server.route("POST", "/bundles/", Reply.status(429, headers={"Retry-After": "1"}), Reply.file("vast/search_offers.json"))

Each route holds a script of replies used in order; the last one repeats forever. Every request
received is recorded (method, path, query, headers, body).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "providers"  # copied from the project's shared fixtures; PROVENANCE.md there


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def fixture_json(name: str) -> Any:
    return json.loads(fixture_bytes(name))


@dataclass
class Reply:
    """One scripted answer: status, body bytes, headers, and a delay before answering."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    content_type: str = "application/json"

    @classmethod
    def json(cls, data: Any, status: int = 200, **kw: Any) -> Reply:
        return cls(status, json.dumps(data).encode(), **kw)

    @classmethod
    def file(cls, name: str, status: int = 200, **kw: Any) -> Reply:
        return cls(status, fixture_bytes(name), **kw)

    @classmethod
    def error(cls, status: int, data: Any = None, **kw: Any) -> Reply:
        return cls(status, json.dumps(data if data is not None else {"error": f"HTTP {status}"}).encode(), **kw)

    @classmethod
    def empty(cls, status: int = 204) -> Reply:
        return cls(status, b"")

    @classmethod
    def slow(cls, seconds: float, data: Any = None) -> Reply:
        return cls(200, json.dumps(data if data is not None else {}).encode(), delay=seconds)

    @classmethod
    def malformed(cls) -> Reply:
        return cls(200, b'{"offers": [ {"id": 1,')


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class ReplayServer:
    """ThreadingHTTPServer on 127.0.0.1, ephemeral port; use as a context manager."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], list[Reply]] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # a slow handler must not hold up shutdown
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="replay-server", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def route(self, method: str, path: str, *replies: Reply) -> ReplayServer:
        """Script `(method, path)`: replies in order, the last repeats."""
        with self._lock:
            self.routes[(method.upper(), path)] = list(replies)
        return self

    def received(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if (method is None or r.method == method) and (path is None or r.path == path)]

    def _next(self, method: str, path: str) -> Reply:
        with self._lock:
            script = self.routes.get((method, path))
            if not script:
                return Reply.error(404, {"error": f"no route {method} {path}"})
            return script.pop(0) if len(script) > 1 else script[0]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep pytest output clean
                pass

            def _serve(self) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with server._lock:
                    server.requests.append(Recorded(
                        self.command, parts.path, parse_qs(parts.query),
                        {k.lower(): v for k, v in self.headers.items()}, body, time.monotonic(),
                    ))
                reply = server._next(self.command, parts.path)
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    if reply.body:
                        self.send_header("Content-Type", reply.content_type)
                    self.send_header("Content-Length", str(len(reply.body)))
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (read timeout test)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

        return Handler

    def start(self) -> ReplayServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextmanager
def closed_port() -> Iterator[str]:
    """A URL where nothing listens (bind, note the port, close): connection refused."""
    import socket

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    yield f"http://127.0.0.1:{port}"
